//! Users, sessions, identities and chat history, behind one interface with
//! two backends: `sled` (embedded, one process) and `redis` (shared by any
//! number of instances). Knows no HTTP; nothing above this module learns
//! which backend it has.
//!
//! `Store` is an enum over the backends rather than a trait object: there
//! are exactly two, both always compiled in, and every call on the request
//! path (`/me` is one) stays a direct call with no boxed future.

mod audit;
pub(crate) mod codec;
mod events;
mod factors;
mod migrate;
mod prune;
mod records;
mod redis;
mod sled;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use audit::{Actor, AuditId, AuditKind, AuditQuery, AuditRecord, AuditRetention};
pub use codec::CodecError;
pub use records::{
    Factors, IdentityRecord, KeyFactor, MailRecord, MessageRecord, NewUser, RemovedUser,
    SessionRecord, TicketKey, TicketKind, TicketRecord, TotpFactor, UserRecord,
};

use self::redis::RedisStore;
use self::sled::SledStore;
use crate::config::{Backend as BackendKind, StorageConfig};
use crate::domain::{Role, RoomName, TokenHash, UserId};

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// What can go wrong below the auth layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (a server, or the CLI) holds the database.
    #[error("the database at {0} is in use by another sessiond process (a running server?); stop it first")]
    Locked(PathBuf),
    /// Written by a newer sessiond; opening it here could damage it.
    #[error("the database at {path} has schema version {found}, newer than this sessiond reads ({SCHEMA_VERSION}); upgrade sessiond")]
    NewerSchema {
        /// The database directory.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The files were damaged; they are left as they were found.
    #[error("the database at {path} is damaged: {reason}; the files were left as they are: restore the data directory from a backup")]
    Damaged {
        /// The database directory.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The files cannot be opened as a database.
    #[error("cannot open the database at {path}: {message}")]
    Open {
        /// The database directory.
        path: PathBuf,
        /// sled's reason, on one line.
        message: String,
    },
    /// The name is registered already (ignoring case).
    #[error("username is taken")]
    UsernameTaken,
    /// The e-mail is registered already (ignoring case).
    #[error("email is taken")]
    EmailTaken,
    /// The user does not exist (any more).
    #[error("no such user")]
    NoSuchUser,
    /// The change would leave no admin.
    #[error("that would leave no admin")]
    LastAdmin,
    /// The identity is linked to another user.
    #[error("that identity is linked to another user")]
    IdentityTaken,
    /// The change would leave the user no way to sign in.
    #[error("that is the user's last way to sign in")]
    LastIdentity,
    /// A stored record does not decode.
    #[error("damaged record in tree {tree}: {source}")]
    Corrupt {
        /// Which tree.
        tree: &'static str,
        /// Why.
        source: CodecError,
    },
    /// sled failed while serving.
    #[error("storage error: {0}")]
    Sled(#[from] ::sled::Error),
    /// Redis cannot be reached, or did not answer within `redis_timeout`:
    /// the request may succeed once it is back.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error.
    #[error("Redis error: {0}")]
    Redis(String),
    /// The Redis server or prefix cannot be used as configured.
    #[error("{0}")]
    RedisRefused(String),
    /// A restore (or migrate) found data where it would write.
    #[error("the store already holds data; restore only into an empty data dir or Redis prefix")]
    NotEmpty,
    /// A backup file cannot be restored.
    #[error("cannot restore: {0}")]
    Backup(#[from] backup::BackupError),
}

/// What the store tells the server as it happens: on Redis, whichever
/// instance caused it.
#[derive(Debug, Clone)]
pub enum StoreEvent {
    /// A session was removed (logout, revocation, password change, user
    /// removal, pruning): its sockets close.
    Ended(TokenHash),
    /// A chat message is stored: the room's sockets receive it.
    Message(MessageRecord),
    /// The backend stopped reporting events (Redis unreachable): sessions
    /// can no longer be checked, and endings may be missed.
    Unavailable,
    /// Events flow again; endings published meanwhile were missed, so
    /// whoever holds sessions should check them again.
    Restored,
}

/// What a check found: counts, and one sentence per inconsistency.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Users read.
    pub users: u64,
    /// Sessions read.
    pub sessions: u64,
    /// Each inconsistency, naming the tree or key.
    pub problems: Vec<String>,
}

/// A handle to the configured backend; clone it freely, open it once per
/// process.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sled(SledStore),
    Redis(RedisStore),
}

/// Runs one method on whichever backend this is: sled's are plain calls
/// (local trees answer in microseconds), Redis's are awaited.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sled(s) => s.$method($($arg),*),
            Backend::Redis(r) => r.$method($($arg),*).await,
        }
    };
}

