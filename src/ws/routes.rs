//! `GET /ws/chat` (the upgrade) and `GET /api/chat/rooms/{room}/messages`.

use std::collections::HashMap;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::ws::Ws;
use warp::{Filter, Rejection, Reply};

use super::hub::Hub;
use super::protocol::{parse_message_id, MessageView};
use super::socket::{Socket, MAX_FRAME_BYTES};
use crate::auth::CurrentSession;
use crate::domain::RoomName;
use crate::http::views::json;
use crate::http::{check_origin, with_session, with_state, ApiError, State};

/// Largest WebSocket message read at all; between this and the chat's
/// 64 KiB limit the client gets an error frame, above it the socket closes.
const MAX_WS_MESSAGE: usize = 4 * MAX_FRAME_BYTES;

/// Most history a page may ask for.
const MAX_PAGE: usize = 200;

/// The chat's routes, path filters first; the upgrade uses the very same
/// session filter as every HTTP route.
pub fn routes(state: State, hub: Hub) -> warp::filters::BoxedFilter<(Response,)> {
    let upgrade = warp::path!("ws" / "chat")
        .and(warp::get())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(warp::any().map(move || hub.clone()))
        .and(warp::ws())
        .and_then(upgrade);
    let history = warp::path!("api" / "chat" / "rooms" / String / "messages")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(with_session(state))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(history);
    upgrade.or(history).unify().boxed()
}

async fn upgrade(
    state: State,
    current: CurrentSession,
    hub: Hub,
    ws: Ws,
) -> Result<Response, Rejection> {
    let Some(reservation) = hub.reserve(current.user.id) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sockets",
            "Too many open chat connections for this user.",
        )
        .into());
    };
    let socket = Socket {
        hub,
        auth: state.auth.clone(),
        chat: state.config.chat.clone(),
        session: current,
    };
    Ok(ws
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |ws| socket.run(ws, reservation))
        .into_response())
}

async fn history(
    room: String,
    state: State,
    _current: CurrentSession,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let room = RoomName::parse(&room)?;
    let limit = match query.get("limit") {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "limit: must be a whole number from 1 to {MAX_PAGE}."
                ))
            })?,
    };
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
        .map_err(crate::auth::AuthError::from)?;
    let messages: Vec<_> = messages.iter().map(MessageView::from).collect();
    Ok(json(StatusCode::OK, &json!({ "messages": messages })))
}
