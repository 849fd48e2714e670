//! The chat floor: what a fan-out costs on this machine with nothing
//! stored and nothing checked, so sessiond's fan-out can be read as a
//! ratio measured in the same run, as `/me` is.
//!
//! It is the in-memory peer issue 16 compared against: rooms in a map,
//! one unbounded channel per socket, the frame encoded once and shared,
//! tokio-tungstenite for the framing (sessiond's own), no session, no
//! store, no rate limit. It speaks just enough of sessiond's protocol for
//! the bench's clients: `join` is answered with `joined`, and `message`
//! goes to every member of the room, the sender included.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

type Rooms = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Utf8Bytes>>>>>;

/// Serves until killed, printing its address as the other servers do.
pub async fn serve() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    eprintln!(
        "chat floor listening addr={}",
        listener.local_addr().unwrap()
    );
    let rooms = Rooms::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, rooms.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// 101 for an upgrade (then the socket's task), 200 for anything else
/// (the health check the bench waits for).
async fn answer(mut req: Request<Incoming>, rooms: Rooms) -> Result<Response<String>, Infallible> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Ok(Response::new(r#"{"status":"ok"}"#.to_owned()));
    };
    let pending = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = pending.await else { return };
        let config = Some(sessiond::ws::socket_config());
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, config).await;
        run(ws, rooms).await;
    });
    let mut res = Response::new(String::new());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok(res)
}

/// One socket: the room's frames out, the client's frames in.
async fn run(ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, rooms: Rooms) {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            Some(frame) = rx.recv() => {
                if sink.send(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            incoming = stream.next() => {
                let Some(Ok(Message::Text(text))) = incoming else { return };
                let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let room = frame["room"].as_str().unwrap_or_default().to_owned();
                match frame["type"].as_str() {
                    Some("join") => {
                        rooms.lock().unwrap().entry(room.clone()).or_default().push(tx.clone());
                        let joined = serde_json::json!({"type": "joined", "room": room, "history": []});
                        let _ = tx.send(joined.to_string().into());
                    }
                    Some("message") => {
                        next_id += 1;
                        // The fields sessiond sends, so frames weigh alike.
                        let message = serde_json::json!({
                            "type": "message",
                            "id": next_id.to_string(),
                            "room": room,
                            "from": {"id": "1", "username": "floor"},
                            "text": frame["text"],
                            "sentAt": "2026-12-02T00:00:00.000Z",
                        });
                        let shared = Utf8Bytes::from(message.to_string());
                        if let Some(members) = rooms.lock().unwrap().get(&room) {
                            for member in members {
                                let _ = member.send(shared.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
