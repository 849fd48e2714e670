//! `/api/auth/sessions*` and `/api/auth/password`: a user's own sessions.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::filters::get_or_head;
use super::filters::{check_origin, client_info, json_body, with_session, with_state};
use super::views::{json, set_cookie, SessionView};
use super::State;
use crate::auth::{ClientInfo, CurrentSession};
use crate::domain::Password;

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = state.config.server.max_body_bytes;
    let list = warp::path!("api" / "auth" / "sessions")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(list);
    let end_others = warp::path!("api" / "auth" / "sessions")
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(end_others);
    let end_one = warp::path!("api" / "auth" / "sessions" / String)
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(end_one);
    let password = warp::path!("api" / "auth" / "password")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(client_info(state.clone()))
        .and(json_body(limit))
        .and_then(change_password);
    list.or(end_others)
        .unify()
        .or(end_one)
        .unify()
        .or(password)
        .unify()
        .boxed()
}

async fn list(state: State, current: CurrentSession) -> Result<Response, Rejection> {
    let live = state.auth.live_sessions_of(current.user.user_id()).await?;
    let sessions: Vec<_> = live
        .iter()
        .map(|(hash, s)| SessionView::new(hash, s, *hash == current.hash))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "sessions": sessions })))
}

async fn end_others(state: State, current: CurrentSession) -> Result<Response, Rejection> {
    let revoked = state.auth.end_other_sessions(&current).await?;
    Ok(json(StatusCode::OK, &json!({ "revoked": revoked })))
}

async fn end_one(id: String, state: State, current: CurrentSession) -> Result<Response, Rejection> {
    let Some(ended) = state.auth.end_own_session(&current, &id).await? else {
        // The same words whether the id is someone else's or nobody's.
        return Err(ApiError::not_found(
            "You have no live session with that id (see GET /api/auth/sessions).",
        )
        .into());
    };
    let mut res = StatusCode::NO_CONTENT.into_response();
    if ended == current.hash {
        set_cookie(&mut res, &state.auth.cookies().clear());
    }
    Ok(res)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordBody {
    /// Omitted only by a user who has no password yet.
    current_password: Option<String>,
    new_password: String,
}

async fn change_password(
    state: State,
    current: CurrentSession,
    client: ClientInfo,
    body: PasswordBody,
) -> Result<Response, Rejection> {
    let old = body.current_password.map(Password::unchecked);
    let new = state.auth.new_password(body.new_password, "newPassword")?;
    let fresh = state
        .auth
        .change_password(&current, old.as_ref(), &new, &client)
        .await?;
    let cookie = state
        .auth
        .cookies()
        .issue(&fresh.token, state.auth.cookie_max_age(&fresh.session));
    let mut res = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut res, &cookie);
    Ok(res)
}
