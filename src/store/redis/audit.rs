//! The security log on Redis: each user's entries are a stream,
//! `user:{<id>}:audit`, in the user's slot, so the script that makes a
//! change appends its entries (`audit.lua`); the stream id (`<ms>-<seq>`,
//! the entry's time where the log allows) orders them. `{all}:audit_users`
//! lists whose logs exist, scored by the time of their oldest entry: the
//! pruner trims only the logs that have
//! something due, and the admin view reads every listed log. A user is
//! listed before their first entry is written (once per process; a
//! listing is never removed, only rescored), so no entry is unlisted.

use super::{codec, decode, RedisStore, StoreError};
use crate::store::audit::{AuditId, AuditQuery, AuditRecord, AuditRetention};

/// Logs trimmed per batch of the pruner.
const BATCH: usize = 128;

/// Entries read per round from one log while looking for a kind.
const READ: usize = 100;

/// Entries as one script argument (what `audit.lua` reads): per entry a
/// 2-digit length and its time, then an 8-digit length and the encoded
/// record.
pub(super) fn blob(entries: &[AuditRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let ms = entry.time_ms.to_string();
        let encoded = codec::encode(entry);
        out.extend_from_slice(format!("{:02}{ms}{:08}", ms.len(), encoded.len()).as_bytes());
        out.extend_from_slice(&encoded);
    }
    out
}

