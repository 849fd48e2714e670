//! Reclaiming ended sessions. Lookups already refuse them by deadline; the
//! pruner only frees the space, walking `session_expiry` from its start up
//! to now, so a pass costs what has ended, not what is stored.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use sled::transaction::ConflictableTransactionError as Tx;
use sled::Transactional;

use super::audit::write_entry;
use super::records::user_session_key;
use super::{decode, tx, AuditRecord, PruneSchedule, SessionRecord, SledStore, StoreError};
use crate::domain::TokenHash;
use crate::store::audit::{Actor, AuditId, AuditKind};

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
        // Ceremonies that ended with no second request: not sessions,
        // so not counted as pruned sessions.
        self.prune_tickets(now_ms)?;
        Ok(pruned)
    }

    /// Removes these expiry entries and, for each whose session has really
    /// ended, the session. A touch that moved an entry meanwhile wins.
    fn prune_batch(&self, keys: &[sled::IVec], now_ms: u64) -> Result<Vec<TokenHash>, StoreError> {
        let s = &self.shared;
        // Each ending is logged; numbered before the transaction, which
        // may run more than once.
        let seqs = keys
            .iter()
            .map(|_| s.db.generate_id())
            .collect::<Result<Vec<_>, _>>()?;
        let ended = tx(
            (&s.sessions, &s.session_expiry, &s.user_sessions, &s.audit).transaction(
                |(sessions, expiry, by_user, log)| {
                    let mut ended = Vec::new();
                    for (key, seq) in keys.iter().zip(&seqs) {
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
                        let entry = expired(&record, &hash, now_ms);
                        let id = AuditId {
                            ms: now_ms,
                            seq: *seq,
                            user: record.user_id,
                        };
                        write_entry(log, id, &entry)?;
                        ended.push((hash, entry));
                    }
                    Ok(ended)
                },
            ),
        )?;
        self.written().entries(ended.iter().map(|(_, entry)| entry));
        Ok(ended.into_iter().map(|(hash, _)| hash).collect())
    }

    /// The earliest deadline of any stored session.
    pub fn next_deadline_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .shared
            .session_expiry
            .first()?
            .and_then(|(k, _)| Some(u64::from_be_bytes(k.get(..8)?.try_into().ok()?))))
    }

    pub(in crate::store) fn schedule(&self) -> &PruneSchedule {
        &self.shared.prune_schedule
    }
}

/// The log entry for a session the pruner removed at its deadline.
fn expired(record: &SessionRecord, hash: &TokenHash, now_ms: u64) -> AuditRecord {
    AuditRecord::new(
        AuditKind::SessionExpired,
        record.owner(),
        Actor::System,
        now_ms,
    )
    .session(hash.public_id())
}
