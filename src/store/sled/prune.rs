//! Reclaiming ended sessions. Lookups already refuse them by deadline; the
//! pruner only frees the space, walking `session_expiry` from its start up
//! to now, so a pass costs what has ended, not what is stored.

use std::future::Future;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sled::transaction::ConflictableTransactionError as Tx;
use sled::Transactional;
use tokio::task::JoinHandle;

use super::records::user_session_key;
use super::{decode, now_ms, tx, SessionRecord, SledStore, StoreError};
use crate::domain::TokenHash;

/// Expiry entries handled per read of the index, and per transaction.
const BATCH: usize = 128;

impl SledStore {
    /// Removes every session whose deadline is at or before `now_ms`;
    /// returns how many. Walks `session_expiry` from its start and removes
    /// a batch per transaction, so the work follows what has ended.
    pub fn prune_ended(&self, now_ms: u64) -> Result<u64, StoreError> {
        let upper = Bound::Excluded(sled::IVec::from(&now_ms.saturating_add(1).to_be_bytes()));
        // Each batch removes every entry it read, so the next one starts
        // after the last: restarting at the front would walk the emptied
        // leaves again, a cost that grows with the pass.
        let mut after = Bound::Unbounded;
        let mut pruned = 0;
        loop {
            let batch = self
                .shared
                .session_expiry
                .range((after, upper.clone()))
                .keys()
                .take(BATCH)
                .collect::<Result<Vec<_>, _>>()?;
            let Some(last) = batch.last() else {
                break;
            };
            after = Bound::Excluded(last.clone());
            let ended = self.prune_batch(&batch, now_ms)?;
            let n = ended.len() as u64;
            self.shared
                .session_count
                .fetch_sub(n as i64, Ordering::Relaxed);
            self.shared.pruned_total.fetch_add(n, Ordering::Relaxed);
            self.notify_ended(&ended);
            pruned += n;
        }
        Ok(pruned)
    }

    /// Removes these expiry entries and, for each whose session has really
    /// ended, the session. A touch that moved an entry meanwhile wins.
    fn prune_batch(&self, keys: &[sled::IVec], now_ms: u64) -> Result<Vec<TokenHash>, StoreError> {
        let s = &self.shared;
        tx(
            (&s.sessions, &s.session_expiry, &s.user_sessions).transaction(
                |(sessions, expiry, by_user)| {
                    let mut ended = Vec::new();
                    for key in keys {
                        if expiry.remove(key)?.is_none() {
                            continue;
                        }
                        let Some(hash) = key.get(8..).and_then(TokenHash::from_slice) else {
                            continue;
                        };
                        let Some(raw) = sessions.get(hash.as_bytes())? else {
                            continue;
                        };
                        let record: SessionRecord = decode("sessions", &raw).map_err(Tx::Abort)?;
                        if record.deadline_ms() > now_ms {
                            // A stale entry: the record's own entry stays.
                            continue;
                        }
                        sessions.remove(hash.as_bytes())?;
                        by_user.remove(user_session_key(record.owner(), &hash))?;
                        ended.push(hash);
                    }
                    Ok(ended)
                },
            ),
        )
    }

    /// The earliest deadline of any stored session.
    pub fn next_deadline_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .shared
            .session_expiry
            .first()?
            .and_then(|(k, _)| Some(u64::from_be_bytes(k.get(..8)?.try_into().ok()?))))
    }

    /// Wakes the pruner if a session now ends before its next pass.
    pub(super) fn schedule_prune(&self, deadline_ms: u64) {
        if deadline_ms < self.shared.prune_at_ms.load(Ordering::Relaxed) {
            self.shared.prune_wake.notify_one();
        }
    }

    /// Runs the pruner until `shutdown` completes: prune what is due, then
    /// sleep until the earliest deadline or `interval`, whichever is first.
    pub fn spawn_pruner(
        &self,
        interval: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                let pass = store.clone();
                match tokio::task::spawn_blocking(move || pass.prune_ended(now_ms())).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::debug!(pruned = n, "pruned ended sessions"),
                    Ok(Err(e)) => tracing::error!(error = %e, "pruning failed"),
                    Err(e) => tracing::error!(error = %e, "pruning task failed"),
                }
                let now = now_ms();
                let mut wake_at = now.saturating_add(interval.as_millis() as u64);
                if let Ok(Some(next)) = store.next_deadline_ms() {
                    // Never sooner than 10 ms: a failing pass must not spin.
                    wake_at = wake_at.min(next.max(now + 10));
                }
                store.shared.prune_at_ms.store(wake_at, Ordering::Relaxed);
                let sleep = Duration::from_millis(wake_at - now);
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = store.shared.prune_wake.notified() => {}
                    _ = &mut shutdown => break,
                }
            }
        })
    }
}
