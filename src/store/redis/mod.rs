//! The shared backend: users, sessions, identities and chat history on a
//! Redis server, so any number of instances act as one server. Knows no
//! HTTP.
//!
//! Every change touching more than one key is one Lua script
//! (`scripts.rs`) over the keys of one hash slot (`keys.rs`), so the same
//! code runs on one Redis server and on a Redis Cluster; endings and chat
//! messages are published by the same script that makes them, on one
//! channel that every instance follows (`events.rs`). Every call waits at
//! most `redis_timeout`, then fails as `Unavailable`.

mod audit;
mod backup;
mod check;
mod conn;
mod events;
mod identities;
mod import;
mod keys;
mod messages;
mod outbox;
mod prune;
mod scripts;
mod sessions;
mod throttle;
mod tickets;
mod users;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{FromRedisValue, RedisError};
use tokio::task::JoinHandle;

use super::events::Subscribers;
use super::prune::PruneSchedule;
use super::{
    audit::AuditRecord, codec, CheckReport, Factors, IdentityRecord, MessageRecord, NewUser,
    RemovedUser, SessionRecord, StoreError, StoreEvent, TicketKey, TicketRecord, UserRecord,
    SCHEMA_VERSION,
};
use crate::config::{Durability, StorageConfig};
use conn::Conn;
use keys::Keys;

/// A session's key outlives its deadline by this much: lookups decide by
/// the deadline, and the pruner, not Redis, removes it and tells the
/// sockets.
const KEY_GRACE_MS: u64 = 10 * 60 * 1000;

/// The Redis backend; clone it freely.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Conn,
    /// Where scripts run: `conn` itself, or with `redis_wait_replicas` a
    /// connection of their own, since `WAIT` covers only the writes of the
    /// connection it is sent on and blocks that connection meanwhile.
    write_conn: Conn,
    /// The node `redis_url` names: events are followed there.
    client: redis::Client,
    keys: Keys,
    timeout: Duration,
    durability: Durability,
    wait_replicas: u32,
    scripts: scripts::Scripts,
    /// This process's subscribers to the shared event channel.
    subscribers: Subscribers,
    events_task: Mutex<Option<JoinHandle<()>>>,
    /// When this instance's pruner next runs, and its wake-up.
    prune_schedule: PruneSchedule,
    touches_total: AtomicU64,
    pruned_total: AtomicU64,
    /// Names this process in the pruning lease.
    instance: String,
    /// Users whose logs this process has listed in `{all}:audit_users`.
    audit_listed: Mutex<std::collections::HashSet<u64>>,
    /// Told of every entry written (`store::audit::Written`).
    written: super::audit::Written,
}

impl Shared {
    /// Stops following the shared channel.
    fn stop_events(&self) {
        if let Some(task) = self.events_task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop_events();
    }
}

