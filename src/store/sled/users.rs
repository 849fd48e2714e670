//! Users, their name and e-mail indexes, and the count of admins that keeps
//! the last one from being removed or demoted.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use sled::transaction::{ConflictableTransactionError as Tx, TransactionalTree};
use sled::Transactional;

use super::audit::{write_audit, write_audit_for};
use super::records::{expiry_key, identity_key, user_identity_key, user_session_key};
use super::{
    codec, decode, tx, AuditRecord, Factors, IdentityRecord, NewUser, RemovedUser, SessionRecord,
    SledStore, StoreError, UserRecord,
};
use crate::domain::{email_key, name_key, Role, UserId};

/// `meta` key of the number of admins, kept in the same transactions that
/// change roles, so two admins demoting each other cannot both succeed.
pub(super) const ADMIN_COUNT: &[u8] = b"admin_count";

/// `meta` key of the next user id: users get their own dense counter,
/// taken in the registering transaction (sled's `generate_id` reserves
/// blocks, so its ids jumped by about a million at every open).
pub(super) const NEXT_USER_ID: &[u8] = b"next_user_id";

impl SledStore {
    /// Adds a user as `create_user` does, linked to `identity` in the same
    /// transaction (an ID-token sign-in's first visit): an identity that
    /// another sign-in linked meanwhile is refused with `IdentityTaken`.
    /// `audit` goes to the new user's log.
    pub fn create_user_linked(
        &self,
        new: NewUser<'_>,
        identity: Option<&IdentityRecord>,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        let s = &self.shared;
        let identities = identity.map(std::slice::from_ref).unwrap_or_default();
        let prepared = self.prepare_audit(audit)?;
        let record = tx(self.user_trees().transaction(|trees| {
            let (_, _, _, meta, _, _, log) = trees;
            let next = read_count(meta.get(NEXT_USER_ID)?.as_deref()).max(1);
            meta.insert(NEXT_USER_ID, &(next + 1).to_be_bytes())?;
            let record = UserRecord {
                id: next,
                username: new.username.as_ref().to_owned(),
                email: new.email.as_ref().to_owned(),
                role: new.role,
                password_hash: new.password_hash.clone(),
                created_at_ms: new.now_ms,
                factors: Default::default(),
                email_verified: false,
            };
            insert_user(trees, &record, identities)?;
            write_audit_for(log, &prepared, record.id)?;
            Ok(record)
        }))?;
        s.user_count.fetch_add(1, Ordering::Relaxed);
        self.written()
            .entries(prepared.entries().map(|e| e.of_new_user(record.id)));
        Ok(record)
    }

