//! `/api/admin/*`: user management for admins (401 without a session, 403
//! for a user).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::filters::get_or_head;
use super::filters::{
    check_origin, json_body, page_limit, require_admin, session_token, with_state,
};
use super::views::{json, UserView};
use super::State;
use crate::auth::{AuthError, By, CurrentSession, SessionToken};
use crate::domain::{Role, UserId};

/// Largest page of users.
const MAX_PAGE: usize = 200;
/// Page size when `limit` is not given.
const DEFAULT_PAGE: usize = 50;

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = state.config.server.max_body_bytes;
    let admin = || require_admin(state.clone());
    let list = warp::path!("api" / "admin" / "users")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(admin())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(list_users);
    let patch = warp::path!("api" / "admin" / "users" / String)
        .and(warp::patch())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(admin())
        .and(json_body(limit))
        .and_then(set_role);
    let remove = warp::path!("api" / "admin" / "users" / String)
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(admin())
        .and_then(remove_user);
    let revoke = warp::path!("api" / "admin" / "users" / String / "sessions")
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(admin())
        .and_then(revoke_sessions);
    let unlock = warp::path!("api" / "admin" / "users" / String / "unlock")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(admin())
        .and_then(unlock);
    let reset_link = warp::path!("api" / "admin" / "users" / String / "reset-link")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(admin())
        .and_then(reset_link);
    let mfa = warp::path!("api" / "admin" / "users" / String / "mfa")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(admin())
        .and_then(user_mfa);
    let mfa_reset = warp::path!("api" / "admin" / "users" / String / "mfa")
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(admin())
        .and_then(reset_mfa);
    let stats = warp::path!("api" / "admin" / "stats")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(admin())
        .and_then(stats);
    let backup = warp::path!("api" / "admin" / "backup")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(backup_caller(state.clone()))
        .and_then(backup);
    list.or(patch)
        .unify()
        .or(mfa)
        .unify()
        .or(mfa_reset)
        .unify()
        .or(remove)
        .unify()
        .or(revoke)
        .unify()
        .or(unlock)
        .unify()
        .or(reset_link)
        .unify()
        .or(stats)
        .unify()
        .or(backup)
        .unify()
        .boxed()
}

/// The user id a path names. One that does not parse names nobody, and
/// gets the same 404 as one that parses and is unused.
fn user_id(raw: &str) -> Result<UserId, Rejection> {
    UserId::parse(raw).ok_or_else(|| ApiError::no_user(raw).into())
}

/// An admin action's outcome, its "no such user" worded with the id the
/// path gave (the store finds out in the same call; no read beforehand).
fn for_user<T>(raw: &str, outcome: Result<T, AuthError>) -> Result<T, Rejection> {
    outcome.map_err(|e| match e {
        AuthError::NotFound => ApiError::no_user(raw).into(),
        e => e.into(),
    })
}

async fn list_users(
    state: State,
    _admin: CurrentSession,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let limit = page_limit(&query, DEFAULT_PAGE, MAX_PAGE)?;
    let after = match query.get("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(raw) => Some(UserId::parse(raw).ok_or_else(|| {
            ApiError::invalid_request("after: not a cursor from an earlier page.")
        })?),
    };
    let (users, next) = state.auth.list_users(after, limit).await?;
    let users: Vec<_> = users.iter().map(UserView::from).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "users": users, "next": next.map(|id| id.to_string()) }),
    ))
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

async fn set_role(
    id: String,
    state: State,
    admin: CurrentSession,
    body: RoleBody,
) -> Result<Response, Rejection> {
    let role = Role::parse(&body.role)?;
    let by = By::admin(&admin);
    let user = for_user(&id, state.auth.set_role(user_id(&id)?, role, &by).await)?;
    Ok(json(
        StatusCode::OK,
        &json!({ "user": UserView::from(&user) }),
    ))
}

async fn remove_user(
    id: String,
    state: State,
    admin: CurrentSession,
) -> Result<Response, Rejection> {
    let by = By::admin(&admin);
    for_user(&id, state.auth.remove_user(user_id(&id)?, &by).await)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn revoke_sessions(
    id: String,
    state: State,
    admin: CurrentSession,
) -> Result<Response, Rejection> {
    let by = By::admin(&admin);
    let revoked = for_user(&id, state.auth.end_sessions_of(user_id(&id)?, &by).await)?;
    Ok(json(StatusCode::OK, &json!({ "revoked": revoked })))
}

async fn user_mfa(id: String, state: State, _admin: CurrentSession) -> Result<Response, Rejection> {
    let user = for_user(&id, state.auth.user(user_id(&id)?).await)?;
    Ok(super::mfa_routes::factors(&state, &user))
}

async fn reset_mfa(id: String, state: State, admin: CurrentSession) -> Result<Response, Rejection> {
    let by = By::admin(&admin);
    let ended = for_user(&id, state.auth.reset_factors(user_id(&id)?, &by).await)?;
    Ok(json(StatusCode::OK, &json!({ "revoked": ended })))
}

async fn unlock(id: String, state: State, _admin: CurrentSession) -> Result<Response, Rejection> {
    for_user(&id, state.auth.unlock(user_id(&id)?).await)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A single-use link to the page's "set a new password" view, valid for
/// an hour: for a user who lost their password on a server with no mail.
async fn reset_link(
    id: String,
    state: State,
    _admin: CurrentSession,
) -> Result<Response, Rejection> {
    let link = for_user(&id, state.auth.reset_link(user_id(&id)?).await)?;
    Ok(json(
        StatusCode::OK,
        &json!({ "link": link, "expiresIn": crate::auth::recovery::LINK_TTL.as_secs() }),
    ))
}

async fn stats(state: State, _admin: CurrentSession) -> Result<Response, Rejection> {
    let stats = state.auth.stats().await.map_err(ApiError::from)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "users": stats.users,
            "sessions": stats.sessions,
            "wsConnections": state.ws_connections.load(std::sync::atomic::Ordering::Relaxed),
        }),
    ))
}

/// An admin's session, or the credential in the server's `backup-access`
/// file (`sessiond backup`) as `Authorization: Bearer`.
fn backup_caller(state: State) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(session_token(state.clone()))
        .and_then(move |header: Option<String>, token: Option<SessionToken>| {
            let state = state.clone();
            async move {
                if let Some(bearer) = header.as_deref().and_then(|h| h.strip_prefix("Bearer ")) {
                    if state.backups.admits(bearer.trim()) {
                        return Ok(());
                    }
                    return Err(Rejection::from(ApiError::unauthorized()));
                }
                let token = token.ok_or_else(ApiError::unauthorized)?;
                let current = state.auth.authenticate(&token).await?;
                let current = current.ok_or_else(ApiError::unauthorized)?;
                if state.auth.must_enrol(&current) {
                    return Err(ApiError::from(AuthError::EnrolmentRequired).into());
                }
                if current.user.role != Role::Admin {
                    return Err(ApiError::forbidden().into());
                }
                Ok(())
            }
        })
        .untuple_one()
}

/// The whole store as one backup file, read while the server serves.
async fn backup(state: State) -> Result<Response, Rejection> {
    let file = state
        .backups
        .take()
        .await
        .map_err(|e| ApiError::from(AuthError::from(e)))?;
    let mut res = Response::new(file.into());
    let headers = res.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        warp::http::header::CONTENT_DISPOSITION,
        warp::http::HeaderValue::from_static("attachment; filename=\"sessiond.backup\""),
    );
    Ok(res)
}
