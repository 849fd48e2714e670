//! Sessions, keyed by token hash, with their expiry and per-user indexes.

use std::sync::atomic::Ordering;

use sled::transaction::ConflictableTransactionError as Tx;
use sled::Transactional;

use super::audit::write_audit;
use super::records::{expiry_key, user_session_key};
use super::{codec, decode, tx, AuditRecord, SessionRecord, SledStore, StoreError, UserRecord};
use crate::domain::{TokenHash, UserId};

impl SledStore {
    /// Stores a new session with both index entries. Refused if its user is
    /// gone, so a login racing a user's removal leaves nothing behind.
    pub fn create_session(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let s = &self.shared;
        let value = codec::encode(record);
        let owner = record.owner();
        let prepared = self.prepare_audit(audit)?;
        tx((
            &s.users,
            &s.sessions,
            &s.session_expiry,
            &s.user_sessions,
            &s.audit,
        )
            .transaction(|(users, sessions, expiry, by_user, log)| {
                if users.get(owner.to_be_bytes())?.is_none() {
                    return Err(Tx::Abort(StoreError::NoSuchUser));
                }
                sessions.insert(hash.as_bytes(), value.as_slice())?;
                expiry.insert(expiry_key(record.deadline_ms(), hash), &[])?;
                by_user.insert(user_session_key(owner, hash), &[])?;
                write_audit(log, &prepared)?;
                Ok(())
            }))?;
        self.audit_written(&prepared);
        s.session_count.fetch_add(1, Ordering::Relaxed);
        self.shared
            .prune_schedule
            .note_deadline(record.deadline_ms());
        Ok(())
    }

    /// The stored session, ended or not: deadlines are the caller's to check.
    pub fn session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.shared
            .sessions
            .get(hash.as_bytes())?
            .map(|v| decode("sessions", &v))
            .transpose()
    }

    /// The stored session and its user: two reads of local trees.
    pub fn session_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError> {
        let Some(session) = self.session(hash)? else {
            return Ok(None);
        };
        let user = self.user(session.owner())?;
        Ok(Some((session, user)))
    }

    /// Records activity: moves `last_seen` and the idle deadline, and the
    /// expiry entry with them, in one transaction. A session removed
    /// meanwhile stays removed: the touch finds nothing and writes nothing.
    pub fn touch_session(
        &self,
        hash: &TokenHash,
        now_ms: u64,
        idle_timeout_ms: u64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let s = &self.shared;
        tx(
            (&s.sessions, &s.session_expiry).transaction(|(sessions, expiry)| {
                let Some(old) = sessions.get(hash.as_bytes())? else {
                    return Ok(None);
                };
                let old: SessionRecord = decode("sessions", &old).map_err(Tx::Abort)?;
                let mut new = old.clone();
                new.last_seen_at_ms = now_ms;
                new.idle_expires_at_ms = now_ms.saturating_add(idle_timeout_ms);
                expiry.remove(expiry_key(old.deadline_ms(), hash))?;
                expiry.insert(expiry_key(new.deadline_ms(), hash), &[])?;
                sessions.insert(hash.as_bytes(), codec::encode(&new))?;
                Ok(Some(new))
            }),
        )
        .inspect(|touched| {
            if touched.is_some() {
                s.touches_total.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// Removes a session and its index entries; returns it if it was there.
    /// `audit` is written only if it was.
    pub fn end_session(
        &self,
        hash: &TokenHash,
        audit: &[AuditRecord],
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .end_sessions(std::slice::from_ref(hash), audit)?
            .pop()
            .map(|(_, record)| record))
    }

    /// Removes these sessions and their index entries in one transaction,
    /// with `audit` if any was there; answers those that were.
    fn end_sessions(
        &self,
        hashes: &[TokenHash],
        audit: &[AuditRecord],
    ) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        let s = &self.shared;
        let prepared = self.prepare_audit(audit)?;
        let ended = tx(
            (&s.sessions, &s.session_expiry, &s.user_sessions, &s.audit).transaction(
                |(sessions, expiry, by_user, log)| {
                    let mut ended = Vec::new();
                    for hash in hashes {
                        let Some(old) = sessions.remove(hash.as_bytes())? else {
                            continue;
                        };
                        let old: SessionRecord = decode("sessions", &old).map_err(Tx::Abort)?;
                        expiry.remove(expiry_key(old.deadline_ms(), hash))?;
                        by_user.remove(user_session_key(old.owner(), hash))?;
                        ended.push((*hash, old));
                    }
                    if !ended.is_empty() {
                        write_audit(log, &prepared)?;
                    }
                    Ok(ended)
                },
            ),
        )?;
        if !ended.is_empty() {
            s.session_count
                .fetch_sub(ended.len() as i64, Ordering::Relaxed);
            self.audit_written(&prepared);
            let hashes: Vec<TokenHash> = ended.iter().map(|(h, _)| *h).collect();
            self.notify_ended(&hashes);
        }
        Ok(ended)
    }

    /// The hashes of one user's sessions: a prefix scan of `user_sessions`,
    /// costing what that user has, not what the database holds.
    pub fn session_hashes_of(&self, user: UserId) -> Result<Vec<TokenHash>, StoreError> {
        self.shared
            .user_sessions
            .scan_prefix(user.to_be_bytes())
            .keys()
            .map(|k| Ok(k?.get(8..).and_then(TokenHash::from_slice)))
            .filter_map(Result::transpose)
            .collect()
    }

    /// One user's stored sessions (ended ones included until pruned).
    pub fn sessions_of(&self, user: UserId) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        let mut out = Vec::new();
        for hash in self.session_hashes_of(user)? {
            if let Some(session) = self.session(&hash)? {
                out.push((hash, session));
            }
        }
        Ok(out)
    }

    /// Ends every session of `user` but `except` in one transaction, with
    /// `audit` if any ended; returns those ended.
    pub fn end_sessions_of(
        &self,
        user: UserId,
        except: Option<&TokenHash>,
        audit: &[AuditRecord],
    ) -> Result<Vec<TokenHash>, StoreError> {
        let mut listed = self.session_hashes_of(user)?;
        listed.retain(|h| Some(h) != except);
        Ok(self
            .end_sessions(&listed, audit)?
            .into_iter()
            .map(|(hash, _)| hash)
            .collect())
    }

    /// Ends every stored session; returns how many.
    pub fn end_all_sessions(&self) -> Result<usize, StoreError> {
        let mut ended = 0;
        for key in self.shared.sessions.iter().keys() {
            if let Some(hash) = TokenHash::from_slice(&key?) {
                ended += usize::from(self.end_session(&hash, &[])?.is_some());
            }
        }
        Ok(ended)
    }

    /// Every stored session, for the offline CLI.
    pub fn all_sessions(&self) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        self.shared
            .sessions
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let hash = TokenHash::from_slice(&k).ok_or_else(|| StoreError::Corrupt {
                    tree: "sessions",
                    source: super::CodecError::Malformed("key is not a token hash".into()),
                })?;
                Ok((hash, decode("sessions", &v)?))
            })
            .collect()
    }
}