    /// The trees a new user is written to, in `insert_user`'s order.
    pub(super) fn user_trees(&self) -> UserTrees<'_> {
        let s = &self.shared;
        (
            &s.users,
            &s.user_names,
            &s.user_emails,
            &s.meta,
            &s.identities,
            &s.user_identities,
            &s.audit,
        )
    }

    /// Starts the user id counter of a database written before it existed
    /// just past its highest id, so ids stay unique and only grow.
    pub(super) fn init_user_ids(&self) -> Result<(), StoreError> {
        let s = &self.shared;
        if s.meta.get(NEXT_USER_ID)?.is_some() {
            return Ok(());
        }
        let highest = match s.users.last()? {
            Some((key, _)) => read_count(Some(&key)),
            None => 0,
        };
        s.meta.insert(NEXT_USER_ID, &(highest + 1).to_be_bytes())?;
        Ok(())
    }

    /// The id the next user gets (for `migrate`).
    pub fn next_user_id(&self) -> Result<u64, StoreError> {
        Ok(read_count(self.shared.meta.get(NEXT_USER_ID)?.as_deref()).max(1))
    }

    /// The user with this id, if any.
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.shared
            .users
            .get(id.to_be_bytes())?
            .map(|v| decode("users", &v))
            .transpose()
    }

    /// Finds a user by name, ignoring case.
    pub fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&self.shared.user_names, &name_key(name))
    }

    /// Finds a user by e-mail, ignoring case.
    pub fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_by_index(&self.shared.user_emails, &email_key(email))
    }

    fn user_by_index(
        &self,
        index: &sled::Tree,
        key: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        match index
            .get(key.as_bytes())?
            .and_then(|v| UserId::from_be_slice(&v))
        {
            Some(id) => self.user(id),
            None => Ok(None),
        }
    }

    /// Up to `limit` users with ids after `after`, in id order. Ids only
    /// grow, so a user registered while paging is neither skipped nor
    /// repeated.
    pub fn list_users(
        &self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let start = match after {
            Some(id) => Bound::Excluded(id.to_be_bytes()),
            None => Bound::Unbounded,
        };
        self.shared
            .users
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|item| decode("users", &item?.1))
            .collect()
    }

    /// Users stored.
    pub fn user_count(&self) -> u64 {
        self.shared.user_count.load(Ordering::Relaxed).max(0) as u64
    }

    /// Changes a role; refuses to demote the last admin. `audit` is
    /// written only if the role changed.
    pub fn set_role(
        &self,
        id: UserId,
        role: Role,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        let s = &self.shared;
        let prepared = self.prepare_audit(audit)?;
        let (user, changed) = tx((&s.users, &s.meta, &s.audit).transaction(
            |(users, meta, log)| {
                let mut user = read_user(users, id)?;
                match (user.role, role) {
                    (Role::Admin, Role::User) => adjust_admins(meta, -1)?,
                    (Role::User, Role::Admin) => adjust_admins(meta, 1)?,
                    _ => return Ok((user, false)),
                }
                user.role = role;
                users.insert(&id.to_be_bytes(), codec::encode(&user))?;
                write_audit(log, &prepared)?;
                Ok((user, true))
            },
        ))?;
        if changed {
            self.audit_written(&prepared);
        }
        Ok(user)
    }

    /// Replaces a password hash.
    pub fn set_password_hash(
        &self,
        id: UserId,
        hash: &str,
        audit: &[AuditRecord],
    ) -> Result<UserRecord, StoreError> {
        self.replace_user_if(id, audit, |u| {
            u.password_hash = hash.to_owned();
            Some(())
        })?
        .map(|((), user)| user)
        .ok_or(StoreError::NoSuchUser)
    }

    /// Applies `change` to the user's factors and writes them, in one
    /// transaction with the read: `change` answers `None` to write nothing
    /// (`audit` included).
    pub fn change_factors<T>(
        &self,
        id: UserId,
        audit: &[AuditRecord],
        change: impl Fn(&mut Factors) -> Option<T>,
    ) -> Result<Option<(T, UserRecord)>, StoreError> {
        self.replace_user_if(id, audit, |u| change(&mut u.factors))
    }

    /// Verifies (and moves) the e-mail and its index in one transaction.
    pub fn verify_email(
        &self,
        id: UserId,
        from: &str,
        to: &str,
        audit: &[AuditRecord],
    ) -> Result<Option<UserRecord>, StoreError> {
        let s = &self.shared;
        let (old, new) = (email_key(from), email_key(to));
        let prepared = self.prepare_audit(audit)?;
        let verified = tx((&s.users, &s.user_emails, &s.audit).transaction(
            |(users, emails, log)| {
                let mut user = read_user(users, id)?;
                if email_key(&user.email) != old {
                    return Ok(None);
                }
                if emails
                    .get(new.as_bytes())?
                    .is_some_and(|owner| *owner != id.to_be_bytes())
                {
                    return Err(Tx::Abort(StoreError::EmailTaken));
                }
                if old != new {
                    emails.remove(old.as_bytes())?;
                    emails.insert(new.as_bytes(), &id.to_be_bytes())?;
                }
                user.email = to.to_owned();
                user.email_verified = true;
                users.insert(&id.to_be_bytes(), codec::encode(&user))?;
                write_audit(log, &prepared)?;
                Ok(Some(user))
            },
        ))?;
        if verified.is_some() {
            self.audit_written(&prepared);
        }
        Ok(verified)
    }

    /// Applies `change` to the user in one transaction; `change` answers
    /// `None` to write nothing. For changes that touch no index.
    fn replace_user_if<T>(
        &self,
        id: UserId,
        audit: &[AuditRecord],
        change: impl Fn(&mut UserRecord) -> Option<T>,
    ) -> Result<Option<(T, UserRecord)>, StoreError> {
        let s = &self.shared;
        let prepared = self.prepare_audit(audit)?;
        let replaced = tx((&s.users, &s.audit).transaction(|(users, log)| {
            let mut user = read_user(users, id)?;
            let Some(done) = change(&mut user) else {
                return Ok(None);
            };
            users.insert(&id.to_be_bytes(), codec::encode(&user))?;
            write_audit(log, &prepared)?;
            Ok(Some((done, user)))
        }))?;
        if replaced.is_some() {
            self.audit_written(&prepared);
        }
        Ok(replaced)
    }

    /// Removes a user, both indexes and every session in one transaction, so
    /// the name and e-mail are free at once. Refuses the last admin.
    /// `audit` stays in the removed user's log until pruned.
    pub fn remove_user(
        &self,
        id: UserId,
        audit: &[AuditRecord],
    ) -> Result<RemovedUser, StoreError> {
        let s = &self.shared;
        let listed = self.session_hashes_of(id)?;
        let links = self.identities_of(id)?;
        let prepared = self.prepare_audit(audit)?;
        let trees = (
            &s.users,
            &s.user_names,
            &s.user_emails,
            &s.sessions,
            &s.session_expiry,
            &s.user_sessions,
            &s.meta,
            &s.identities,
            &s.user_identities,
            &s.audit,
        );
        let mut removed = tx(trees.transaction(
            |(
                users,
                names,
                emails,
                sessions,
                expiry,
                by_user,
                meta,
                identities,
                id_by_user,
                log,
            )| {
                let user = read_user(users, id)?;
                write_audit(log, &prepared)?;
                for link in &links {
                    identities.remove(identity_key(&link.issuer, &link.subject))?;
                    id_by_user.remove(user_identity_key(id, &link.issuer, &link.subject))?;
                }
                users.remove(&id.to_be_bytes())?;
                names.remove(name_key(&user.username).as_bytes())?;
                emails.remove(email_key(&user.email).as_bytes())?;
                if user.role == Role::Admin {
                    adjust_admins(meta, -1)?;
                }
                let mut ended = Vec::new();
                for hash in &listed {
                    let Some(raw) = sessions.remove(hash.as_bytes())? else {
                        continue;
                    };
                    let session: SessionRecord = decode("sessions", &raw).map_err(Tx::Abort)?;
                    expiry.remove(expiry_key(session.deadline_ms(), hash))?;
                    by_user.remove(user_session_key(id, hash))?;
                    ended.push(*hash);
                }
                Ok(RemovedUser {
                    user,
                    sessions: ended,
                })
            },
        ))?;
        s.user_count.fetch_sub(1, Ordering::Relaxed);
        self.audit_written(&prepared);
        s.session_count
            .fetch_sub(removed.sessions.len() as i64, Ordering::Relaxed);
        self.notify_ended(&removed.sessions);
        // A login that committed between the scan and the removal left a
        // session behind; no new one can start now that the user is gone.
        removed
            .sessions
            .extend(self.end_sessions_of(id, None, &[])?);
        self.unlink_all(id)?;
        Ok(removed)
    }
}

