//! WebSocket clients: many held open, handshake rate, and fan-out timing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// One authenticated upgrade.
pub async fn connect(addr: SocketAddr, cookie: &str) -> Result<Ws, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut req = format!("ws://{addr}/ws/chat")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    tokio_tungstenite::client_async_with_config(req, stream, Some(client_config()))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// A lean client: tungstenite zero-fills its whole read buffer on every
/// read, and at the default 128 KiB that memset was over half the load
/// client's CPU during a fan-out, time taken from the server on the same
/// cores. Chat frames are small; 4 KiB is what the server uses too.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Opens `n` sockets, `concurrency` at a time, cycling through `cookies`
/// (at most 16 sockets per user); returns them and the time taken.
pub async fn open_many(
    addr: SocketAddr,
    cookies: &[String],
    offset: usize,
    n: usize,
    concurrency: usize,
) -> (Vec<Ws>, Duration) {
    let started = Instant::now();
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + concurrency).min(n))
            .map(|k| {
                let cookie = cookies[(offset + k) / 16].clone();
                tokio::spawn(async move { connect(addr, &cookie).await })
            })
            .collect();
        for task in batch {
            out.push(task.await.unwrap().expect("upgrade"));
        }
        i += concurrency;
    }
    (out, started.elapsed())
}

async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// What `fan_out` measured.
pub struct Deliveries {
    /// Every delivery's latency (µs).
    pub all: Vec<u32>,
    /// Per message, the time until the last member had it (µs).
    pub last: Vec<u32>,
    /// The server's CPU time (user, system) from the first message sent
    /// to the last one received, as `cpu` read it.
    pub cpu: (Duration, Duration),
}

/// Joins every socket to one room, then sends `messages` from the first,
/// spaced `gap` apart, reading the server's CPU time with `cpu` around
/// the messages (not the joins).
pub async fn fan_out(
    mut members: Vec<Ws>,
    messages: usize,
    gap: Duration,
    room: &str,
    cpu: impl Fn() -> (Duration, Duration),
) -> Deliveries {
    let join = format!(r#"{{"type":"join","room":"{room}"}}"#);
    for ws in members.iter_mut() {
        ws.send(Message::text(join.clone())).await.unwrap();
        next_text(ws).await.expect("joined");
    }
    let mut sender = members.remove(0);
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; messages]));
    let receivers: Vec<_> = members
        .into_iter()
        .map(|mut ws| {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(messages);
                while got.len() < messages {
                    let Ok(Some(text)) =
                        tokio::time::timeout(Duration::from_secs(30), next_text(&mut ws)).await
                    else {
                        break;
                    };
                    let now = Instant::now();
                    // A substring, not a JSON parse: the client shares the cores.
                    let index = text
                        .split("\"text\":\"")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next()?.parse::<usize>().ok());
                    if let Some(i) = index {
                        if let Some(at) = sent.lock().unwrap()[i] {
                            got.push((i, now.duration_since(at).as_micros() as u32));
                        }
                    }
                }
                (ws, got)
            })
        })
        .collect();
    let cpu_before = cpu();
    for i in 0..messages {
        sent.lock().unwrap()[i] = Some(Instant::now());
        let frame = format!(r#"{{"type":"message","room":"{room}","text":"{i}"}}"#);
        sender.send(Message::text(frame)).await.unwrap();
        next_text(&mut sender).await;
        tokio::time::sleep(gap).await;
    }
    let mut all = Vec::new();
    let mut last = vec![0u32; messages];
    let mut sockets = Vec::with_capacity(receivers.len());
    for r in receivers {
        let (ws, got) = r.await.unwrap();
        sockets.push(ws);
        for (i, us) in got {
            all.push(us);
            last[i] = last[i].max(us);
        }
    }
    let cpu_after = cpu();
    // Closed after the reading above, so the server's work of closing
    // them is not counted.
    drop(sockets);
    Deliveries {
        all,
        last,
        cpu: (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
    }
}