/// A stream id's two numbers.
fn stream_id(raw: &str) -> Option<(u64, u64)> {
    let (ms, seq) = raw.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

type StreamEntries = Vec<(String, Vec<(String, Vec<u8>)>)>;

impl RedisStore {
    /// Lists the owners of `entries` in `{all}:audit_users`, unless this
    /// process has: before a script writes their first entry.
    pub(super) async fn list_logs(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
        let new: Vec<(u64, u64)> = {
            let listed = self
                .shared
                .audit_listed
                .lock()
                .map_err(|_| StoreError::Redis("the log listing lock is poisoned".into()))?;
            // Each log under its oldest entry here.
            let mut oldest = std::collections::HashMap::new();
            for e in entries.iter().filter(|e| !listed.contains(&e.user_id)) {
                let at = oldest.entry(e.user_id).or_insert(e.time_ms);
                *at = (*at).min(e.time_ms);
            }
            oldest.into_iter().collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(self.shared.keys.all("audit_users")).arg("NX");
        for (user, ms) in &new {
            zadd.arg(*ms).arg(*user);
        }
        let _: u64 = self.run(&zadd).await?;
        if let Ok(mut listed) = self.shared.audit_listed.lock() {
            listed.extend(new.iter().map(|(user, _)| *user));
        }
        Ok(())
    }

    /// Drops the log of a user whose creation was refused after its
    /// script ran (a name or address taken meanwhile): the id is fresh, so
    /// the log holds only that creation's entries.
    pub(super) async fn drop_log(&self, user: u64) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let _: u64 = self
            .run(redis::cmd("DEL").arg(keys.user_audit(user)))
            .await?;
        let _: u64 = self
            .run(redis::cmd("ZREM").arg(keys.all("audit_users")).arg(user))
            .await?;
        if let Ok(mut listed) = self.shared.audit_listed.lock() {
            listed.remove(&user);
        }
        Ok(())
    }

    /// Tells of entries a script has just written with their change.
    pub(super) fn audit_written(&self, entries: &[AuditRecord]) {
        self.shared.written.entries(entries);
    }

    /// Writes entries that record no other change, one script per log.
    pub async fn record(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
        self.list_logs(entries).await?;
        let mut owners: Vec<u64> = entries.iter().map(|e| e.user_id).collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            let mine: Vec<AuditRecord> = entries
                .iter()
                .filter(|e| e.user_id == owner)
                .cloned()
                .collect();
            let _: i64 = self
                .script(
                    &self.shared.scripts.audit_append,
                    &[&self.shared.keys.user_audit(owner)],
                    &[blob(&mine)],
                )
                .await?;
        }
        self.audit_written(entries);
        Ok(())
    }

    /// Up to `query.limit` entries, newest first: one log, or a merge of
    /// every listed log (an admin's view; it reads each log).
    pub async fn activity(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<(AuditId, AuditRecord)>, StoreError> {
        let users = match query.user {
            Some(user) => vec![user.as_u64()],
            None => {
                self.run(
                    redis::cmd("ZRANGE")
                        .arg(self.shared.keys.all("audit_users"))
                        .arg(0)
                        .arg(-1),
                )
                .await?
            }
        };
        let reads = users.iter().map(|u| self.read_log(*u, query));
        let mut all: Vec<(AuditId, AuditRecord)> = futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        all.truncate(query.limit);
        Ok(all)
    }

    /// Up to `query.limit` of one log's entries older than `query.before`
    /// and of `query.kind`, newest first.
    async fn read_log(
        &self,
        user: u64,
        query: &AuditQuery,
    ) -> Result<Vec<(AuditId, AuditRecord)>, StoreError> {
        let key = self.shared.keys.user_audit(user);
        let mut out = Vec::new();
        let mut end = match query.before {
            // Ties in everyone's order go by user: the cursor's own log
            // includes its id only if this log sorts before it.
            Some(b) if b.user > user => format!("{}-{}", b.ms, b.seq),
            // The id just below: Redis refuses `(0-0` as an end.
            Some(b) => match (b.ms, b.seq) {
                (0, 0) => return Ok(Vec::new()),
                (ms, 0) => format!("{}-{}", ms - 1, u64::MAX),
                (ms, seq) => format!("{ms}-{}", seq - 1),
            },
            None => "+".to_owned(),
        };
        if query.limit == 0 {
            return Ok(out);
        }
        loop {
            let page: StreamEntries = self
                .run(
                    redis::cmd("XREVRANGE")
                        .arg(&key)
                        .arg(&end)
                        .arg("-")
                        .arg("COUNT")
                        .arg(READ),
                )
                .await?;
            let full = page.len() == READ;
            for (id, fields) in &page {
                end = format!("({id}");
                let Some((ms, seq)) = stream_id(id) else {
                    continue;
                };
                let Some((_, raw)) = fields.iter().find(|(f, _)| f == "e") else {
                    continue;
                };
                let mut record: AuditRecord = decode("audit", raw)?;
                if query.kind.is_some_and(|k| k != record.kind) {
                    continue;
                }
                // The log's time: the entry's own, unless it reached the
                // log after a newer one (`audit.lua`), then a little later.
                record.time_ms = ms;
                out.push((AuditId { ms, seq, user }, record));
                if out.len() >= query.limit {
                    return Ok(out);
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Every entry of every listed log (for a backup), with its id.
    pub(super) async fn all_activity(&self) -> Result<Vec<(AuditId, AuditRecord)>, StoreError> {
        let query = AuditQuery {
            limit: usize::MAX,
            ..AuditQuery::default()
        };
        self.activity(&query).await
    }

    /// Writes restored entries under their own ids.
    pub async fn import_activity(
        &self,
        entries: &[(AuditId, AuditRecord)],
    ) -> Result<(), StoreError> {
        let mut ordered: Vec<&(AuditId, AuditRecord)> = entries.iter().collect();
        ordered.sort_by_key(|(id, _)| *id);
        // Oldest first, so each log is listed under its oldest entry.
        let records: Vec<AuditRecord> = ordered
            .iter()
            .map(|(id, e)| AuditRecord {
                time_ms: id.ms,
                ..e.clone()
            })
            .collect();
        self.list_logs(&records).await?;
        for (id, entry) in ordered {
            let _: String = self
                .run(
                    redis::cmd("XADD")
                        .arg(self.shared.keys.user_audit(id.user))
                        .arg(format!("{}-{}", id.ms, id.seq))
                        .arg("e")
                        .arg(codec::encode(entry)),
                )
                .await?;
        }
        self.shared.written.grew(records.iter().map(|e| e.user_id));
        Ok(())
    }

    /// Trims the logs with entries older than `keep_ms`, and each log
    /// that grew past the cap since the last pass; answers how many
    /// entries went.
    pub async fn prune_activity(
        &self,
        now_ms: u64,
        keep: AuditRetention,
    ) -> Result<u64, StoreError> {
        let keys = &self.shared.keys;
        let cutoff = now_ms.saturating_sub(keep.keep_ms);
        let mut pruned = 0;
        loop {
            let due: Vec<u64> = self
                .run(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(keys.all("audit_users"))
                        .arg("-inf")
                        .arg(format!("({cutoff}"))
                        .arg("LIMIT")
                        .arg(0)
                        .arg(BATCH),
                )
                .await?;
            for user in &due {
                let log = keys.user_audit(*user);
                let n: u64 = self
                    .run(redis::cmd("XTRIM").arg(&log).arg("MINID").arg(cutoff))
                    .await?;
                pruned += n;
                let oldest: StreamEntries = self
                    .run(
                        redis::cmd("XRANGE")
                            .arg(&log)
                            .arg("-")
                            .arg("+")
                            .arg("COUNT")
                            .arg(1),
                    )
                    .await?;
                // Checked again when its oldest entry is due, or, empty,
                // once `keep` has passed.
                let next = oldest
                    .first()
                    .and_then(|(id, _)| stream_id(id))
                    .map_or(now_ms, |(ms, _)| ms.max(cutoff));
                let _: u64 = self
                    .run(
                        redis::cmd("ZADD")
                            .arg(keys.all("audit_users"))
                            .arg("XX")
                            .arg(next)
                            .arg(*user),
                    )
                    .await?;
            }
            if due.len() < BATCH {
                break;
            }
        }
        for user in self.shared.written.take_grown() {
            let n: u64 = self
                .run(
                    redis::cmd("XTRIM")
                        .arg(keys.user_audit(user))
                        .arg("MAXLEN")
                        .arg(keep.per_user),
                )
                .await?;
            pruned += n;
        }
        Ok(pruned)
    }
}