impl RedisStore {
    /// Connects to `redis_url`. With `wait`, an unreachable server is
    /// retried until it answers (logged once): a server that starts before
    /// its Redis serves once Redis is up. Without it (the CLI), the first
    /// failure is the answer. Then checks the server's durability
    /// settings and the schema version under the prefix.
    pub async fn open(config: &StorageConfig, wait: bool) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| StoreError::RedisRefused(format!("storage.redis_url: {e}")))?;
        let conn = Conn::open(&client, config, wait).await?;
        let write_conn = if config.redis_wait_replicas > 0 {
            Conn::open(&client, config, wait).await?
        } else {
            conn.clone()
        };
        let mut store = RedisStore {
            shared: Arc::new(Shared {
                conn,
                write_conn,
                client,
                keys: Keys::new(&config.redis_key_prefix),
                timeout: config.redis_timeout,
                durability: config.durability,
                wait_replicas: config.redis_wait_replicas,
                scripts: scripts::Scripts::new(),
                subscribers: Subscribers::default(),
                events_task: Mutex::new(None),
                prune_schedule: PruneSchedule::new(),
                touches_total: AtomicU64::new(0),
                pruned_total: AtomicU64::new(0),
                instance: crate::domain::hex(&rand_bytes()),
                audit_listed: Mutex::default(),
                written: Default::default(),
            }),
        };
        store.wait_until_reachable(wait).await?;
        store.check_durability().await?;
        store.check_schema().await?;
        store.start_events();
        Ok(store)
    }

    async fn wait_until_reachable(&mut self, wait: bool) -> Result<(), StoreError> {
        // Where, without the password a URL may carry.
        let addr = self.shared.client.get_connection_info().addr().to_string();
        let mut logged = false;
        loop {
            match self.ping().await {
                Ok(()) => {
                    if logged {
                        tracing::info!(%addr, "Redis answers; starting");
                    }
                    return Ok(());
                }
                Err(StoreError::Unavailable(e)) if !wait => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot reach Redis at {addr} (storage.redis_url): {e}"
                    )))
                }
                Err(e) if !wait => return Err(e),
                Err(e) => {
                    if !logged {
                        tracing::warn!(%addr, error = %e, "Redis is not answering; retrying until it does");
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// `durability = "sync"` promises that an answered write survives a
    /// Redis crash: only true with an fsync per write and no eviction, on
    /// every primary of a cluster.
    async fn check_durability(&self) -> Result<(), StoreError> {
        if self.shared.durability != Durability::Sync {
            return Ok(());
        }
        let wanted = [
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("maxmemory-policy", "noeviction"),
        ];
        for (setting, value) in wanted {
            let found = bounded(
                self.shared.timeout,
                self.shared
                    .conn
                    .on_every_primary(redis::cmd("CONFIG").arg("GET").arg(setting)),
            )
            .await;
            let nodes = match found {
                Ok(nodes) => nodes,
                Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Redis server's settings (CONFIG disabled?); its durability is not checked");
                    return Ok(());
                }
            };
            for (node, reply) in nodes {
                let pair: Vec<String> = redis::from_redis_value(reply).unwrap_or_default();
                let actual = pair.get(1).map(String::as_str).unwrap_or("");
                if actual != value {
                    let on = if node.is_empty() {
                        String::new()
                    } else {
                        format!(" on {node}")
                    };
                    return Err(StoreError::RedisRefused(format!(
                        "storage.durability = \"sync\" needs the Redis server's {setting} to be {value} (it is {actual:?}{on}): run CONFIG SET {setting} {value} and add it to redis.conf, or set storage.durability = \"periodic\""
                    )));
                }
            }
        }
        Ok(())
    }

    /// The records' schema under the prefix: a newer one is refused, and
    /// so is data in the key layout before Cluster support (whose schema
    /// key had no `{all}` tag).
    async fn check_schema(&self) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let earlier: u64 = self
            .run(redis::cmd("EXISTS").arg(keys.plain("schema_version")))
            .await?;
        if earlier > 0 {
            return Err(StoreError::RedisRefused(format!(
                "the data under prefix {:?} is in the key layout of a sessiond before Redis Cluster support, which this one does not read: serve it with the sessiond that wrote it, or start on an empty prefix (storage.redis_key_prefix)",
                keys.prefix()
            )));
        }
        let key = keys.all("schema_version");
        let _: Option<String> = self
            .run(redis::cmd("SET").arg(&key).arg(SCHEMA_VERSION).arg("NX"))
            .await?;
        let found: u32 = self.run(redis::cmd("GET").arg(&key)).await?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::RedisRefused(format!(
                "the data under prefix {:?} has schema version {found}, newer than this sessiond reads ({SCHEMA_VERSION}); upgrade sessiond",
                keys.prefix()
            )));
        }
        Ok(())
    }

    /// Runs one command, waiting at most `redis_timeout`.
    async fn run<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.shared.conn.clone();
        bounded(self.shared.timeout, cmd.query_async(&mut conn)).await
    }

    /// Runs these commands side by side (one pipelined write on one
    /// server; each to its own node on a cluster), in order of answer.
    async fn run_all<T: FromRedisValue>(
        &self,
        cmds: Vec<redis::Cmd>,
    ) -> Result<Vec<T>, StoreError> {
        futures_util::future::try_join_all(cmds.iter().map(|cmd| self.run(cmd))).await
    }

    /// Runs one script that writes, on the connection `WAIT` follows,
    /// waiting at most `redis_timeout`. `keys` are of one slot.
    async fn script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[Vec<u8>],
    ) -> Result<T, StoreError> {
        self.invoke(&self.shared.write_conn, script, keys, args)
            .await
    }

    /// Runs one script that only reads (or writes nothing anyone waits
    /// for) on the shared connection, so it never queues behind a `WAIT`.
    async fn read_script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[Vec<u8>],
    ) -> Result<T, StoreError> {
        self.invoke(&self.shared.conn, script, keys, args).await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        conn: &Conn,
        script: &redis::Script,
        keys: &[&str],
        args: &[Vec<u8>],
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = conn.clone();
        bounded(self.shared.timeout, invocation.invoke_async(&mut conn)).await
    }

    /// Whether Redis answers within `redis_timeout`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// With `redis_wait_replicas`, waits until that many replicas hold
    /// every write so far (WAIT blocks only outside scripts).
    pub async fn commit_durably(&self) -> Result<(), StoreError> {
        let s = &self.shared;
        if s.durability != Durability::Sync || s.wait_replicas == 0 {
            return Ok(());
        }
        // WAIT's own timeout a little inside ours, so its answer comes back.
        let timeout_ms = (s.timeout.as_millis() as u64 * 3 / 4).max(1);
        let mut conn = s.write_conn.clone();
        let acked: u32 = bounded(
            s.timeout,
            redis::cmd("WAIT")
                .arg(s.wait_replicas)
                .arg(timeout_ms)
                .query_async(&mut conn),
        )
        .await?;
        if acked < s.wait_replicas {
            return Err(StoreError::Unavailable(format!(
                "only {acked} of {} replicas acknowledged the write within {timeout_ms} ms",
                s.wait_replicas
            )));
        }
        Ok(())
    }

    /// Stops following the shared channel. Redis keeps everything; there
    /// is nothing to flush.
    pub async fn close(self) -> Result<(), StoreError> {
        self.shared.stop_events();
        Ok(())
    }

    /// Activity writes by this process since start.
    pub fn touches_total(&self) -> u64 {
        self.shared.touches_total.load(Ordering::Relaxed)
    }

    /// Sessions this process's pruner removed since start.
    pub fn pruned_total(&self) -> u64 {
        self.shared.pruned_total.load(Ordering::Relaxed)
    }

    /// Users stored.
    pub async fn user_count(&self) -> Result<u64, StoreError> {
        self.run(redis::cmd("ZCARD").arg(self.shared.keys.all("users")))
            .await
    }

    /// Sessions stored (live, or ended and not yet pruned).
    pub async fn session_count(&self) -> Result<u64, StoreError> {
        self.run(redis::cmd("ZCARD").arg(self.shared.keys.all("expiry")))
            .await
    }

    /// The development secret every instance under this prefix signs
    /// with: `candidate` if none was stored yet.
    pub async fn shared_dev_secret(&self, candidate: &str) -> Result<String, StoreError> {
        let key = self.shared.keys.plain("dev_secret");
        let _: () = self
            .run(redis::cmd("SET").arg(&key).arg(candidate).arg("NX"))
            .await?;
        self.run(redis::cmd("GET").arg(&key)).await
    }

    /// Whether nothing is stored under the prefix (for `migrate`): none
    /// of the keys every store of data has.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let keys = &self.shared.keys;
        let found: Vec<u64> = self
            .run_all(
                [
                    keys.all("next_user_id"),
                    keys.all("users"),
                    keys.all("expiry"),
                    keys.all("next_message_id"),
                    keys.all("audit_users"),
                    keys.plain("dev_secret"),
                ]
                .iter()
                .map(|k| redis::cmd("EXISTS").arg(k).clone())
                .collect(),
            )
            .await?;
        Ok(found.iter().all(|n| *n == 0))
    }
}

