//! Pruning on Redis: one instance at a time (a lease key), walking
//! `{all}:expiry` from its start up to now, a batch at a time, so a pass
//! costs what has ended. Each user's due sessions end in one script in
//! that user's slot, which publishes every ending and spares a session a
//! touch moved meanwhile; then their token and pruner entries go. Index
//! entries of sessions Redis reclaimed itself are cleaned the same way.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::audit::blob;
use super::keys::{expiry_member, parse_expiry_member};
use super::{arg, PruneSchedule, RedisStore, StoreError};
use crate::domain::{TokenHash, UserId};
use crate::store::audit::{Actor, AuditKind, AuditRecord};

/// Expiry entries handled per batch.
const BATCH: usize = 128;

/// The longest one instance holds the pruning lease, should it die
/// mid-pass.
const LEASE_MS: u64 = 30_000;

impl RedisStore {
    /// Removes every session whose deadline is at or before `now_ms`;
    /// returns how many.
    pub async fn prune_ended(&self, now_ms: u64) -> Result<u64, StoreError> {
        let keys = &self.shared.keys;
        let mut pruned = 0;
        loop {
            let due: Vec<String> = self
                .run(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(keys.all("expiry"))
                        .arg("-inf")
                        .arg(now_ms)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(BATCH),
                )
                .await?;
            let mut by_user: HashMap<u64, Vec<String>> = HashMap::new();
            for (uid, h) in due.iter().filter_map(|m| parse_expiry_member(m)) {
                by_user.entry(uid).or_default().push(h.to_owned());
            }
            let passes = by_user.iter().map(|(uid, hashes)| async move {
                let mut args = vec![arg(now_ms), arg(keys.events())];
                let mut entries = Vec::new();
                for h in hashes {
                    let entry = expired(*uid, h, now_ms);
                    args.push(arg(h));
                    args.push(blob(std::slice::from_ref(&entry)));
                    entries.push(entry);
                }
                self.list_logs(&entries).await?;
                let outcome: Vec<i64> = self
                    .script(
                        &self.shared.scripts.sessions_prune,
                        &[&keys.user(*uid)],
                        &args,
                    )
                    .await?;
                let mut gone = Vec::new();
                let mut logged = Vec::new();
                // XX GT: neither brings back an entry an ending removed
                // meanwhile nor moves one a touch moved later.
                let mut moved = redis::cmd("ZADD");
                moved.arg(keys.all("expiry")).arg("XX").arg("GT");
                let mut any_moved = false;
                for ((h, entry), deadline) in hashes.iter().zip(&entries).zip(outcome) {
                    if deadline > 0 {
                        moved.arg(deadline).arg(expiry_member(*uid, h));
                        any_moved = true;
                    } else {
                        gone.push(h.clone());
                    }
                    // 0: ended here, its entry written by the script.
                    if deadline == 0 {
                        logged.push(entry.clone());
                    }
                }
                if any_moved {
                    let _: u64 = self.run(&moved).await?;
                }
                self.forget_sessions(*uid, &gone).await?;
                self.audit_written(&logged);
                Ok::<u64, StoreError>(gone.len() as u64)
            });
            let n: u64 = futures_util::future::try_join_all(passes)
                .await?
                .into_iter()
                .sum();
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
                    .arg(self.shared.keys.all("expiry"))
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
        let lease = self.shared.keys.plain("prune_lease");
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
            .read_script(
                &self.shared.scripts.release_lease,
                &[&lease],
                &[arg(&self.shared.instance)],
            )
            .await;
        pruned
    }

    pub(in crate::store) fn schedule(&self) -> &PruneSchedule {
        &self.shared.prune_schedule
    }
}

/// The log entry for a session the pruner ends at its deadline.
fn expired(uid: u64, h: &str, now_ms: u64) -> AuditRecord {
    let entry = AuditRecord::new(
        AuditKind::SessionExpired,
        UserId::from_u64(uid),
        Actor::System,
        now_ms,
    );
    match TokenHash::from_hex(h) {
        Some(hash) => entry.session(hash.public_id()),
        None => entry,
    }
}
