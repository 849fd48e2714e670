//! Sessions on Redis. A session lives in its user's slot,
//! `user:{<id>}:session:<hash>`, until a grace period after its deadline,
//! with an entry in `user:{<id>}:sessions` (by deadline), so per-user work
//! costs what that user has and ends atomically. A request holds only the
//! token, so `token:<hash>` says whose it is; `{all}:expiry` holds every
//! session by deadline for the pruner. Those two are written before a
//! login's session and removed after an ending's, so a crash in between
//! leaves a token leading nowhere (it expires) or an entry the pruner
//! drops, never a session nothing finds.

use std::sync::atomic::Ordering;

use super::audit::blob;
use super::conn::Conn;
use super::keys::{expiry_member, parse_expiry_member};
use super::users::stored_pairs;
use super::{
    arg, decode, Answer, AuditRecord, RedisStore, SessionRecord, StoreError, UserRecord,
    KEY_GRACE_MS,
};
use crate::domain::{hex, TokenHash, UserId};
use crate::store::{codec, now_ms};

impl RedisStore {
    /// Stores a new session with its token and pruner entries, unless its
    /// user is gone.
    pub async fn create_session(
        &self,
        hash: &TokenHash,
        record: &SessionRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let h = hex(hash.as_bytes());
        let uid = record.user_id;
        self.list_logs(audit).await?;
        let _: Vec<redis::Value> = self
            .run_all(vec![
                redis::cmd("SET")
                    .arg(keys.token(hash))
                    .arg(uid)
                    .arg("PXAT")
                    .arg(expire_at(record.absolute_expires_at_ms))
                    .clone(),
                redis::cmd("ZADD")
                    .arg(keys.all("expiry"))
                    .arg(record.deadline_ms())
                    .arg(expiry_member(uid, &h))
                    .clone(),
            ])
            .await?;
        if let Err(e) = self.put_session("new", hash, record, audit).await {
            let _ = self.forget_sessions(uid, &[h]).await;
            return Err(e);
        }
        self.audit_written(audit);
        self.shared
            .prune_schedule
            .note_deadline(record.deadline_ms());
        Ok(())
    }

    /// Whose session this token is, if it is anyone's.
    async fn owner_of(&self, hash: &TokenHash) -> Result<Option<u64>, StoreError> {
        self.run(redis::cmd("GET").arg(self.shared.keys.token(hash)))
            .await
    }

