//! What the store keeps, and the key layouts its trees sort by.

use serde::{Deserialize, Serialize};

use crate::domain::{Email, Role, TokenHash, UserId, Username};

/// A registered user as stored in `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The number behind `UserId`.
    pub id: u64,
    /// As registered (case kept).
    pub username: String,
    /// As registered (case kept).
    pub email: String,
    /// Checked on every request.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix milliseconds.
    pub created_at_ms: u64,
}

impl UserRecord {
    /// The typed id.
    pub fn user_id(&self) -> UserId {
        UserId::from_u64(self.id)
    }

    /// False for a user made by an ID-token sign-in who has not set a
    /// password: password login is refused, and the first password is set
    /// without a current one.
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }
}

/// An ID-token identity linked to a user, as stored in `user_identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The provider's configured name when linked.
    pub provider: String,
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The token's e-mail when linked, if any.
    pub email: Option<String>,
    /// Unix millis.
    pub linked_at_ms: u64,
}

impl IdentityRecord {
    /// The id the API shows and `DELETE /api/auth/identities/{id}` takes:
    /// derived from (issuer, subject), so it never changes.
    pub fn public_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"sessiond identity\0")
            .chain_update(identity_key(&self.issuer, &self.subject))
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `identities` key: the issuer's length, the issuer, the subject, so no
/// two (issuer, subject) pairs share a key whatever bytes they hold.
pub fn identity_key(issuer: &str, subject: &str) -> Vec<u8> {
    let len = u32::try_from(issuer.len()).unwrap_or(u32::MAX);
    [
        &len.to_be_bytes()[..],
        issuer.as_bytes(),
        subject.as_bytes(),
    ]
    .concat()
}

/// `user_identities` key: user id ++ identity key, so one user's links
/// are a prefix scan.
pub fn user_identity_key(user: UserId, issuer: &str, subject: &str) -> Vec<u8> {
    [&user.to_be_bytes()[..], &identity_key(issuer, subject)].concat()
}

/// A live session as stored in `sessions`, keyed by the token's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Owner.
    pub user_id: u64,
    /// Login time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Last recorded activity (lazily written).
    pub last_seen_at_ms: u64,
    /// Login time plus the absolute timeout, fixed at login.
    pub absolute_expires_at_ms: u64,
    /// Last activity plus the idle timeout, moved by each touch.
    pub idle_expires_at_ms: u64,
    /// As sent at login, cut to a sane length.
    pub user_agent: String,
    /// Client address at login.
    pub ip: String,
    /// "Remember me": false makes the cookie end with the browser (no
    /// `Max-Age`); the server's timeouts are the same either way.
    pub remember: bool,
}

/// A session as format version 1 wrote it, before `remember`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SessionRecordV1 {
    pub user_id: u64,
    pub created_at_ms: u64,
    pub last_seen_at_ms: u64,
    pub absolute_expires_at_ms: u64,
    pub idle_expires_at_ms: u64,
    pub user_agent: String,
    pub ip: String,
}

impl From<SessionRecordV1> for SessionRecord {
    fn from(v1: SessionRecordV1) -> Self {
        Self {
            user_id: v1.user_id,
            created_at_ms: v1.created_at_ms,
            last_seen_at_ms: v1.last_seen_at_ms,
            absolute_expires_at_ms: v1.absolute_expires_at_ms,
            idle_expires_at_ms: v1.idle_expires_at_ms,
            user_agent: v1.user_agent,
            ip: v1.ip,
            remember: true,
        }
    }
}

impl SessionRecord {
    /// When this session ends unless touched: the key of its expiry entry.
    pub fn deadline_ms(&self) -> u64 {
        self.absolute_expires_at_ms.min(self.idle_expires_at_ms)
    }

    /// The typed owner id.
    pub fn owner(&self) -> UserId {
        UserId::from_u64(self.user_id)
    }
}

/// `session_expiry` key: deadline (big-endian millis) ++ token hash, so a
/// range scan from the start visits exactly the sessions that have ended.
pub fn expiry_key(deadline_ms: u64, hash: &TokenHash) -> Vec<u8> {
    [&deadline_ms.to_be_bytes()[..], hash.as_bytes()].concat()
}

/// `user_sessions` key: user id ++ token hash, so one user's sessions are a
/// prefix scan that costs what that user has.
pub fn user_session_key(user: UserId, hash: &TokenHash) -> Vec<u8> {
    [&user.to_be_bytes()[..], hash.as_bytes()].concat()
}

/// A chat message as stored in `messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Grows with every message in the database.
    pub id: u64,
    /// The room it was sent to.
    pub room: String,
    /// The sender's id, from the session.
    pub from_id: u64,
    /// The sender's name when sent.
    pub from_name: String,
    /// The text.
    pub text: String,
    /// Unix millis.
    pub sent_at_ms: u64,
}

/// `messages` key: room ++ 0 ++ big-endian id, so one room's messages are
/// one contiguous run in send order (room names never contain a zero byte).
pub fn message_key(room: &str, id: u64) -> Vec<u8> {
    [room.as_bytes(), &[0], &id.to_be_bytes()].concat()
}

/// What registration hands the store; the hash is made by the auth layer
/// (empty for a user an ID-token sign-in creates, who has no password).
pub struct NewUser<'a> {
    /// Parsed name.
    pub username: &'a Username,
    /// Parsed address.
    pub email: &'a Email,
    /// Role at creation.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix millis.
    pub now_ms: u64,
}

/// A user removed with everything that was theirs.
#[derive(Debug)]
pub struct RemovedUser {
    /// The record as it was.
    pub user: UserRecord,
    /// The sessions ended with it.
    pub sessions: Vec<TokenHash>,
}
