//! Users on Redis. A user's record lives in their slot (`user:{<id>}`);
//! the name, e-mail and identity indexes are keys of their own, and the
//! user list and admin count are deployment-wide (`keys.rs`). No script
//! can span those, so every change runs in steps, ordered so that a crash
//! between any two leaves nothing a reader trusts and nothing `check`
//! cannot find:
//! - a registration writes the record first, then claims its indexes
//!   one by one in a fixed order (`SET NX`; losing one gives back the
//!   others and drops the record),
//!   then lists the user. A reader follows an index only to a record that
//!   has that name, so an index never leads to a half-made user, and an
//!   index whose user does not have it is taken over;
//! - a removal gives up the indexes first, then removes the record with
//!   every session in one script, then unlists;
//! - an e-mail change claims the new address's entry, then rewrites the
//!   record if it still has the old address, claims the entry again (a
//!   registration may have taken it over while the record did not say so
//!   yet: then the record goes back), then gives the old entry up (an
//!   entry whose user no longer has it is one a reader ignores);
//! - the admin count is taken before a demotion or removal and added after
//!   a promotion, so it is never above the admins there are: the last
//!   admin stays, whichever instances race.
//!
//! Changes to an existing record compare the record they read, and retry
//! if another instance changed it in between.

use std::sync::atomic::{AtomicBool, Ordering};

use super::audit::blob;
use super::{
    arg, decode, Answer, AuditRecord, Factors, IdentityRecord, NewUser, RedisStore, RemovedUser,
    StoreError, UserRecord, RETRIES,
};
use crate::domain::{email_key, hex, name_key, Role, TokenHash, UserId};
use crate::store::codec;
use crate::store::records::identity_key;

/// An index entry: which key leads to a user, and how to tell that the
/// user it names really has it.
pub(super) enum Index {
    Name(String),
    Email(String),
    /// An identity key, hex.
    Ident(String),
}

impl Index {
    /// Whether it is `user`'s name or e-mail (an identity is in the user's
    /// own list, not in the record: `holds` reads it).
    fn names(&self, user: &UserRecord) -> bool {
        match self {
            Index::Name(k) => name_key(&user.username) == *k,
            Index::Email(k) => email_key(&user.email) == *k,
            Index::Ident(_) => false,
        }
    }
}

impl RedisStore {
    /// Adds a user under the next id, with, for an ID-token sign-in, the
    /// identity: the steps in the module doc.
    pub async fn create_user_linked(
        &self,
        new: NewUser<'_>,
        identity: Option<&IdentityRecord>,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        let id: u64 = self
            .run(redis::cmd("INCR").arg(self.shared.keys.all("next_user_id")))
            .await?;
        let record = UserRecord {
            id,
            username: new.username.as_ref().to_owned(),
            email: new.email.as_ref().to_owned(),
            role: new.role,
            password_hash: new.password_hash.clone(),
            created_at_ms: new.now_ms,
            factors: Default::default(),
            email_verified: false,
        };
        let identities = identity.map(std::slice::from_ref).unwrap_or_default();
        let audit: Vec<AuditRecord> = audit.iter().map(|e| e.of_new_user(id)).collect();
        self.add_user(&record, identities, &audit).await?;
        Ok(record)
    }