/// One script argument as Redis receives it.
fn arg(value: impl redis::ToRedisArgs) -> Vec<u8> {
    value.to_redis_args().concat()
}

/// Waits for `work` at most `limit`; a Redis that does not answer in time,
/// or cannot be reached, is `Unavailable`.
async fn bounded<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(redis_error(e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from Redis within {} ms",
            limit.as_millis()
        ))),
    }
}

fn redis_error(e: RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(one_line(&e.to_string()))
    } else {
        StoreError::Redis(one_line(&e.to_string()))
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn rand_bytes() -> [u8; 8] {
    use rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 8];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// What a script answered: its first element says what happened, any
/// further ones are its results.
enum Answer {
    /// Done; the results.
    Done(Vec<redis::Value>),
    /// The record changed since the caller read it: read it and try again.
    Retry,
    /// There was nothing to do.
    Nothing,
}

impl Answer {
    /// Reads a script's reply; a refusal it names is its error.
    fn of(mut reply: Vec<redis::Value>) -> Result<Answer, StoreError> {
        let status = match reply.first() {
            Some(v) => String::from_redis_value(v.clone()).unwrap_or_default(),
            None => String::new(),
        };
        Err(match status.as_str() {
            "ok" => return Ok(Answer::Done(reply.split_off(1))),
            "retry" => return Ok(Answer::Retry),
            "none" => return Ok(Answer::Nothing),
            "username_taken" => StoreError::UsernameTaken,
            "email_taken" => StoreError::EmailTaken,
            "no_such_user" => StoreError::NoSuchUser,
            "last_admin" => StoreError::LastAdmin,
            "identity_taken" => StoreError::IdentityTaken,
            "last_identity" => StoreError::LastIdentity,
            other => StoreError::Redis(format!("a script answered {other:?}")),
        })
    }
}

/// Decodes a record read from `kind`.
fn decode<T: codec::Record>(kind: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupt { tree: kind, source })
}

/// How many times a read-then-compare-and-write script is retried when
/// another instance changed the record in between.
const RETRIES: usize = 32;

impl RedisStore {
    /// Reads user `id`'s record and runs `attempt` on its bytes and its
    /// decoded form (a script that compares the bytes before writing);
    /// `attempt` answers `None` when the record changed meanwhile, and
    /// the record is read again.
    async fn with_user<T, Attempt>(
        &self,
        id: crate::domain::UserId,
        what: &str,
        mut attempt: impl FnMut(Vec<u8>, UserRecord) -> Attempt,
    ) -> Result<T, StoreError>
    where
        Attempt: std::future::Future<Output = Result<Option<T>, StoreError>>,
    {
        let key = self.shared.keys.user(id.as_u64());
        for _ in 0..RETRIES {
            let raw: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(&key)).await?;
            let raw = raw.ok_or(StoreError::NoSuchUser)?;
            let user = decode("user", &raw)?;
            if let Some(done) = attempt(raw, user).await? {
                return Ok(done);
            }
        }
        tracing::warn!(what, "a record kept changing under a write; giving up");
        Err(StoreError::Redis(format!(
            "{what}: the record kept changing; try again"
        )))
    }
}

#[cfg(test)]
mod tests;
