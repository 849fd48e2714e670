//! Sessions, keyed by token hash, with their expiry and per-user indexes.

use std::sync::atomic::Ordering;

use sled::transaction::ConflictableTransactionError as Tx;
use sled::Transactional;

use super::records::{expiry_key, user_session_key};
use super::{codec, decode, tx, SessionRecord, Store, StoreError};
use crate::domain::TokenHash;

impl Store {
    /// Stores a new session with both index entries. Refused if its user is
    /// gone, so a login racing a user's removal leaves nothing behind.
    pub fn create_session(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let s = &self.shared;
        let value = codec::encode(record);
        let owner = record.owner();
        tx(
            (&s.users, &s.sessions, &s.session_expiry, &s.user_sessions).transaction(
                |(users, sessions, expiry, by_user)| {
                    if users.get(owner.to_be_bytes())?.is_none() {
                        return Err(Tx::Abort(StoreError::NoSuchUser));
                    }
                    sessions.insert(hash.as_bytes(), value.as_slice())?;
                    expiry.insert(expiry_key(record.deadline_ms(), hash), &[])?;
                    by_user.insert(user_session_key(owner, hash), &[])?;
                    Ok(())
                },
            ),
        )?;
        s.session_count.fetch_add(1, Ordering::Relaxed);
        self.schedule_prune(record.deadline_ms());
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
    }

    /// Removes a session and its index entries; returns it if it was there.
    pub fn end_session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let s = &self.shared;
        let ended = tx(
            (&s.sessions, &s.session_expiry, &s.user_sessions).transaction(
                |(sessions, expiry, by_user)| {
                    let Some(old) = sessions.remove(hash.as_bytes())? else {
                        return Ok(None);
                    };
                    let old: SessionRecord = decode("sessions", &old).map_err(Tx::Abort)?;
                    expiry.remove(expiry_key(old.deadline_ms(), hash))?;
                    by_user.remove(user_session_key(old.owner(), hash))?;
                    Ok(Some(old))
                },
            ),
        )?;
        if ended.is_some() {
            s.session_count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(ended)
    }
}
