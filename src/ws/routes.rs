//! `GET /ws/chat` (the upgrade) and `GET /api/chat/rooms/{room}/messages`.

use std::collections::HashMap;

use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::hub::Hub;
use super::protocol::{parse_message_id, MessageView};
use super::socket::{Socket, MAX_FRAME_BYTES};
use crate::auth::CurrentSession;
use crate::domain::RoomName;
use crate::http::views::json;
use crate::http::{
    check_origin, get_or_head, page_limit, with_session, with_state, ApiError, State,
};
use crate::listener::UpgradeSlot;

/// Largest WebSocket message read at all: past the chat's 64 KiB limit
/// the socket closes with 1009 either way, and above this one tungstenite
/// stops reading the frame before it is all in memory.
const MAX_WS_MESSAGE: usize = 4 * MAX_FRAME_BYTES;

/// Most history a page may ask for.
const MAX_PAGE: usize = 200;

/// Read buffer per socket: tungstenite zero-fills its whole read buffer on
/// the first read, so its 128 KiB default made every idle socket cost
/// that much. Larger frames grow it as needed.
const READ_BUFFER: usize = 4 * 1024;

/// Bytes tungstenite may hold for a peer that does not read, on top of
/// the hub's bounded queue.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// How every chat socket reads and writes; the fuzz target for frame
/// parsing and the bench's chat floor use the same settings, so they
/// test and measure what the server runs.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE))
}

/// A valid WebSocket upgrade request, not yet answered.
struct Handshake {
    key: String,
    slot: UpgradeSlot,
}

/// The chat's routes, path filters first; the upgrade uses the very same
/// session filter as every HTTP route.
pub fn routes(state: State, hub: Hub) -> warp::filters::BoxedFilter<(Response,)> {
    let upgrade = warp::path!("ws" / "chat")
        .and(get_or_head())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(warp::any().map(move || hub.clone()))
        .and(handshake())
        .and_then(upgrade);
    let history = warp::path!("api" / "chat" / "rooms" / String / "messages")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(with_session(state))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(history);
    upgrade.or(history).unify().boxed()
}

/// Checks the upgrade headers (RFC 6455 section 4.2.1) and takes the
/// connection's pending upgrade.
fn handshake() -> impl Filter<Extract = (Handshake,), Error = Rejection> + Clone {
    warp::header::optional::<String>("connection")
        .and(warp::header::optional::<String>("upgrade"))
        .and(warp::header::optional::<String>("sec-websocket-version"))
        .and(warp::header::optional::<String>("sec-websocket-key"))
        .and(warp::ext::optional::<UpgradeSlot>())
        .and_then(
            |connection: Option<String>,
             upgrade: Option<String>,
             version: Option<String>,
             key: Option<String>,
             slot: Option<UpgradeSlot>| async move {
                let asks_upgrade = connection.is_some_and(|c| {
                    c.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                }) && upgrade
                    .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"));
                let (true, Some(key), Some(slot)) = (asks_upgrade, key, slot) else {
                    return Err(Rejection::from(ApiError::invalid_request(
                        "This route expects a WebSocket upgrade.",
                    )));
                };
                if version.as_deref().map(str::trim) != Some("13") {
                    return Err(
                        ApiError::invalid_request("Sec-WebSocket-Version must be 13.").into(),
                    );
                }
                Ok(Handshake { key, slot })
            },
        )
}

async fn upgrade(
    state: State,
    current: CurrentSession,
    hub: Hub,
    handshake: Handshake,
) -> Result<Response, Rejection> {
    let Some(reservation) = hub.reserve(current.user.id) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sockets",
            "Too many open chat connections for this user.",
        )
        .into());
    };
    let Some(pending) = handshake.slot.take() else {
        return Err(ApiError::invalid_request("This connection cannot be upgraded.").into());
    };
    let socket = Socket {
        hub,
        auth: state.auth.clone(),
        chat: state.config.chat.clone(),
        session: current,
    };
    tokio::spawn(async move {
        let upgraded = match pending.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(socket_config()),
        )
        .await;
        socket.run(ws, reservation).await;
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(accept) = header::HeaderValue::from_str(&derive_accept_key(handshake.key.as_bytes()))
    {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok(res)
}

async fn history(
    room: String,
    state: State,
    _current: CurrentSession,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let room = RoomName::parse(&room)?;
    let limit = page_limit(&query, 50, MAX_PAGE)?;
    let before = match query.get("before").filter(|b| !b.is_empty()) {
        None => None,
        Some(raw) => Some(
            parse_message_id(raw)
                .ok_or_else(|| ApiError::invalid_request("before: not a message id."))?,
        ),
    };
    let messages = state
        .auth
        .store()
        .messages(&room, before, limit)
        .await
        .map_err(crate::auth::AuthError::from)?;
    let messages: Vec<_> = messages.iter().map(MessageView::from).collect();
    Ok(json(StatusCode::OK, &json!({ "messages": messages })))
}
