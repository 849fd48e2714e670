//! The security log on sled: one tree, `audit`, with two key families so a
//! change writes its entries with one more tree in its transaction:
//! `u` ++ user ++ ms ++ seq -> the record (one user's log, a prefix scan
//! read newest first), and `t` ++ ms ++ seq ++ user -> () (everyone's, by
//! time: the admin view and pruning by age walk it from its start).
//! `seq` is sled's `generate_id`, unique across the database.

use std::ops::Bound;

use sled::transaction::{ConflictableTransactionError as Tx, TransactionalTree};

use super::{codec, decode, SledStore, StoreError};
use crate::store::audit::{AuditId, AuditQuery, AuditRecord, AuditRetention};

const BY_USER: u8 = b'u';
const BY_TIME: u8 = b't';

/// Entries numbered before their transaction, which may run more than
/// once.
pub(super) struct Prepared {
    entries: Vec<(AuditId, AuditRecord)>,
}

impl Prepared {
    /// The entries, as prepared.
    pub(super) fn entries(&self) -> impl Iterator<Item = &AuditRecord> {
        self.entries.iter().map(|(_, e)| e)
    }
}

fn user_key(user: u64, id: AuditId) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(BY_USER);
    k.extend_from_slice(&user.to_be_bytes());
    k.extend_from_slice(&id.ms.to_be_bytes());
    k.extend_from_slice(&id.seq.to_be_bytes());
    k
}

fn time_key(user: u64, id: AuditId) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(BY_TIME);
    k.extend_from_slice(&id.ms.to_be_bytes());
    k.extend_from_slice(&id.seq.to_be_bytes());
    k.extend_from_slice(&user.to_be_bytes());
    k
}