fn read_user(users: &TransactionalTree, id: UserId) -> Result<UserRecord, Tx<StoreError>> {
    let raw = users
        .get(id.to_be_bytes())?
        .ok_or(Tx::Abort(StoreError::NoSuchUser))?;
    decode("users", &raw).map_err(Tx::Abort)
}

pub(super) fn read_count(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Adds `delta` to the admin count; refuses to reach zero from one.
/// `users`, `user_names`, `user_emails`, `meta`, `identities`,
/// `user_identities`, `audit`.
pub(super) type UserTrees<'a> = (
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
);

/// Writes a new user's record, name and e-mail entries, admin count and
/// identities inside a transaction over `UserTrees`; a name, e-mail or
/// identity someone has is refused.
pub(super) fn insert_user(
    (users, names, emails, meta, by_key, by_user, _): &(
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
        TransactionalTree,
    ),
    user: &UserRecord,
    identities: &[IdentityRecord],
) -> Result<(), Tx<StoreError>> {
    let (name, email) = (name_key(&user.username), email_key(&user.email));
    if names.get(name.as_bytes())?.is_some() {
        return Err(Tx::Abort(StoreError::UsernameTaken));
    }
    if emails.get(email.as_bytes())?.is_some() {
        return Err(Tx::Abort(StoreError::EmailTaken));
    }
    let id = user.user_id().to_be_bytes();
    users.insert(&id, codec::encode(user))?;
    names.insert(name.as_bytes(), &id)?;
    emails.insert(email.as_bytes(), &id)?;
    if user.role == Role::Admin {
        adjust_admins(meta, 1)?;
    }
    for i in identities {
        let key = identity_key(&i.issuer, &i.subject);
        if by_key.get(&key)?.is_some() {
            return Err(Tx::Abort(StoreError::IdentityTaken));
        }
        by_key.insert(key, &id)?;
        by_user.insert(
            user_identity_key(user.user_id(), &i.issuer, &i.subject),
            codec::encode(i),
        )?;
    }
    Ok(())
}

fn adjust_admins(meta: &TransactionalTree, delta: i64) -> Result<(), Tx<StoreError>> {
    let count = read_count(meta.get(ADMIN_COUNT)?.as_deref());
    if delta < 0 && count <= 1 {
        return Err(Tx::Abort(StoreError::LastAdmin));
    }
    let next = count.saturating_add_signed(delta);
    meta.insert(ADMIN_COUNT, &next.to_be_bytes())?;
    Ok(())
}
