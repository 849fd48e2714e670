//! sled and nothing else: trees, records, transactions, the expiry index and
//! pruning. Knows no HTTP.
//!
//! `SledStore` is a cheap `Clone` over `Arc<Shared>`; open it once per process.
//! Every change that touches more than one tree is one transaction, so an
//! index never disagrees with its record, even after a crash.

mod audit;
mod backup;
mod check;
mod flush;
mod identities;
mod messages;
mod outbox;
mod prune;
mod seal;
mod sessions;
mod tickets;
mod users;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::transaction::TransactionError;
use tokio::sync::mpsc;

use super::events::Subscribers;
use super::prune::PruneSchedule;
use super::{
    audit::AuditRecord, codec, records, CheckReport, CodecError, Factors, IdentityRecord,
    MessageRecord, NewUser, RemovedUser, SessionRecord, StoreError, StoreEvent, TicketKey,
    TicketRecord, UserRecord, SCHEMA_VERSION,
};

use crate::config::{Durability, StorageConfig};
use crate::domain::TokenHash;

/// Below this size a database is counted before serving, exactly.
const SCAN_AT_OPEN_BYTES: u64 = 64 * 1024 * 1024;

/// The embedded backend: one process, one data dir; clone it freely.
#[derive(Clone)]
pub struct SledStore {
    shared: Arc<Shared>,
}

struct Shared {
    db: sled::Db,
    users: sled::Tree,
    user_names: sled::Tree,
    user_emails: sled::Tree,
    sessions: sled::Tree,
    session_expiry: sled::Tree,
    user_sessions: sled::Tree,
    meta: sled::Tree,
    messages: sled::Tree,
    identities: sled::Tree,
    user_identities: sled::Tree,
    /// Ceremony state between two requests, by ticket key.
    tickets: sled::Tree,
    /// deadline ++ ticket key -> (): what the pruner walks.
    ticket_expiry: sled::Tree,
    /// id -> mail waiting to be sent.
    outbox: sled::Tree,
    /// The security log (`audit.rs`).
    audit: sled::Tree,
    /// Told of every entry written (`store::audit::Written`).
    written: super::audit::Written,
    durability: Durability,
    flusher: flush::Flusher,
    /// When the pruner next runs, and its wake-up.
    prune_schedule: PruneSchedule,
    /// Changes since open plus, once counted, what was stored at open.
    session_count: AtomicI64,
    user_count: AtomicI64,
    pruned_total: AtomicU64,
    touches_total: AtomicU64,
    /// Told of every session removal, whatever removed it, and of every
    /// chat message once durable.
    events: Subscribers,
    /// The start-up count of a large database, stopped by a close.
    counting: Mutex<Option<std::thread::JoinHandle<()>>>,
    closing: AtomicBool,
    /// `<data_dir>/db`.
    path: PathBuf,
    /// Released only after sled has closed the files (and, at a clean
    /// close, after they are sealed).
    lock: Arc<seal::DirLock>,
}