fn be(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

impl SledStore {
    /// Numbers and encodes entries for `write_audit`.
    pub(super) fn prepare_audit(&self, entries: &[AuditRecord]) -> Result<Prepared, StoreError> {
        let mut prepared = Prepared {
            entries: Vec::with_capacity(entries.len()),
        };
        for entry in entries {
            let id = AuditId {
                ms: entry.time_ms,
                seq: self.shared.db.generate_id()?,
                user: entry.user_id,
            };
            prepared.entries.push((id, entry.clone()));
        }
        Ok(prepared)
    }

    /// Tells of prepared entries once their transaction committed.
    pub(super) fn audit_written(&self, prepared: &Prepared) {
        self.written().entries(prepared.entries());
    }

    /// What is told of every entry written.
    pub(super) fn written(&self) -> &crate::store::audit::Written {
        &self.shared.written
    }

    /// Writes entries with no other change (a refused sign-in).
    pub fn record(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
        let prepared = self.prepare_audit(entries)?;
        super::tx(
            self.shared
                .audit
                .transaction(|audit| write_audit(audit, &prepared)),
        )?;
        self.audit_written(&prepared);
        Ok(())
    }

    /// Up to `query.limit` entries, newest first.
    pub fn activity(&self, query: &AuditQuery) -> Result<Vec<(AuditId, AuditRecord)>, StoreError> {
        let audit = &self.shared.audit;
        let mut out = Vec::new();
        if query.limit == 0 {
            return Ok(out);
        }
        match query.user {
            Some(user) => {
                let uid = user.as_u64();
                let first = AuditId {
                    ms: 0,
                    seq: 0,
                    user: 0,
                };
                let last = AuditId {
                    ms: u64::MAX,
                    seq: u64::MAX,
                    user: 0,
                };
                let start = user_key(uid, first);
                let end = match query.before {
                    Some(before) => Bound::Excluded(user_key(uid, before)),
                    None => Bound::Included(user_key(uid, last)),
                };
                for item in audit.range((Bound::Included(start), end)).rev() {
                    let (key, value) = item?;
                    let record: AuditRecord = decode("audit", &value)?;
                    if query.kind.is_some_and(|k| k != record.kind) {
                        continue;
                    }
                    let (Some(ms), Some(seq)) = (be(&key, 9), be(&key, 17)) else {
                        continue;
                    };
                    let user = user.as_u64();
                    out.push((AuditId { ms, seq, user }, record));
                    if out.len() >= query.limit {
                        break;
                    }
                }
            }
            None => {
                let end = match query.before {
                    Some(before) => Bound::Excluded(time_key(before.user, before)),
                    None => Bound::Excluded(vec![BY_TIME + 1]),
                };
                for item in audit.range((Bound::Included(vec![BY_TIME]), end)).rev() {
                    let key = item?.0;
                    let (Some(ms), Some(seq), Some(user)) =
                        (be(&key, 1), be(&key, 9), be(&key, 17))
                    else {
                        continue;
                    };
                    let id = AuditId { ms, seq, user };
                    let Some(value) = audit.get(user_key(user, id))? else {
                        continue;
                    };
                    let record: AuditRecord = decode("audit", &value)?;
                    if query.kind.is_some_and(|k| k != record.kind) {
                        continue;
                    }
                    out.push((id, record));
                    if out.len() >= query.limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every entry with its id, oldest first (for a backup).
    pub fn all_activity(&self) -> Result<Vec<(AuditId, AuditRecord)>, StoreError> {
        let audit = &self.shared.audit;
        let mut out = Vec::new();
        for item in audit.scan_prefix([BY_TIME]).keys() {
            let key = item?;
            let (Some(ms), Some(seq), Some(user)) = (be(&key, 1), be(&key, 9), be(&key, 17)) else {
                continue;
            };
            let id = AuditId { ms, seq, user };
            if let Some(value) = audit.get(user_key(user, id))? {
                out.push((id, decode("audit", &value)?));
            }
        }
        Ok(out)
    }

    /// Writes restored entries under their own ids.
    pub fn import_activity(&self, entries: &[(AuditId, AuditRecord)]) -> Result<(), StoreError> {
        for (id, entry) in entries {
            super::tx(
                self.shared
                    .audit
                    .transaction(|audit| write_entry(audit, *id, entry)),
            )?;
        }
        self.written().grew(entries.iter().map(|(id, _)| id.user));
        Ok(())
    }

    /// Removes entries older than `keep_ms` (walking the time index from
    /// its start: the work follows what is due), then the oldest of each
    /// log that grew past the cap since the last pass. Answers how many.
    pub fn prune_activity(&self, now_ms: u64, keep: AuditRetention) -> Result<u64, StoreError> {
        let audit = &self.shared.audit;
        let cutoff = now_ms.saturating_sub(keep.keep_ms);
        let mut pruned = 0;
        let mut due = Vec::new();
        for item in audit.range(
            vec![BY_TIME]
                ..time_key(
                    0,
                    AuditId {
                        ms: cutoff,
                        seq: 0,
                        user: 0,
                    },
                ),
        ) {
            due.push(item?.0);
        }
        for key in due {
            let (Some(ms), Some(seq), Some(user)) = (be(&key, 1), be(&key, 9), be(&key, 17)) else {
                continue;
            };
            self.remove_entry(user, AuditId { ms, seq, user })?;
            pruned += 1;
        }
        for user in self.written().take_grown() {
            // Newest first: past the cap, everything from there on goes.
            let prefix = [&[BY_USER][..], &user.to_be_bytes()].concat();
            let keep_n = usize::try_from(keep.per_user).unwrap_or(usize::MAX);
            for key in audit.scan_prefix(&prefix).keys().rev().skip(keep_n) {
                let key = key?;
                if let (Some(ms), Some(seq)) = (be(&key, 9), be(&key, 17)) {
                    self.remove_entry(user, AuditId { ms, seq, user })?;
                    pruned += 1;
                }
            }
        }
        Ok(pruned)
    }

    fn remove_entry(&self, user: u64, id: AuditId) -> Result<(), StoreError> {
        super::tx(self.shared.audit.transaction(|audit| {
            audit.remove(user_key(user, id))?;
            audit.remove(time_key(user, id))?;
            Ok::<_, Tx<StoreError>>(())
        }))
    }
}

/// Writes prepared entries inside a transaction over `audit`.
pub(super) fn write_audit(
    audit: &TransactionalTree,
    prepared: &Prepared,
) -> Result<(), Tx<StoreError>> {
    for (id, entry) in &prepared.entries {
        write_entry(audit, *id, entry)?;
    }
    Ok(())
}

/// Writes one entry under `id` (its `seq` from `generate_id`) inside a
/// transaction over `audit`.
pub(super) fn write_entry(
    audit: &TransactionalTree,
    id: AuditId,
    entry: &AuditRecord,
) -> Result<(), Tx<StoreError>> {
    audit.insert(user_key(id.user, id), codec::encode(entry))?;
    audit.insert(time_key(id.user, id), &[])?;
    Ok(())
}

/// `write_audit` into `user`'s log whatever the entries say: a user made in
/// the same transaction has no id before it.
pub(super) fn write_audit_for(
    audit: &TransactionalTree,
    prepared: &Prepared,
    user: u64,
) -> Result<(), Tx<StoreError>> {
    for (id, entry) in &prepared.entries {
        let id = AuditId { user, ..*id };
        write_entry(audit, id, &entry.of_new_user(user))?;
    }
    Ok(())
}
