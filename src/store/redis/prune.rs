//! Pruning on Redis: one instance at a time (a lease key), walking
//! `expiry` from its start up to now, a batch per script, so a pass costs
//! what has ended. It also cleans the index entries of sessions Redis
//! reclaimed itself, and publishes every ending.

use std::sync::atomic::Ordering;

use super::{arg, PruneSchedule, RedisStore, StoreError};

/// Expiry entries handled per script.
const BATCH: usize = 128;

/// The longest one instance holds the pruning lease, should it die
/// mid-pass.
const LEASE_MS: u64 = 30_000;

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

    /// One pass, if this instance takes the lease (held at most
    /// `LEASE_MS`, given back after the pass): instances do not repeat
    /// each other's work. Zero if another instance holds it.
    pub async fn prune_under_lease(&self, now_ms: u64) -> Result<u64, StoreError> {
        let lease = self.key("prune_lease");
        let taken: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(&lease)
                    .arg(&self.shared.instance)
                    .arg("NX")
                    .arg("PX")
                    .arg(LEASE_MS),
            )
            .await?;
        if taken.is_none() {
            return Ok(0);
        }
        let pruned = self.prune_ended(now_ms).await;
        let _: Result<i64, _> = self
            .script_keyed(&self.shared.scripts.release_lease, &lease)
            .await;
        pruned
    }

    pub(in crate::store) fn schedule(&self) -> &PruneSchedule {
        &self.shared.prune_schedule
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
