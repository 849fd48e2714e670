//! The JSON shapes of API.md, built from store records.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::domain::{Role, TokenHash};
use crate::store::{SessionRecord, UserRecord};

/// `User` in the contract.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    id: String,
    username: String,
    email: String,
    role: Role,
    created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.user_id().to_string(),
            username: u.username.clone(),
            email: u.email.clone(),
            role: u.role,
            created_at: rfc3339(u.created_at_ms),
        }
    }
}

/// `Session` in the contract: the public id, never the token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    id: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    idle_expires_at: String,
    user_agent: String,
    ip: String,
    current: bool,
}

impl SessionView {
    /// `current` marks the session the request came with.
    pub fn new(hash: &TokenHash, s: &SessionRecord, current: bool) -> Self {
        Self {
            id: hash.public_id(),
            created_at: rfc3339(s.created_at_ms),
            last_seen_at: rfc3339(s.last_seen_at_ms),
            expires_at: rfc3339(s.absolute_expires_at_ms),
            idle_expires_at: rfc3339(s.idle_expires_at_ms),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
            current,
        }
    }
}

/// Unix millis as RFC 3339 in UTC.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A JSON answer with a status.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Adds a `Set-Cookie` header.
pub fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
}
