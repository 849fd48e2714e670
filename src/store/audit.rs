//! The security log's entries: what happened to an account, when, from
//! where and by whom. A change writes its entries in the same sled
//! transaction or Redis script as itself (each mutating `Store` method
//! takes them), so a crash cannot keep the change and lose the entry.
//! Entries live in their user's log (on Redis, a stream in the user's
//! slot) and outlive the user, until `[audit] keep` or the per-user cap
//! prunes them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// What happened. The contract's spelling is `as_str`; new kinds go at the
/// end (the stored form is the variant's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditKind {
    /// A session was made (password, passkey, ID token, second step).
    Login,
    /// A wrong password for a known account.
    LoginFailed,
    /// A sign-in refused by throttling.
    LoginThrottled,
    /// A second step succeeded.
    MfaPassed,
    /// A second step failed.
    MfaFailed,
    /// The session's own sign-out.
    Logout,
    /// One session ended by the user (from another) or an admin.
    SessionRevoked,
    /// Several sessions ended at once; `detail` says why.
    SessionsRevoked,
    /// A session reached its deadline and the pruner removed it.
    SessionExpired,
    /// The password was set.
    PasswordChanged,
    /// The address moved; `detail` names both.
    EmailChanged,
    /// The role changed; `detail` says from and to.
    RoleChanged,
    /// A factor (or a batch of recovery codes) was added.
    MfaAdded,
    /// A factor (or all of them) was removed.
    MfaRemoved,
    /// An external identity was linked.
    IdentityLinked,
    /// An external identity was unlinked.
    IdentityUnlinked,
    /// The account was made.
    UserCreated,
    /// The account was removed.
    UserRemoved,
    /// Recovery by mail was asked for (a code was mailed).
    RecoveryRequested,
    /// A recovery code or link set a new password.
    RecoveryUsed,
    /// Consent given to an OpenID Connect client.
    OidcConsent,
    /// An OpenID Connect client's tokens were revoked.
    OidcTokensRevoked,
}

impl AuditKind {
    /// Every kind, in stored order.
    pub const ALL: [AuditKind; 22] = [
        AuditKind::Login,
        AuditKind::LoginFailed,
        AuditKind::LoginThrottled,
        AuditKind::MfaPassed,
        AuditKind::MfaFailed,
        AuditKind::Logout,
        AuditKind::SessionRevoked,
        AuditKind::SessionsRevoked,
        AuditKind::SessionExpired,
        AuditKind::PasswordChanged,
        AuditKind::EmailChanged,
        AuditKind::RoleChanged,
        AuditKind::MfaAdded,
        AuditKind::MfaRemoved,
        AuditKind::IdentityLinked,
        AuditKind::IdentityUnlinked,
        AuditKind::UserCreated,
        AuditKind::UserRemoved,
        AuditKind::RecoveryRequested,
        AuditKind::RecoveryUsed,
        AuditKind::OidcConsent,
        AuditKind::OidcTokensRevoked,
    ];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Login => "login",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::LoginThrottled => "login_throttled",
            AuditKind::MfaPassed => "mfa_passed",
            AuditKind::MfaFailed => "mfa_failed",
            AuditKind::Logout => "logout",
            AuditKind::SessionRevoked => "session_revoked",
            AuditKind::SessionsRevoked => "sessions_revoked",
            AuditKind::SessionExpired => "session_expired",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::EmailChanged => "email_changed",
            AuditKind::RoleChanged => "role_changed",
            AuditKind::MfaAdded => "mfa_added",
            AuditKind::MfaRemoved => "mfa_removed",
            AuditKind::IdentityLinked => "identity_linked",
            AuditKind::IdentityUnlinked => "identity_unlinked",
            AuditKind::UserCreated => "user_created",
            AuditKind::UserRemoved => "user_removed",
            AuditKind::RecoveryRequested => "recovery_requested",
            AuditKind::RecoveryUsed => "recovery_used",
            AuditKind::OidcConsent => "oidc_consent",
            AuditKind::OidcTokensRevoked => "oidc_tokens_revoked",
        }
    }

    /// Reads the contract's spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A user acting on their own account (or trying to sign in to it).
    User(u64),
    /// An admin: through the API (their id), or an operator at the box
    /// (the CLI: no id).
    Admin(Option<u64>),
    /// The server itself: the pruner, a deadline.
    System,
}

impl Actor {
    /// The contract's `actor.kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Admin(_) => "admin",
            Actor::System => "system",
        }
    }

    /// The contract's `actor.userId`, where there is one.
    pub fn user_id(self) -> Option<UserId> {
        match self {
            Actor::User(id) | Actor::Admin(Some(id)) => Some(UserId::from_u64(id)),
            Actor::Admin(None) | Actor::System => None,
        }
    }
}