    /// Writes `user` under its own id, claims its indexes, lists it.
    pub(super) async fn add_user(
        &self,
        user: &UserRecord,
        identities: &[IdentityRecord],
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let user_key = keys.user(user.id);
        self.list_logs(audit).await?;
        let mut args = vec![arg(codec::encode(user)), blob(audit)];
        let mut indexes = vec![
            Index::Name(name_key(&user.username)),
            Index::Email(email_key(&user.email)),
        ];
        for identity in identities {
            let k = hex(&identity_key(&identity.issuer, &identity.subject));
            args.push(arg(&k));
            args.push(arg(codec::encode(identity)));
            indexes.push(Index::Ident(k));
        }
        let reply = self
            .script(&self.shared.scripts.user_create, &[&user_key], &args)
            .await?;
        if !matches!(Answer::of(reply)?, Answer::Done(_)) {
            return Err(StoreError::Redis(format!(
                "user id {} already holds a record",
                user.id
            )));
        }
        let lost = match self.claim_in_order(&indexes, user.id).await {
            Ok(None) => None,
            Ok(Some(Index::Name(_))) => Some(StoreError::UsernameTaken),
            Ok(Some(Index::Email(_))) => Some(StoreError::EmailTaken),
            Ok(Some(Index::Ident(_))) => Some(StoreError::IdentityTaken),
            Err(e) => Some(e),
        };
        if let Some(refusal) = lost {
            // Give back what was won, then drop the record: nothing leads to it.
            self.release(&indexes, user.id).await?;
            let _: u64 = self
                .run(
                    redis::cmd("DEL")
                        .arg(&user_key)
                        .arg(keys.user_identities(user.id)),
                )
                .await?;
            if !audit.is_empty() {
                self.drop_log(user.id).await?;
            }
            return Err(refusal);
        }
        self.audit_written(audit);
        let admin = if user.role == Role::Admin { "1" } else { "0" };
        let reply = self
            .script(
                &self.shared.scripts.user_listed,
                &[&keys.all("users"), &keys.all("admin_count")],
                &[arg(user.id), arg(admin)],
            )
            .await?;
        Answer::of(reply).map(drop)
    }