impl SledStore {
    /// Opens (or creates) `<data_dir>/db`, refusing a database that another
    /// process holds or that a newer sessiond wrote.
    pub fn open(config: &StorageConfig) -> Result<SledStore, StoreError> {
        let path = config.data_dir.join("db");
        let lock = seal::DirLock::acquire(&path)?;
        seal::check_before_open(&path, marker_path(&path).exists())?;
        let flush_every = match config.durability {
            Durability::Sync => 500,
            Durability::Periodic => config.flush_interval.as_millis().max(1) as u64,
        };
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(config.cache_capacity_mb.saturating_mul(1024 * 1024))
            .flush_every_ms(Some(flush_every))
            .open()
            .map_err(|e| open_error(&path, e))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_error(&path, e));
        let meta = tree("meta")?;
        check_schema(&path, &db, &meta)?;
        let sessions = tree("sessions")?;
        let users = tree("users")?;
        let store = SledStore {
            shared: Arc::new(Shared {
                users,
                meta,
                messages: tree("messages")?,
                identities: tree("identities")?,
                user_identities: tree("user_identities")?,
                tickets: tree("tickets")?,
                ticket_expiry: tree("ticket_expiry")?,
                outbox: tree("outbox")?,
                audit: tree("audit")?,
                written: Default::default(),
                user_names: tree("user_names")?,
                user_emails: tree("user_emails")?,
                session_expiry: tree("session_expiry")?,
                user_sessions: tree("user_sessions")?,
                sessions,
                flusher: flush::Flusher::new(db.clone()),
                db,
                durability: config.durability,
                prune_schedule: PruneSchedule::new(),
                session_count: AtomicI64::new(0),
                user_count: AtomicI64::new(0),
                pruned_total: AtomicU64::new(0),
                touches_total: AtomicU64::new(0),
                events: Subscribers::default(),
                counting: Mutex::new(None),
                closing: AtomicBool::new(false),
                path,
                lock: Arc::new(lock),
            }),
        };
        store.init_user_ids()?;
        if store.shared.db.size_on_disk()? < SCAN_AT_OPEN_BYTES {
            store.count_stored();
        } else {
            let counting = store.clone();
            let spawned = std::thread::Builder::new()
                .name("sessiond-count".into())
                .spawn(move || counting.count_stored());
            match spawned {
                Ok(thread) => {
                    if let Ok(mut slot) = store.shared.counting.lock() {
                        *slot = Some(thread);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot count stored sessions"),
            }
        }
        Ok(store)
    }

    /// Adds what was stored at open to the counts. A large database is
    /// counted on a thread of its own (a scan of a million sessions would
    /// delay start-up by seconds); until it finishes the counts show only
    /// the changes since open, and a session made or ended during the scan
    /// may be counted twice or not at all. A close stops the count.
    fn count_stored(&self) {
        let s = &self.shared;
        let count = |tree: &sled::Tree| {
            let mut n = 0i64;
            for (i, key) in tree.iter().keys().enumerate() {
                if i % 4096 == 0 && s.closing.load(Ordering::Relaxed) {
                    return None;
                }
                key.ok()?;
                n += 1;
            }
            Some(n)
        };
        if let (Some(users), Some(sessions)) = (count(&s.users), count(&s.sessions)) {
            s.user_count.fetch_add(users, Ordering::Relaxed);
            s.session_count.fetch_add(sessions, Ordering::Relaxed);
        }
    }

    /// Makes every change committed so far durable, if the configuration
    /// asks answers to wait for the disk. Concurrent callers share one write.
    pub async fn commit_durably(&self) -> Result<(), StoreError> {
        match self.shared.durability {
            Durability::Sync => self.shared.flusher.flush().await,
            Durability::Periodic => Ok(()),
        }
    }

    /// Writes everything to disk; then, if this is the last handle, closes
    /// sled and seals the files, so the next start can open them without
    /// checking a copy first. For shutdown. With other handles still alive
    /// (a start-up count still running, say) the files are left unsealed,
    /// which only costs the next start that check: a seal is written only
    /// once sled can no longer change the files.
    pub async fn close(self) -> Result<(), StoreError> {
        self.shared.db.flush_async().await?;
        self.shared.closing.store(true, Ordering::Relaxed);
        let counting = self.shared.counting.lock().ok().and_then(|mut c| c.take());
        if let Some(thread) = counting {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let Ok(shared) = Arc::try_unwrap(self.shared) else {
            tracing::debug!("database still in use at close; not sealed");
            return Ok(());
        };
        shared.flusher.stop().await;
        let path = shared.path.clone();
        let lock = shared.lock.clone();
        drop(shared);
        seal::write(&path);
        drop(lock);
        Ok(())
    }

    /// Sessions stored (live, or ended and not yet pruned).
    pub fn session_count(&self) -> u64 {
        self.shared.session_count.load(Ordering::Relaxed).max(0) as u64
    }

    /// A stream of every session removal (logout, revocation, password
    /// change, user removal, pruning) and every stored chat message: the
    /// one place that learns of all of them, so nothing else has to
    /// remember to tell anyone.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<StoreEvent> {
        self.shared.events.subscribe()
    }

    fn notify_ended(&self, hashes: &[TokenHash]) {
        for hash in hashes {
            self.shared.events.tell(StoreEvent::Ended(*hash));
        }
    }

    fn notify_message(&self, message: &MessageRecord) {
        self.shared
            .events
            .tell(StoreEvent::Message(message.clone()));
    }

    /// Activity writes since start: the only writes a read-only request
    /// can cause, so reads-do-not-write can be measured.
    pub fn touches_total(&self) -> u64 {
        self.shared.touches_total.load(Ordering::Relaxed)
    }

    /// Sessions the pruner has removed since start.
    pub fn pruned_total(&self) -> u64 {
        self.shared.pruned_total.load(Ordering::Relaxed)
    }
}

fn open_error(path: &Path, err: sled::Error) -> StoreError {
    let message = err.to_string();
    if message.contains("could not acquire lock") {
        return StoreError::Locked(path.to_owned());
    }
    StoreError::Open {
        path: path.to_owned(),
        message: message.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Refuses a database a newer sessiond wrote, and one that sled opened as
/// empty although it held records before: sled 0.34 reads a truncated or
/// overwritten data file as an empty database, so a marker beside it
/// (`<db>.initialized`, written once the schema record is on disk) tells
/// "new" from "lost".
fn check_schema(path: &Path, db: &sled::Db, meta: &sled::Tree) -> Result<(), StoreError> {
    let marker = marker_path(path);
    let mark = || {
        std::fs::write(&marker, format!("sessiond schema {SCHEMA_VERSION}\n")).map_err(|e| {
            StoreError::Open {
                path: marker.clone(),
                message: e.to_string(),
            }
        })
    };
    match meta.get(SCHEMA_KEY)? {
        None if marker.exists() => Err(StoreError::Damaged {
            path: path.to_owned(),
            reason: LOST_RECORDS.into(),
        }),
        None => {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
            mark()
        }
        Some(v) => {
            let found = <[u8; 4]>::try_from(v.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Open {
                    path: path.to_owned(),
                    message: "the schema version record is damaged".into(),
                })?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: path.to_owned(),
                    found,
                });
            }
            if !marker.exists() {
                mark()?;
            }
            Ok(())
        }
    }
}

/// Why a database that had records and opens without them is refused.
const LOST_RECORDS: &str =
    "it held records before, and none can be read now (a truncated or overwritten file?)";

/// Where the schema version lives in the `meta` tree.
const SCHEMA_KEY: &[u8] = b"schema_version";

/// Exists once the database has held its schema record.
fn marker_path(db_path: &Path) -> PathBuf {
    db_path.with_extension("initialized")
}

/// Folds sled's transaction outcome into the layer's error.
fn tx<A>(result: Result<A, TransactionError<StoreError>>) -> Result<A, StoreError> {
    result.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    })
}

fn decode<T: codec::Record>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

#[cfg(test)]
mod tests;