/// One entry of a user's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unix milliseconds.
    pub time_ms: u64,
    /// What happened.
    pub kind: AuditKind,
    /// Whose log it is in.
    pub user_id: u64,
    /// Who did it.
    pub actor: Actor,
    /// The session it concerns, in its public form.
    pub session_id: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
    /// A summary of the client's `User-Agent`.
    pub user_agent: Option<String>,
    /// A short fact about it (a reason, a factor's kind, a role's move);
    /// never a password, token or code.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// An entry with no session, client or detail yet.
    pub fn new(kind: AuditKind, user: UserId, actor: Actor, time_ms: u64) -> Self {
        Self {
            time_ms,
            kind,
            user_id: user.as_u64(),
            actor,
            session_id: None,
            ip: None,
            user_agent: None,
            detail: None,
        }
    }

    /// The same, naming the session.
    pub fn session(mut self, public_id: String) -> Self {
        self.session_id = Some(public_id);
        self
    }

    /// The same, with a detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The same entry about a user made with it, whose id it could not
    /// know: in their log, and, if a user acted, acted by them.
    pub fn of_new_user(&self, id: u64) -> Self {
        let actor = match self.actor {
            Actor::User(_) => Actor::User(id),
            other => other,
        };
        Self {
            user_id: id,
            actor,
            ..self.clone()
        }
    }

    /// The user whose log it is in.
    pub fn owner(&self) -> UserId {
        UserId::from_u64(self.user_id)
    }
}

/// What each backend tells of the entries it has just written, with the
/// change they record (and only then): each is emitted as one line on the
/// `sessiond::audit` tracing target, for log shippers, and its log noted
/// for the pruner's per-user cap. Told by the store, which alone knows
/// whether a change (and so its entries) was written.
#[derive(Default)]
pub(super) struct Written {
    /// Users whose logs grew since the pruner last capped them.
    grown: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl Written {
    /// Entries just written with their change.
    pub fn entries<E: std::borrow::Borrow<AuditRecord>>(
        &self,
        entries: impl IntoIterator<Item = E>,
    ) {
        let users: Vec<u64> = entries
            .into_iter()
            .map(|e| {
                emit(e.borrow());
                e.borrow().user_id
            })
            .collect();
        self.grew(users);
    }

    /// Logs that grew without a new event (a restore writing old entries).
    pub fn grew(&self, users: impl IntoIterator<Item = u64>) {
        if let Ok(mut grown) = self.grown.lock() {
            grown.extend(users);
        }
    }

    /// The logs that grew since the last call.
    pub fn take_grown(&self) -> std::collections::HashSet<u64> {
        self.grown
            .lock()
            .map(|mut grown| std::mem::take(&mut *grown))
            .unwrap_or_default()
    }
}

/// One line on the `sessiond::audit` tracing target.
fn emit(e: &AuditRecord) {
    // Words and ids bare, free text quoted: `kind=login ... detail="pwd,otp"`.
    tracing::info!(
        target: "sessiond::audit",
        kind = %e.kind,
        user_id = %UserId::from_u64(e.user_id),
        actor = %e.actor.kind(),
        actor_user_id = e.actor.user_id().map(tracing::field::display),
        session_id = e.session_id.as_deref().map(tracing::field::display),
        ip = e.ip.as_deref().map(tracing::field::display),
        user_agent = e.user_agent.as_deref(),
        detail = e.detail.as_deref(),
        "security event"
    );
}

/// Where an entry sits: its time, a number that orders entries of one
/// millisecond in its log (sled: unique in the database; Redis: the
/// stream id's sequence), and whose log it is in, which makes it unique
/// across logs. Shown as `<ms>-<seq>-<user>`, which is also the paging
/// cursor; ordered by all three, so everyone's log pages like one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuditId {
    /// Unix milliseconds (Redis: the stream id's, the server's clock).
    pub ms: u64,
    /// Orders one millisecond's entries.
    pub seq: u64,
    /// Whose log.
    pub user: u64,
}

impl AuditId {
    /// Reads the shown form; anything else is no cursor.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.split('-');
        let mut next = || {
            let part = parts.next()?;
            let digits =
                !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| part.parse().ok()).flatten()
        };
        let id = Self {
            ms: next()?,
            seq: next()?,
            user: next()?,
        };
        parts.next().is_none().then_some(id)
    }
}

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.ms, self.seq, self.user)
    }
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditQuery {
    /// One user's log, or everyone's.
    pub user: Option<UserId>,
    /// One kind only.
    pub kind: Option<AuditKind>,
    /// Only entries older than this one.
    pub before: Option<AuditId>,
    /// At most this many.
    pub limit: usize,
}

/// How long entries are kept, and how many per user.
#[derive(Debug, Clone, Copy)]
pub struct AuditRetention {
    /// Entries older than this many milliseconds are pruned.
    pub keep_ms: u64,
    /// A user's oldest entries past this many are pruned.
    pub per_user: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_spelling() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("Login"), None);
    }

    #[test]
    fn a_cursor_reads_back_and_junk_is_no_cursor() {
        let id = AuditId {
            ms: 17,
            seq: 3,
            user: 9,
        };
        assert_eq!(AuditId::parse(&id.to_string()), Some(id));
        for junk in [
            "", "17", "17-3", "17-3-", "-3-1", "a-1-1", "1-2-3-4", "+1-2-3",
        ] {
            assert_eq!(AuditId::parse(junk), None, "{junk}");
        }
    }
}