    /// Claims `indexes` for user `id` one at a time, in the order given
    /// (the same everywhere: two registrations racing for one name and one
    /// e-mail cannot each win one of them); stops at the first another
    /// user holds, and answers it.
    async fn claim_in_order<'i>(
        &self,
        indexes: &'i [Index],
        id: u64,
    ) -> Result<Option<&'i Index>, StoreError> {
        for index in indexes {
            if !self.claim(index, id).await? {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// Points `index` at user `id`: true if it now does, false if another
    /// user has it. An entry whose user does not have it (left by a crash
    /// between two steps) is taken over.
    pub(super) async fn claim(&self, index: &Index, id: u64) -> Result<bool, StoreError> {
        let entry = self.index_key(index);
        for _ in 0..RETRIES {
            let set: Option<String> = self
                .run(redis::cmd("SET").arg(&entry).arg(id).arg("NX"))
                .await?;
            if set.is_some() {
                return Ok(true);
            }
            let Some(owner) = self
                .run::<Option<u64>>(redis::cmd("GET").arg(&entry))
                .await?
            else {
                continue;
            };
            if owner == id {
                return Ok(true);
            }
            if self.holds(owner, index).await? {
                return Ok(false);
            }
            let swapped: u64 = self
                .script(
                    &self.shared.scripts.claim,
                    &[&entry],
                    &[arg(owner), arg(id)],
                )
                .await?;
            if swapped == 1 {
                return Ok(true);
            }
        }
        Err(StoreError::Redis(
            "an index entry kept changing; try again".into(),
        ))
    }

    /// Gives up every one of these entries that points at `id`.
    pub(super) async fn release(&self, indexes: &[Index], id: u64) -> Result<(), StoreError> {
        futures_util::future::try_join_all(
            indexes
                .iter()
                .map(|index| self.give_up(self.index_key(index), id)),
        )
        .await
        .map(drop)
    }

    /// Deletes the index entry `entry` if it still points at `id`.
    pub(super) async fn give_up(&self, entry: String, id: u64) -> Result<(), StoreError> {
        self.script::<u64>(&self.shared.scripts.claim, &[&entry], &[arg(id), arg("")])
            .await
            .map(drop)
    }

    /// Whether user `owner` has what `index` says (a user's name, e-mail,
    /// or a linked identity).
    pub(super) async fn holds(&self, owner: u64, index: &Index) -> Result<bool, StoreError> {
        if let Index::Ident(k) = index {
            return self
                .run(
                    redis::cmd("HEXISTS")
                        .arg(self.shared.keys.user_identities(owner))
                        .arg(k),
                )
                .await;
        }
        let user = self.user(UserId::from_u64(owner)).await?;
        Ok(user.is_some_and(|u| index.names(&u)))
    }

    pub(super) fn index_key(&self, index: &Index) -> String {
        let keys = &self.shared.keys;
        match index {
            Index::Name(k) => keys.name(k),
            Index::Email(k) => keys.email(k),
            Index::Ident(k) => keys.ident(k),
        }
    }

    /// The user with this id, if any.
    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .run(redis::cmd("GET").arg(self.shared.keys.user(id.as_u64())))
            .await?;
        raw.map(|r| decode("user", &r)).transpose()
    }

    /// Finds a user by name, ignoring case.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&Index::Name(name_key(name))).await
    }

    /// Finds a user by e-mail, ignoring case.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&Index::Email(email_key(email))).await
    }

    /// The user an index entry leads to, if that user has it.
    async fn user_by_index(&self, index: &Index) -> Result<Option<UserRecord>, StoreError> {
        let owner: Option<u64> = self
            .run(redis::cmd("GET").arg(self.index_key(index)))
            .await?;
        let Some(owner) = owner else { return Ok(None) };
        let user = self.user(UserId::from_u64(owner)).await?;
        Ok(user.filter(|u| index.names(u)))
    }

    /// Up to `limit` users with ids after `after`, in id order.
    pub async fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let after = after.map_or(0, |id| id.as_u64());
        let limit = limit.min(i64::MAX as usize) as i64;
        let ids: Vec<u64> = self
            .run(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.shared.keys.all("users"))
                    .arg(format!("({after}"))
                    .arg("+inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await?;
        let raw: Vec<Option<Vec<u8>>> = self
            .run_all(
                ids.iter()
                    .map(|id| redis::cmd("GET").arg(self.shared.keys.user(*id)).clone())
                    .collect(),
            )
            .await?;
        raw.iter().flatten().map(|r| decode("user", r)).collect()
    }

    /// Changes a role; refuses to demote the last admin.
    pub async fn set_role(
        &self,
        id: UserId,
        role: Role,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        self.change_user(id, audit, |user| {
            let delta = match (user.role, role) {
                (Role::Admin, Role::User) => -1,
                (Role::User, Role::Admin) => 1,
                _ => 0,
            };
            user.role = role;
            // The same role: nothing changed, nothing to log.
            (delta, delta != 0)
        })
        .await
    }

    /// Replaces a password hash.
    pub async fn set_password_hash(
        &self,
        id: UserId,
        hash: &str,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        self.change_user(id, audit, |user| {
            user.password_hash = hash.to_owned();
            (0, true)
        })
        .await
    }

    /// Applies `change` to the user's factors and writes them if the record
    /// is still the one read (one script compares and writes), else reads
    /// again: of two instances accepting the same TOTP step, one wins.
    /// `change` answers `None` to write nothing.
    pub async fn change_factors<T>(
        &self,
        id: UserId,
        audit: &[AuditRecord],
        change: impl Fn(&mut Factors) -> Option<T>,
    ) -> Result<Option<(T, UserRecord)>, StoreError> {
        // Boxed: the compare-and-write loop's state would otherwise sit
        // inline in `Store::change_factors` on either backend, and a key's
        // second step (webauthn-rs's checks) already runs deep.
        Box::pin(
            self.replace_user_if(id, "changing a user's factors", audit, |u| {
                change(&mut u.factors)
            }),
        )
        .await
    }

    /// Verifies the e-mail, moving it (the steps in the module doc) when
    /// `to` is another address than `from`.
    pub async fn verify_email(
        &self,
        id: UserId,
        from: &str,
        to: &str,
        audit: &[AuditRecord],
    ) -> Result<Option<UserRecord>, StoreError> {
        let (old, new) = (email_key(from), email_key(to));
        let entry = Index::Email(new.clone());
        // The same address: its entry is the user's already.
        if old != new && !Box::pin(self.claim(&entry, id.as_u64())).await? {
            return Err(StoreError::EmailTaken);
        }
        let changed = Box::pin(
            self.replace_user_if(id, "changing a user's e-mail", audit, |u| {
                (email_key(&u.email) == old).then(|| {
                    let was_verified = u.email_verified;
                    u.email = to.to_owned();
                    u.email_verified = true;
                    was_verified
                })
            }),
        )
        .await?;
        if old == new {
            return Ok(changed.map(|(_, user)| user));
        }
        let Some((was_verified, user)) = changed else {
            // The record kept its address: the claimed entry goes back,
            // unless a racing change gave the user that address.
            let now = self.user(id).await?;
            if now.is_none_or(|u| email_key(&u.email) != new) {
                self.give_up(self.index_key(&entry), id.as_u64()).await?;
            }
            return Ok(None);
        };
        // Until the record said `to`, a registration could take the entry
        // over as stale: claimed again, it is ours or that user's.
        if !Box::pin(self.claim(&entry, id.as_u64())).await? {
            Box::pin(
                self.replace_user_if(id, "undoing an e-mail change", &[], |u| {
                    (email_key(&u.email) == new).then(|| {
                        u.email = from.to_owned();
                        u.email_verified = was_verified;
                    })
                }),
            )
            .await?;
            return Err(StoreError::EmailTaken);
        }
        self.give_up(self.index_key(&Index::Email(old)), id.as_u64())
            .await?;
        Ok(Some(user))
    }

    /// Applies `change` to the user and writes it back if nobody changed
    /// it meanwhile, else reads again; `change` answers `None` to write
    /// nothing. For changes that touch no index (the user's own slot).
    async fn replace_user_if<T>(
        &self,
        id: UserId,
        what: &'static str,
        audit: &[AuditRecord],
        change: impl Fn(&mut UserRecord) -> Option<T>,
    ) -> Result<Option<(T, UserRecord)>, StoreError> {
        let user_key = self.shared.keys.user(id.as_u64());
        let change = &change;
        self.list_logs(audit).await?;
        let entries = blob(audit);
        let replaced = self
            .with_user(id, what, |raw, mut user| {
                let user_key = &user_key;
                let entries = &entries;
                async move {
                    let Some(done) = change(&mut user) else {
                        return Ok(Some(None));
                    };
                    let args = [arg(raw), arg(codec::encode(&user)), entries.clone()];
                    let written = self
                        .script(&self.shared.scripts.user_replace, &[user_key], &args)
                        .await
                        .and_then(Answer::of)?;
                    Ok(match written {
                        Answer::Done(_) => Some(Some((done, user))),
                        _ => None,
                    })
                }
            })
            .await?;
        if replaced.is_some() {
            self.audit_written(audit);
        }
        Ok(replaced)
    }

    /// Reads the user, applies `change` (which returns the admin count's
    /// delta, and whether `audit` records what it did) and writes it back
    /// if nobody changed it meanwhile: the count taken before a demotion,
    /// added after a promotion.
    async fn change_user(
        &self,
        id: UserId,
        audit: &[AuditRecord],
        change: impl Fn(&mut UserRecord) -> (i64, bool),
    ) -> Result<UserRecord, StoreError> {
        self.list_logs(audit).await?;
        let entries = blob(audit);
        let changed = self
            .with_user(id, "changing a user", |raw, mut user| {
                let (delta, logged) = change(&mut user);
                let user_key = self.shared.keys.user(id.as_u64());
                let log = if logged { entries.clone() } else { Vec::new() };
                let args = [arg(raw), arg(codec::encode(&user)), log];
                async move {
                    if delta < 0 {
                        self.admin_delta(-1).await?;
                    }
                    let written = self
                        .script(&self.shared.scripts.user_replace, &[&user_key], &args)
                        .await
                        .and_then(Answer::of);
                    match written {
                        Ok(Answer::Done(_)) => {
                            if delta > 0 {
                                self.admin_delta(1).await?;
                            }
                            Ok(Some((user, logged)))
                        }
                        other => {
                            if delta < 0 {
                                self.admin_delta(1).await?;
                            }
                            other.map(|_| None)
                        }
                    }
                }
            })
            .await?;
        if changed.1 {
            self.audit_written(audit);
        }
        Ok(changed.0)
    }

    /// Every index entry that leads to `user`: name, e-mail, identities.
    pub(super) async fn indexes_of(&self, user: &UserRecord) -> Result<Vec<Index>, StoreError> {
        let idents: Vec<String> = self
            .run(redis::cmd("HKEYS").arg(self.shared.keys.user_identities(user.id)))
            .await?;
        let mut indexes = vec![
            Index::Name(name_key(&user.username)),
            Index::Email(email_key(&user.email)),
        ];
        indexes.extend(idents.into_iter().map(Index::Ident));
        Ok(indexes)
    }

    /// Moves the admin count by `delta`; taking the last one is refused.
    async fn admin_delta(&self, delta: i64) -> Result<(), StoreError> {
        let reply = self
            .script(
                &self.shared.scripts.admin_count,
                &[&self.shared.keys.all("admin_count")],
                &[arg(delta)],
            )
            .await?;
        Answer::of(reply).map(drop)
    }

    /// A removal's steps after the admin count: gives up the indexes,
    /// removes the record with every session (each ending published) if it
    /// is still `raw`, then its token and pruner entries and its listing.
    /// Answers the sessions ended, or `None` if the record changed.
    pub(super) async fn remove_as_read(
        &self,
        user: &UserRecord,
        raw: Vec<u8>,
        audit: &[AuditRecord],
    ) -> Result<Option<Vec<TokenHash>>, StoreError> {
        let (keys, uid) = (&self.shared.keys, user.id);
        self.release(&self.indexes_of(user).await?, uid).await?;
        self.list_logs(audit).await?;
        let reply = self
            .script(
                &self.shared.scripts.user_remove,
                &[&keys.user(uid)],
                &[arg(raw), arg(keys.events()), blob(audit)],
            )
            .await?;
        let Answer::Done(pairs) = Answer::of(reply)? else {
            return Ok(None);
        };
        self.audit_written(audit);
        let (all, ended) = stored_pairs(pairs);
        self.forget_sessions(uid, &all).await?;
        let _: u64 = self
            .run(redis::cmd("ZREM").arg(keys.all("users")).arg(uid))
            .await?;
        Ok(Some(ended))
    }

    /// Removes a user with every session and identity: the steps in the
    /// module doc. Refuses the last admin.
    pub async fn remove_user(
        &self,
        id: UserId,
        audit: &[AuditRecord],
    ) -> Result<RemovedUser, StoreError> {
        let uid = id.as_u64();
        let released = AtomicBool::new(false);
        let removed = self
            .with_user(id, "removing a user", |raw, user| {
                let released = &released;
                async move {
                    let admin = user.role == Role::Admin;
                    if admin {
                        self.admin_delta(-1).await?;
                    }
                    released.store(true, Ordering::Relaxed);
                    let removed = self.remove_as_read(&user, raw, audit).await;
                    if admin && !matches!(removed, Ok(Some(_))) {
                        self.admin_delta(1).await?;
                    }
                    Ok(removed?.map(|sessions| RemovedUser { user, sessions }))
                }
            })
            .await;
        if let (Err(StoreError::LastAdmin), true) = (&removed, released.into_inner()) {
            // A retry found the user promoted meanwhile, and the last
            // admin: put back the indexes given up for the removal.
            if let Some(user) = self.user(id).await? {
                for index in &self.indexes_of(&user).await? {
                    self.claim(index, uid).await?;
                }
            }
        }
        removed
    }
}

/// A script's `hash, stored (1/0), ...` answer: every hash, and those
/// that were still stored (the sessions it ended).
pub(super) fn stored_pairs(reply: Vec<redis::Value>) -> (Vec<String>, Vec<TokenHash>) {
    let mut all = Vec::with_capacity(reply.len() / 2);
    let mut ended = Vec::new();
    let mut values = reply.into_iter();
    while let (Some(h), Some(stored)) = (values.next(), values.next()) {
        let Ok(h) = redis::from_redis_value::<String>(h) else {
            continue;
        };
        if redis::from_redis_value::<i64>(stored).unwrap_or(0) == 1 {
            ended.extend(TokenHash::from_hex(&h));
        }
        all.push(h);
    }
    (all, ended)
}
