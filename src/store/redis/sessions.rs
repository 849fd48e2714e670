//! Sessions on Redis: `sess:<hash>` (a hash: the record and its user id)
//! living until a grace period after its deadline; `user_sessions:<id>`, a
//! sorted set of one user's session hashes by deadline, so per-user work
//! costs what that user has; `expiry`, every session as `<id>:<hash>` by
//! deadline, for the pruner.

use std::sync::atomic::Ordering;

use super::{arg, decode, Answer, RedisStore, SessionRecord, StoreError, UserRecord, KEY_GRACE_MS};
use crate::domain::{hex, TokenHash, UserId};
use crate::store::{codec, now_ms};

impl RedisStore {
    /// Stores a new session with both index entries, unless its user is
    /// gone.
    pub async fn create_session(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        self.put_session("new", hash, record).await?;
        self.shared
            .prune_schedule
            .note_deadline(record.deadline_ms());
        Ok(())
    }

    /// The stored session, ended or not.
    pub async fn session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .run(
                redis::cmd("HGET")
                    .arg(self.key(&format!("sess:{}", hex(hash.as_bytes()))))
                    .arg("r"),
            )
            .await?;
        raw.map(|r| decode("session", &r)).transpose()
    }

    /// The session and its user in one script: one round trip per request.
    pub async fn session_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError> {
        let reply: Vec<Vec<u8>> = self
            .read_script(
                &self.shared.scripts.session_with_user,
                &[arg(hex(hash.as_bytes()))],
            )
            .await?;
        let Some(session) = reply.first() else {
            return Ok(None);
        };
        let session = decode("session", session)?;
        let user = reply.get(1).map(|u| decode("user", u)).transpose()?;
        Ok(Some((session, user)))
    }

    /// Records activity. Reads the session, then writes it back in a
    /// script that writes nothing if the session ended in between.
    pub async fn touch_session(
        &self,
        hash: &TokenHash,
        now_ms: u64,
        idle_timeout_ms: u64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(mut session) = self.session(hash).await? else {
            return Ok(None);
        };
        session.last_seen_at_ms = now_ms;
        session.idle_expires_at_ms = now_ms.saturating_add(idle_timeout_ms);
        if let Answer::Nothing = self.put_session("touch", hash, &session).await? {
            return Ok(None);
        }
        self.shared.touches_total.fetch_add(1, Ordering::Relaxed);
        Ok(Some(session))
    }

    /// Ends a session everywhere; returns it if it was there.
    pub async fn end_session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .script(
                &self.shared.scripts.end_session,
                &[arg(hex(hash.as_bytes()))],
            )
            .await?;
        raw.map(|r| decode("session", &r)).transpose()
    }

    /// One user's stored sessions (ended ones included until pruned).
    pub async fn sessions_of(
        &self,
        user: UserId,
    ) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        let reply: Vec<Vec<u8>> = self
            .read_script(&self.shared.scripts.sessions_of, &[arg(user.as_u64())])
            .await?;
        let mut out = Vec::with_capacity(reply.len() / 2);
        for pair in reply.chunks_exact(2) {
            let Some(hash) = std::str::from_utf8(&pair[0])
                .ok()
                .and_then(TokenHash::from_hex)
            else {
                continue;
            };
            out.push((hash, decode("session", &pair[1])?));
        }
        Ok(out)
    }

    /// Ends every session of `user` but `except`, in one script.
    pub async fn end_sessions_of(
        &self,
        user: UserId,
        except: Option<&TokenHash>,
    ) -> Result<Vec<TokenHash>, StoreError> {
        let except = except.map(|h| hex(h.as_bytes())).unwrap_or_default();
        let ended: Vec<String> = self
            .script(
                &self.shared.scripts.end_sessions_of,
                &[arg(user.as_u64()), arg(except)],
            )
            .await?;
        Ok(ended
            .iter()
            .filter_map(|h| TokenHash::from_hex(h))
            .collect())
    }

    /// Every stored session, for the CLI: a walk of `expiry`.
    pub async fn all_sessions(&self) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        let mut out = Vec::new();
        for hash in self.all_hashes().await? {
            if let Some(session) = self.session(&hash).await? {
                out.push((hash, session));
            }
        }
        Ok(out)
    }

    /// Ends every stored session; returns how many.
    pub async fn end_all_sessions(&self) -> Result<usize, StoreError> {
        let mut ended = 0;
        for hash in self.all_hashes().await? {
            ended += usize::from(self.end_session(&hash).await?.is_some());
        }
        Ok(ended)
    }

    async fn all_hashes(&self) -> Result<Vec<TokenHash>, StoreError> {
        let members: Vec<String> = self
            .run(redis::cmd("ZRANGE").arg(self.key("expiry")).arg(0).arg(-1))
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| m.split_once(':'))
            .filter_map(|(_, h)| TokenHash::from_hex(h))
            .collect())
    }

    /// Of these sessions, those no longer stored: what a socket must close
    /// after endings may have been missed. One pipeline.
    pub async fn missing_sessions(
        &self,
        hashes: &[TokenHash],
    ) -> Result<Vec<TokenHash>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for hash in hashes {
            pipe.cmd("EXISTS")
                .arg(self.key(&format!("sess:{}", hex(hash.as_bytes()))));
        }
        let mut conn = self.shared.conn.clone();
        let exists: Vec<bool> =
            super::bounded(self.shared.timeout, pipe.query_async(&mut conn)).await?;
        Ok(hashes
            .iter()
            .zip(exists)
            .filter(|(_, e)| !e)
            .map(|(h, _)| *h)
            .collect())
    }
}

impl RedisStore {
    /// Writes a session and its index entries (`put_session.lua`).
    pub(super) async fn put_session(
        &self,
        mode: &str,
        hash: &TokenHash,
        record: &SessionRecord,
    ) -> Result<Answer, StoreError> {
        let args = [
            arg(mode),
            arg(hex(hash.as_bytes())),
            arg(record.user_id),
            arg(codec::encode(record)),
            arg(record.deadline_ms()),
            arg(expire_at(record.deadline_ms())),
        ];
        let reply = self.script(&self.shared.scripts.put_session, &args).await?;
        Answer::of(reply)
    }
}

/// When Redis may reclaim a session's key: a grace period after its
/// deadline, counted from now for a deadline already past.
fn expire_at(deadline_ms: u64) -> u64 {
    deadline_ms.max(now_ms()).saturating_add(KEY_GRACE_MS)
}
