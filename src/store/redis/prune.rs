//! Pruning on Redis: one instance at a time (a lease key), walking
//! `expiry` from its start up to now, a batch per script, so a pass costs
//! what has ended. It also cleans the index entries of sessions Redis
//! reclaimed itself, and publishes every ending.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{arg, RedisStore, StoreError};
use crate::store::now_ms;

/// Expiry entries handled per script.
const BATCH: usize = 128;

impl RedisStore {
    /// Removes every session whose deadline is at or before `now_ms`;
    /// returns how many.
    pub async fn prune_ended(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut pruned = 0;
        loop {
            let due: Vec<String> = self
                .run(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(self.key("expiry"))
                        .arg("-inf")
                        .arg(now_ms)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(BATCH),
                )
                .await?;
            if due.is_empty() {
                break;
            }
            let mut args = vec![arg(now_ms)];
            args.extend(due.iter().map(arg));
            let ended: Vec<String> = self.script(&self.shared.scripts.prune, &args).await?;
            let n = ended.len() as u64;
            self.shared.pruned_total.fetch_add(n, Ordering::Relaxed);
            pruned += n;
            if due.len() < BATCH {
                break;
            }
        }
        Ok(pruned)
    }

    /// The earliest deadline of any stored session.
    pub async fn next_deadline_ms(&self) -> Result<Option<u64>, StoreError> {
        let first: Vec<(String, f64)> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(self.key("expiry"))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok(first.first().map(|(_, score)| *score as u64))
    }

    /// Wakes this instance's pruner if a session now ends before its next
    /// pass.
    pub(super) fn schedule_prune(&self, deadline_ms: u64) {
        if deadline_ms < self.shared.prune_at_ms.load(Ordering::Relaxed) {
            self.shared.prune_wake.notify_one();
        }
    }

    /// Runs the pruner until `shutdown` completes. A pass runs only while
    /// this instance holds the lease, so instances do not repeat each
    /// other's work.
    pub fn spawn_pruner(
        &self,
        interval: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let lease = store.key("prune_lease");
            let hold_ms = interval.max(Duration::from_secs(5)).as_millis() as u64;
            loop {
                let taken: Result<Option<String>, _> = store
                    .run(
                        redis::cmd("SET")
                            .arg(&lease)
                            .arg(&store.shared.instance)
                            .arg("NX")
                            .arg("PX")
                            .arg(hold_ms),
                    )
                    .await;
                if let Ok(Some(_)) = taken {
                    match store.prune_ended(now_ms()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(pruned = n, "pruned ended sessions"),
                        Err(e) => tracing::warn!(error = %e, "pruning failed"),
                    }
                    let _: Result<i64, _> = store
                        .script_keyed(&store.shared.scripts.release_lease, &lease)
                        .await;
                }
                let now = now_ms();
                let mut wake_at = now.saturating_add(interval.as_millis() as u64);
                if let Ok(Some(next)) = store.next_deadline_ms().await {
                    wake_at = wake_at.min(next.max(now + 10));
                }
                store.shared.prune_at_ms.store(wake_at, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wake_at - now)) => {}
                    _ = store.shared.prune_wake.notified() => {}
                    _ = &mut shutdown => break,
                }
            }
        })
    }

    /// Runs a script that names one key and takes this instance's id.
    async fn script_keyed<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        key: &str,
    ) -> Result<T, StoreError> {
        let mut invocation = script.key(key);
        invocation.arg(&self.shared.instance);
        let mut conn = self.shared.conn.clone();
        super::bounded(self.shared.timeout, invocation.invoke_async(&mut conn)).await
    }
}
