//! The JSON shapes of API.md, built from store records.

use serde::{Serialize, Serializer};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::auth::mfa::FactorInfo;
use crate::domain::{Amr, Rfc3339, Role, TokenHash, UserId};
use crate::store::{AuditId, AuditRecord, IdentityRecord, SessionRecord, UserRecord};

/// `User` in the contract, borrowed from its record: `/me` builds one per
/// request, so it copies nothing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView<'a> {
    #[serde(serialize_with = "display")]
    id: UserId,
    username: &'a str,
    email: &'a str,
    email_verified: bool,
    role: Role,
    created_at: Time,
}

impl<'a> From<&'a UserRecord> for UserView<'a> {
    fn from(u: &'a UserRecord) -> Self {
        Self {
            id: u.user_id(),
            username: &u.username,
            email: &u.email,
            email_verified: u.email_verified,
            role: u.role,
            created_at: Time(u.created_at_ms),
        }
    }
}

/// `Session` in the contract: the public id, never the token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView<'a> {
    id: String,
    created_at: Time,
    last_seen_at: Time,
    expires_at: Time,
    idle_expires_at: Time,
    user_agent: &'a str,
    ip: &'a str,
    current: bool,
    remember: bool,
    amr: &'a [Amr],
    /// When the proofs in `amr` were given: the sign-in.
    auth_time: Time,
}

impl<'a> SessionView<'a> {
    /// `current` marks the session the request came with.
    pub fn new(hash: &TokenHash, s: &'a SessionRecord, current: bool) -> Self {
        Self {
            id: hash.public_id(),
            created_at: Time(s.created_at_ms),
            last_seen_at: Time(s.last_seen_at_ms),
            expires_at: Time(s.absolute_expires_at_ms),
            idle_expires_at: Time(s.idle_expires_at_ms),
            user_agent: &s.user_agent,
            ip: &s.ip,
            current,
            remember: s.remember,
            amr: &s.amr,
            auth_time: Time(s.created_at_ms),
        }
    }
}

/// A second factor as `GET /api/auth/mfa` shows it: never a secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FactorView<'a> {
    id: &'a str,
    kind: &'a str,
    name: &'a str,
    created_at: Time,
    last_used_at: Option<Time>,
}

impl<'a> From<&'a FactorInfo> for FactorView<'a> {
    fn from(f: &'a FactorInfo) -> Self {
        Self {
            id: &f.id,
            kind: f.kind,
            name: &f.name,
            created_at: Time(f.created_at_ms),
            last_used_at: (f.last_used_at_ms > 0).then_some(Time(f.last_used_at_ms)),
        }
    }
}

/// `Identity` as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView<'a> {
    id: String,
    provider: &'a str,
    issuer: &'a str,
    subject: &'a str,
    email: Option<&'a str>,
    linked_at: Time,
}

impl<'a> From<&'a IdentityRecord> for IdentityView<'a> {
    fn from(i: &'a IdentityRecord) -> Self {
        Self {
            id: i.public_id(),
            provider: &i.provider,
            issuer: &i.issuer,
            subject: &i.subject,
            email: i.email.as_deref(),
            linked_at: Time(i.linked_at_ms),
        }
    }
}

/// A security-log entry as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityView<'a> {
    #[serde(serialize_with = "display")]
    id: AuditId,
    time: Time,
    kind: &'static str,
    #[serde(serialize_with = "display")]
    user_id: UserId,
    actor: ActorView,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// `actor`: its kind, and the acting user's id where there is one.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActorView {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

impl<'a> ActivityView<'a> {
    /// The entry `id` names.
    pub fn new(id: AuditId, e: &'a AuditRecord) -> Self {
        Self {
            id,
            time: Time(e.time_ms),
            kind: e.kind.as_str(),
            user_id: e.owner(),
            actor: ActorView {
                kind: e.actor.kind(),
                user_id: e.actor.user_id().map(|id| id.to_string()),
            },
            session_id: e.session_id.as_deref(),
            ip: e.ip.as_deref(),
            user_agent: e.user_agent.as_deref(),
            detail: e.detail.as_deref(),
        }
    }
}

fn display<S: Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Unix millis, serialised as RFC 3339 in UTC without an allocation.
struct Time(u64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Rfc3339::new(self.0).as_str())
    }
}

/// A JSON answer with a status, serialised into one buffer sized for a
/// typical answer (`warp::reply::json` grows its buffer from empty).
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let mut bytes = Vec::with_capacity(512);
    if let Err(e) = serde_json::to_writer(&mut bytes, body) {
        tracing::error!(error = %e, "answer not serialisable");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut res = Response::new(bytes.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Adds a `Set-Cookie` header.
pub fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_user_serialises_with_the_contract_field_names() {
        let user = UserRecord {
            id: 42,
            username: "ann".into(),
            email: "ann@example.com".into(),
            role: Role::User,
            password_hash: "$argon2id$unused".into(),
            created_at_ms: 42,
            factors: Default::default(),
            email_verified: true,
        };
        let text = serde_json::to_string(&UserView::from(&user)).unwrap();
        assert_eq!(
            text,
            r#"{"id":"000000000000002a","username":"ann","email":"ann@example.com","emailVerified":true,"role":"user","createdAt":"1970-01-01T00:00:00.042Z"}"#
        );
    }
}