/// Runs one method that is synchronous on both backends.
macro_rules! dispatch_sync {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sled(s) => s.$method($($arg),*),
            Backend::Redis(r) => r.$method($($arg),*),
        }
    };
}

// After the macros, which it uses.
mod backup;
pub use backup::{BackupError, RestoreReport, Snapshot};

impl Store {
    /// Opens the configured backend for a server: a Redis that does not
    /// answer yet is waited for (logged once), so instances may start
    /// before their Redis.
    pub async fn open(config: &StorageConfig) -> Result<Store, StoreError> {
        Self::open_with(config, true).await
    }

    /// Opens the configured backend for one command: a Redis that does not
    /// answer is an error at once.
    pub async fn open_now(config: &StorageConfig) -> Result<Store, StoreError> {
        Self::open_with(config, false).await
    }

    async fn open_with(config: &StorageConfig, wait: bool) -> Result<Store, StoreError> {
        let backend = match config.backend {
            BackendKind::Sled => Backend::Sled(SledStore::open(config)?),
            BackendKind::Redis => Backend::Redis(RedisStore::open(config, wait).await?),
        };
        Ok(Store { backend })
    }

    /// Which backend this is, as `storage.backend` names it: for the
    /// start-up log line (and tests that check what they run on).
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sled(_) => "sled",
            Backend::Redis(_) => "redis",
        }
    }

    /// The development secret every instance sharing this store signs
    /// with, `candidate` if none was kept yet; `None` for a store of one
    /// process (sled), whose secret lives in the data dir.
    pub async fn shared_dev_secret(&self, candidate: &str) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(None),
            Backend::Redis(r) => r.shared_dev_secret(candidate).await.map(Some),
        }
    }

    /// Failed logins within `window` per subject (count, oldest in Unix
    /// millis) as every instance counted them; `None` for a store of one
    /// process, whose own count is the whole truth.
    pub async fn shared_login_failures(
        &self,
        subjects: &[&str],
        window: Duration,
    ) -> Result<Option<Vec<(u32, u64)>>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(None),
            Backend::Redis(r) => r.login_failures(subjects, window).await.map(Some),
        }
    }

    /// Counts a failed login against each subject where every instance
    /// sees it (nothing to do for a store of one process).
    pub async fn count_login_failure(
        &self,
        subjects: &[&str],
        window: Duration,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Redis(r) => r.count_login_failure(subjects, window).await,
        }
    }

    /// Forgets a subject's failed logins on every instance.
    pub async fn forgive_login_failures(&self, subject: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Redis(r) => r.forgive_login_failures(subject).await,
        }
    }

    /// Of these sessions, those no longer stored (checked at once).
    pub async fn missing_sessions(
        &self,
        hashes: &[TokenHash],
    ) -> Result<Vec<TokenHash>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let mut missing = Vec::new();
                for hash in hashes {
                    if s.session(hash)?.is_none() {
                        missing.push(*hash);
                    }
                }
                Ok(missing)
            }
            Backend::Redis(r) => r.missing_sessions(hashes).await,
        }
    }

    /// Whether the backend answers: what `/healthz` reports.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Redis(r) => r.ping().await,
        }
    }

    /// Makes every change committed so far durable, if the configuration
    /// asks answers to wait for it. Concurrent callers share one write.
    pub async fn commit_durably(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.commit_durably().await,
            Backend::Redis(r) => r.commit_durably().await,
        }
    }

    /// Writes everything out and releases the backend. For shutdown.
    pub async fn close(self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sled(s) => s.close().await,
            Backend::Redis(r) => r.close().await,
        }
    }

    /// Adds a user and both indexes at once; a name or e-mail already taken
    /// (ignoring case) is refused, even by a racing registration. `audit`
    /// goes to the new user's log with it (`AuditRecord::of_new_user`).
    ///
    /// Every change below takes the log entries that record it and writes
    /// them with the change (sled: the same transaction; Redis: the same
    /// script), and only if the change is made.
    pub async fn create_user(
        &self,
        new: NewUser<'_>,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        self.create_user_linked(new, None, audit).await
    }

    /// Adds a user as `create_user` does, linked to `identity` at once (an
    /// ID-token sign-in's first visit): an identity that another sign-in
    /// linked meanwhile is refused with `IdentityTaken`.
    pub async fn create_user_linked(
        &self,
        new: NewUser<'_>,
        identity: Option<&IdentityRecord>,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        dispatch!(self.create_user_linked(new, identity, audit))
    }

    /// The user with this id, if any.
    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(self.user(id))
    }

    /// Finds a user by name, ignoring case.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(self.user_by_name(name))
    }

    /// Finds a user by e-mail, ignoring case.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(self.user_by_email(email))
    }

    /// Up to `limit` users with ids after `after`, in id order. Ids only
    /// grow, so a user registered while paging is neither skipped nor
    /// repeated.
    pub async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        dispatch!(self.list_users(after, limit))
    }

    /// Users stored.
    pub async fn user_count(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok(s.user_count()),
            Backend::Redis(r) => r.user_count().await,
        }
    }

    /// Changes a role; refuses to demote the last admin. Setting the role
    /// a user has writes nothing, `audit` included.
    pub async fn set_role(
        &self,
        id: UserId,
        role: Role,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        dispatch!(self.set_role(id, role, audit))
    }

    /// Replaces a password hash.
    pub async fn set_password_hash(
        &self,
        id: UserId,
        hash: &str,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        dispatch!(self.set_password_hash(id, hash, audit))
    }

    /// Removes a user, both indexes, their identities and every session at
    /// once, so the name and e-mail are free at once. Refuses the last
    /// admin. The user's log stays (with `audit`) until pruned.
    pub async fn remove_user(
        &self,
        id: UserId,
        audit: &[AuditRecord],
    ) -> Result<RemovedUser, StoreError> {
        dispatch!(self.remove_user(id, audit))
    }

    /// Applies `change` to a user's second factors and writes the user back,
    /// atomically against every other write to that user on any instance
    /// (sled: one transaction; Redis: one compare-and-write script, read
    /// again on a conflict). `change` answers `None` to write nothing; so
    /// does this. `NoSuchUser` if the user is gone.
    pub async fn change_factors<T>(
        &self,
        id: UserId,
        audit: &[AuditRecord],
        change: impl Fn(&mut Factors) -> Option<T>,
    ) -> Result<Option<(T, UserRecord)>, StoreError> {
        dispatch!(self.change_factors(id, audit, change))
    }

    /// Makes `to` the user's verified address (a code mailed to it came
    /// back, or an operator vouched) if their address is still `from`
    /// (ignoring case), moving the index when the two differ; atomically
    /// against every other write to the user. `None` if the address is no
    /// longer `from`, `EmailTaken` if another user has `to`.
    pub async fn verify_email(
        &self,
        id: UserId,
        from: &str,
        to: &str,
        audit: &[AuditRecord],
    ) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(self.verify_email(id, from, to, audit))
    }

    /// Stores a ticket (ceremony state), replacing one under the same key.
    pub async fn put_ticket(
        &self,
        key: &TicketKey,
        record: &TicketRecord,
    ) -> Result<(), StoreError> {
        dispatch!(self.put_ticket(key, record))
    }

    /// The ticket under `key`, unless it has ended.
    pub async fn ticket(&self, key: &TicketKey) -> Result<Option<TicketRecord>, StoreError> {
        let now = now_ms();
        dispatch!(self.ticket(key, now))
    }

    /// Removes the ticket under `key` and answers it unless it had ended:
    /// single use, even between instances racing for it.
    pub async fn take_ticket(&self, key: &TicketKey) -> Result<Option<TicketRecord>, StoreError> {
        let now = now_ms();
        dispatch!(self.take_ticket(key, now))
    }

    /// Replaces the ticket under `key` with `new` (`None`: removes it) if
    /// it still is `expected` (`None`: there is none, or it has ended):
    /// compare-and-swap, so of two instances changing the same ticket one
    /// wins and the other reads again. Answers whether it was replaced.
    pub async fn swap_ticket(
        &self,
        key: &TicketKey,
        expected: Option<&TicketRecord>,
        new: Option<&TicketRecord>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        dispatch!(self.swap_ticket(key, expected, new, now))
    }

    /// Every live ticket of the lasting kinds (`TicketKind::LASTING`): what
    /// backups keep, and what the OIDC provider's check reads.
    pub async fn lasting_tickets(&self) -> Result<Vec<(TicketKey, TicketRecord)>, StoreError> {
        let now = now_ms();
        dispatch!(self.lasting_tickets(now))
    }

    /// Queues a mail for the sender task; answers its id. Durable with the
    /// next `commit_durably`, which the request wanting it awaits.
    pub async fn queue_mail(&self, mail: &MailRecord) -> Result<u64, StoreError> {
        dispatch!(self.queue_mail(mail))
    }

    /// Claims the first mail due by `now_ms` for one send: no other
    /// sender (on Redis, no other instance) gets it before
    /// `now_ms + lease_ms`.
    pub async fn claim_mail(
        &self,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<(u64, MailRecord)>, StoreError> {
        dispatch!(self.claim_mail(now_ms, lease_ms))
    }

    /// Removes a mail from the outbox: sent, or given up on.
    pub async fn finish_mail(&self, id: u64) -> Result<(), StoreError> {
        dispatch!(self.finish_mail(id))
    }

    /// Puts a claimed mail back for another try at its `next_attempt_ms`;
    /// one finished meanwhile stays finished.
    pub async fn retry_mail(&self, id: u64, mail: &MailRecord) -> Result<(), StoreError> {
        dispatch!(self.retry_mail(id, mail))
    }

    /// Every mail in the outbox.
    pub async fn queued_mails(&self) -> Result<Vec<(u64, MailRecord)>, StoreError> {
        dispatch!(self.queued_mails())
    }

    /// Stores a new session with its index entries. Refused if its user is
    /// gone, so a login racing a user's removal leaves nothing behind.
    pub async fn create_session(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self.create_session(hash, record, audit))
    }

    /// The stored session, ended or not: deadlines are the caller's to check.
    pub async fn session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self.session(hash))
    }

    /// The stored session and its user, read together: what every
    /// authenticated request needs, in one trip to the backend.
    pub async fn session_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError> {
        dispatch!(self.session_with_user(hash))
    }

    /// Records activity: moves `last_seen` and the idle deadline, and the
    /// expiry entry with them, at once. A session removed meanwhile stays
    /// removed: the touch finds nothing and writes nothing.
    pub async fn touch_session(
        &self,
        hash: &TokenHash,
        now_ms: u64,
        idle_timeout_ms: u64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self.touch_session(hash, now_ms, idle_timeout_ms))
    }

    /// Removes a session and its index entries; returns it if it was there
    /// (and only then writes `audit`).
    pub async fn end_session(
        &self,
        hash: &TokenHash,
        audit: &[AuditRecord],
    ) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self.end_session(hash, audit))
    }

    /// One user's stored sessions (ended ones included until pruned), at
    /// the cost of what that user has.
    pub async fn sessions_of(
        &self,
        user: UserId,
    ) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        dispatch!(self.sessions_of(user))
    }

    /// Ends every session of `user` but `except`; returns those ended,
    /// writing `audit` if there were any.
    pub async fn end_sessions_of(
        &self,
        user: UserId,
        except: Option<&TokenHash>,
        audit: &[AuditRecord],
    ) -> Result<Vec<TokenHash>, StoreError> {
        dispatch!(self.end_sessions_of(user, except, audit))
    }

    /// Ends every stored session; returns how many.
    pub async fn end_all_sessions(&self) -> Result<usize, StoreError> {
        dispatch!(self.end_all_sessions())
    }

    /// Every stored session, for the CLI.
    pub async fn all_sessions(&self) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        dispatch!(self.all_sessions())
    }

    /// Sessions stored (live, or ended and not yet pruned).
    pub async fn session_count(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok(s.session_count()),
            Backend::Redis(r) => r.session_count().await,
        }
    }

    /// The user an identity is linked to, if any.
    pub async fn identity_owner(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserId>, StoreError> {
        dispatch!(self.identity_owner(issuer, subject))
    }

    /// Links an identity to an existing user; linking it again to the
    /// same user changes nothing. `IdentityTaken` if another user has it.
    pub async fn link_identity(
        &self,
        user: UserId,
        identity: &IdentityRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self.link_identity(user, identity, audit))
    }

    /// A user's linked identities, oldest link first.
    pub async fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRecord>, StoreError> {
        dispatch!(self.identities_of(user))
    }

    /// Unlinks one of a user's identities by its public id; `None` if the
    /// user has no such identity. Refused with `LastIdentity` when it is
    /// the user's only way to sign in (no password, no other identity).
    pub async fn unlink_identity(
        &self,
        user: UserId,
        public_id: &str,
        audit: &[AuditRecord],
    ) -> Result<Option<IdentityRecord>, StoreError> {
        dispatch!(self.unlink_identity(user, public_id, audit))
    }

    /// Writes log entries that record no other change (a refused sign-in,
    /// a recovery request).
    pub async fn record(&self, audit: &[AuditRecord]) -> Result<(), StoreError> {
        if audit.is_empty() {
            return Ok(());
        }
        dispatch!(self.record(audit))
    }

    /// Log entries, newest first, as `query` asks.
    pub async fn activity(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<(AuditId, AuditRecord)>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                // A kind-filtered view of everyone's log may walk much of
                // the tree: off the request threads.
                let (s, query) = (s.clone(), *query);
                tokio::task::spawn_blocking(move || s.activity(&query))
                    .await
                    .unwrap_or_else(|e| {
                        let bug = format!("the log reading task failed: {e}");
                        Err(StoreError::Sled(::sled::Error::ReportableBug(bug)))
                    })
            }
            Backend::Redis(r) => r.activity(query).await,
        }
    }

    /// Removes log entries older than `keep.keep_ms` and each user's oldest
    /// past `keep.per_user`; answers how many.
    pub async fn prune_activity(
        &self,
        now_ms: u64,
        keep: AuditRetention,
    ) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let s = s.clone();
                // Tree walks: off the request threads.
                tokio::task::spawn_blocking(move || s.prune_activity(now_ms, keep))
                    .await
                    .unwrap_or_else(|e| {
                        let bug = format!("the pruning task failed: {e}");
                        Err(StoreError::Sled(::sled::Error::ReportableBug(bug)))
                    })
            }
            Backend::Redis(r) => r.prune_activity(now_ms, keep).await,
        }
    }

    /// Stores a chat message and, once it is durable, hands it to every
    /// subscriber (`StoreEvent::Message`), the sender's own socket included.
    pub async fn post_message(
        &self,
        room: &RoomName,
        from: UserId,
        from_name: &str,
        text: &str,
        now_ms: u64,
    ) -> Result<MessageRecord, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.post_message(room, from, from_name, text, now_ms).await,
            Backend::Redis(r) => r.post_message(room, from, from_name, text, now_ms).await,
        }
    }

    /// Up to `limit` of the newest messages in `room` older than `before`
    /// (all, if `None`), oldest first.
    pub async fn messages(
        &self,
        room: &RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        dispatch!(self.messages(room, before, limit))
    }

    /// Removes every session whose deadline is at or before `now_ms`;
    /// returns how many. The work follows what has ended.
    pub async fn prune_ended(&self, now_ms: u64) -> Result<u64, StoreError> {
        dispatch!(self.prune_ended(now_ms))
    }

    /// The earliest deadline of any stored session.
    pub async fn next_deadline_ms(&self) -> Result<Option<u64>, StoreError> {
        dispatch!(self.next_deadline_ms())
    }

    /// Every session removal and every stored chat message, as they happen.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<StoreEvent> {
        dispatch_sync!(self.subscribe())
    }

    /// Reads everything and reports each disagreement between an index and
    /// its records. Read-only.
    pub async fn check(&self) -> Result<CheckReport, StoreError> {
        dispatch!(self.check())
    }

    /// Puts right what `check` finds, where a backend can: on Redis, what
    /// a crash between two steps of a change left (a change there spans
    /// hash slots, so it runs in steps); sled changes an index with its
    /// record in one transaction and has nothing to repair. Answers how
    /// many repairs ran and a fresh check.
    pub async fn repair(&self) -> Result<(usize, CheckReport), StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok((0, s.check()?)),
            Backend::Redis(r) => r.repair().await,
        }
    }

    /// Activity writes by this process since start: the only writes a
    /// read-only request can cause, so reads-do-not-write can be measured.
    pub fn touches_total(&self) -> u64 {
        dispatch_sync!(self.touches_total())
    }

    /// Sessions this process's pruner has removed since start.
    pub fn pruned_total(&self) -> u64 {
        dispatch_sync!(self.pruned_total())
    }
}

/// Now in Unix milliseconds: every stored time uses it.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