    /// The stored session, ended or not.
    pub async fn session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let Some(uid) = self.owner_of(hash).await? else {
            return Ok(None);
        };
        let raw: Option<Vec<u8>> = self
            .run(redis::cmd("GET").arg(self.shared.keys.session(uid, &hex(hash.as_bytes()))))
            .await?;
        raw.map(|r| decode("session", &r)).transpose()
    }

    /// The session and its user: every request's read. One round trip on
    /// one server (a script); on a Cluster the token, then the user's
    /// slot.
    pub async fn session_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, StoreError> {
        let keys = &self.shared.keys;
        let h = hex(hash.as_bytes());
        let reply: Vec<Vec<u8>> = match &self.shared.conn {
            Conn::Single(_) => {
                self.read_script(
                    &self.shared.scripts.session_lookup,
                    &[&keys.token(hash)],
                    &[arg(keys.prefix()), arg(&h)],
                )
                .await?
            }
            Conn::Cluster(_) => {
                let Some(uid) = self.owner_of(hash).await? else {
                    return Ok(None);
                };
                self.read_script(
                    &self.shared.scripts.session_read,
                    &[&keys.user(uid)],
                    &[arg(&h)],
                )
                .await?
            }
        };
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
        if let Answer::Nothing = self.put_session("touch", hash, &session, &[]).await? {
            return Ok(None);
        }
        // XX: an ending that removed the entry meanwhile stays removed.
        let _: u64 = self
            .run(
                redis::cmd("ZADD")
                    .arg(self.shared.keys.all("expiry"))
                    .arg("XX")
                    .arg("GT")
                    .arg(session.deadline_ms())
                    .arg(expiry_member(session.user_id, &hex(hash.as_bytes()))),
            )
            .await?;
        self.shared.touches_total.fetch_add(1, Ordering::Relaxed);
        Ok(Some(session))
    }

    /// Ends a session everywhere; returns it if it was there.
    pub async fn end_session(
        &self,
        hash: &TokenHash,
        audit: &[AuditRecord],
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(uid) = self.owner_of(hash).await? else {
            return Ok(None);
        };
        self.end_session_of(uid, &hex(hash.as_bytes()), audit).await
    }

    /// Ends user `uid`'s session `h` (its ending published, `audit`
    /// written), then its token and pruner entries.
    async fn end_session_of(
        &self,
        uid: u64,
        h: &str,
        audit: &[AuditRecord],
    ) -> Result<Option<SessionRecord>, StoreError> {
        let keys = &self.shared.keys;
        self.list_logs(audit).await?;
        let raw: Option<Vec<u8>> = self
            .script(
                &self.shared.scripts.session_end,
                &[&keys.user(uid)],
                &[arg(h), arg(keys.events()), blob(audit)],
            )
            .await?;
        self.forget_sessions(uid, &[h.to_owned()]).await?;
        if raw.is_some() {
            self.audit_written(audit);
        }
        raw.map(|r| decode("session", &r)).transpose()
    }

    /// One user's stored sessions (ended ones included until pruned).
    pub async fn sessions_of(
        &self,
        user: UserId,
    ) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        let reply: Vec<Vec<u8>> = self
            .read_script(
                &self.shared.scripts.sessions_list,
                &[&self.shared.keys.user(user.as_u64())],
                &[],
            )
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
        audit: &[AuditRecord],
    ) -> Result<Vec<TokenHash>, StoreError> {
        let keys = &self.shared.keys;
        let uid = user.as_u64();
        let except = except.map(|h| hex(h.as_bytes())).unwrap_or_default();
        self.list_logs(audit).await?;
        let reply: Vec<redis::Value> = self
            .script(
                &self.shared.scripts.sessions_end,
                &[&keys.user(uid)],
                &[arg(except), arg(keys.events()), blob(audit)],
            )
            .await?;
        let (all, ended) = stored_pairs(reply);
        self.forget_sessions(uid, &all).await?;
        if !ended.is_empty() {
            self.audit_written(audit);
        }
        Ok(ended)
    }

    /// Every stored session, for the CLI: a walk of `expiry`.
    pub async fn all_sessions(&self) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        let keys = &self.shared.keys;
        let members = self.expiry_members().await?;
        let found: Vec<Option<Vec<u8>>> = self
            .run_all(
                members
                    .iter()
                    .map(|(uid, h)| redis::cmd("GET").arg(keys.session(*uid, h)).clone())
                    .collect(),
            )
            .await?;
        let mut out = Vec::new();
        for ((_, h), raw) in members.iter().zip(found) {
            if let (Some(hash), Some(raw)) = (TokenHash::from_hex(h), raw) {
                out.push((hash, decode("session", &raw)?));
            }
        }
        Ok(out)
    }

    /// Ends every stored session; returns how many.
    pub async fn end_all_sessions(&self) -> Result<usize, StoreError> {
        let mut ended = 0;
        for (uid, h) in self.expiry_members().await? {
            ended += usize::from(self.end_session_of(uid, &h, &[]).await?.is_some());
        }
        Ok(ended)
    }

    /// Every `expiry` member: user id and hash.
    async fn expiry_members(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let members: Vec<String> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(self.shared.keys.all("expiry"))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| parse_expiry_member(m))
            .map(|(uid, h)| (uid, h.to_owned()))
            .collect())
    }

    /// Of these sessions, those no longer stored: what a socket must close
    /// after endings may have been missed. Two batches of reads sent side
    /// by side (one pipelined write each on one server).
    pub async fn missing_sessions(
        &self,
        hashes: &[TokenHash],
    ) -> Result<Vec<TokenHash>, StoreError> {
        let keys = &self.shared.keys;
        let owners: Vec<Option<u64>> = self
            .run_all(
                hashes
                    .iter()
                    .map(|h| redis::cmd("GET").arg(keys.token(h)).clone())
                    .collect(),
            )
            .await?;
        let owned: Vec<(TokenHash, u64)> = hashes
            .iter()
            .zip(&owners)
            .filter_map(|(h, o)| o.map(|o| (*h, o)))
            .collect();
        let stored: Vec<bool> = self
            .run_all(
                owned
                    .iter()
                    .map(|(h, uid)| {
                        redis::cmd("EXISTS")
                            .arg(keys.session(*uid, &hex(h.as_bytes())))
                            .clone()
                    })
                    .collect(),
            )
            .await?;
        let mut missing: Vec<TokenHash> = hashes
            .iter()
            .zip(&owners)
            .filter(|(_, o)| o.is_none())
            .map(|(h, _)| *h)
            .collect();
        missing.extend(
            owned
                .iter()
                .zip(stored)
                .filter(|(_, s)| !s)
                .map(|((h, _), _)| *h),
        );
        Ok(missing)
    }

    /// Writes a session and its user-index entry (`session_put.lua`).
    pub(super) async fn put_session(
        &self,
        mode: &str,
        hash: &TokenHash,
        record: &SessionRecord,
        audit: &[AuditRecord],
    ) -> Result<Answer, StoreError> {
        let args = [
            arg(mode),
            arg(hex(hash.as_bytes())),
            arg(codec::encode(record)),
            arg(record.deadline_ms()),
            arg(expire_at(record.deadline_ms())),
            blob(audit),
        ];
        let reply = self
            .script(
                &self.shared.scripts.session_put,
                &[&self.shared.keys.user(record.user_id)],
                &args,
            )
            .await?;
        Answer::of(reply)
    }

    /// Removes the token and pruner entries of user `uid`'s ended
    /// sessions: the last step of every ending.
    pub(super) async fn forget_sessions(
        &self,
        uid: u64,
        hashes: &[String],
    ) -> Result<(), StoreError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let keys = &self.shared.keys;
        let mut cmds: Vec<redis::Cmd> = hashes
            .iter()
            .filter_map(|h| TokenHash::from_hex(h))
            .map(|h| redis::cmd("DEL").arg(keys.token(&h)).clone())
            .collect();
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(keys.all("expiry"));
        for h in hashes {
            zrem.arg(expiry_member(uid, h));
        }
        cmds.push(zrem);
        self.run_all::<u64>(cmds).await.map(drop)
    }
}

/// When Redis may reclaim a key that lives until `deadline_ms`: a grace
/// period after it, counted from now for a deadline already past.
pub(super) fn expire_at(deadline_ms: u64) -> u64 {
    deadline_ms.max(now_ms()).saturating_add(KEY_GRACE_MS)
}
