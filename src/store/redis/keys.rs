//! Every key name, in one place. The layout works on one Redis server and
//! on a Redis Cluster alike: a script touches the keys of one hash slot
//! only, so
//! - all of one user's keys share the tag `{<id>}`: `user:{<id>}` (the
//!   record), `user:{<id>}:sessions` (their session hashes by deadline),
//!   `user:{<id>}:session:<hash>` (one session), `user:{<id>}:identities`,
//!   `user:{<id>}:audit` (their security log, kept after they are removed);
//! - the deployment-wide keys share the tag `{all}`: the user list, the
//!   admin count, the id counters and `expiry` (every session by deadline,
//!   for the pruner);
//! - what is found by something other than a user id is a key of its own,
//!   pointing at the id: `token:<hash>`, `name:<key>`, `email:<key>`,
//!   `ident:<key>`. These are written apart from the user's slot, in an
//!   order that a crash between two steps leaves nothing a reader trusts
//!   and nothing `check` cannot find (see `users.rs`, `sessions.rs`).
//!
//! Every key starts with the configured prefix.

use crate::domain::TokenHash;

/// Key names under one prefix.
#[derive(Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix><rest>`: keys of their own (the lease, the secret).
    pub fn plain(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// A user's record; every other key of theirs starts with it.
    pub fn user(&self, id: u64) -> String {
        format!("{}user:{{{id}}}", self.prefix)
    }

    /// One session, under its user's tag.
    pub fn session(&self, user: u64, hash: &str) -> String {
        format!("{}:session:{hash}", self.user(user))
    }

    /// A user's session hashes by deadline.
    pub fn user_sessions(&self, user: u64) -> String {
        format!("{}:sessions", self.user(user))
    }

    /// A user's linked identities: identity key to record.
    pub fn user_identities(&self, user: u64) -> String {
        format!("{}:identities", self.user(user))
    }

    /// A user's security log (a stream).
    pub fn user_audit(&self, user: u64) -> String {
        format!("{}:audit", self.user(user))
    }

    /// Which user a session token belongs to.
    pub fn token(&self, hash: &TokenHash) -> String {
        format!(
            "{}token:{}",
            self.prefix,
            crate::domain::hex(hash.as_bytes())
        )
    }

    /// Which user has this name key.
    pub fn name(&self, key: &str) -> String {
        format!("{}name:{key}", self.prefix)
    }

    /// Which user has this e-mail key.
    pub fn email(&self, key: &str) -> String {
        format!("{}email:{key}", self.prefix)
    }

    /// Which user an identity (hex of its key) is linked to.
    pub fn ident(&self, key: &str) -> String {
        format!("{}ident:{key}", self.prefix)
    }

    /// A deployment-wide key: `users`, `admin_count`, `next_user_id`,
    /// `next_message_id`, `expiry`, `audit_users`.
    pub fn all(&self, name: &str) -> String {
        format!("{}{{all}}:{name}", self.prefix)
    }

    /// A chat room's stream.
    pub fn room(&self, room: &str) -> String {
        format!("{}room:{room}", self.prefix)
    }

    /// One throttling subject's failed attempts.
    pub fn failures(&self, subject: &str) -> String {
        format!("{}fail:{subject}", self.prefix)
    }

    /// The channel every ending and message is published on.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
}

/// An `expiry` member: `<user id>:<hash>`.
pub(super) fn expiry_member(user: u64, hash: &str) -> String {
    format!("{user}:{hash}")
}

/// The user id and hash of an `expiry` member.
pub(super) fn parse_expiry_member(member: &str) -> Option<(u64, &str)> {
    let (user, hash) = member.split_once(':')?;
    Some((user.parse().ok()?, hash))
}
