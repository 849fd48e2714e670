//! Identities from ID-token providers, linked to users: `identities`
//! ((issuer, subject) -> user id) finds the user at sign-in, and
//! `user_identities` (user id ++ (issuer, subject) -> record) lists and
//! removes one user's links at the cost of what that user has. Both are
//! written in one transaction, with the user when a sign-in creates one.

use sled::transaction::ConflictableTransactionError as Tx;
use sled::Transactional;

use super::audit::write_audit;
use super::records::{identity_key, user_identity_key, IdentityRecord};
use super::{codec, decode, tx, AuditRecord, SledStore, StoreError};
use crate::domain::UserId;

impl SledStore {
    /// The user an identity is linked to, if any.
    pub fn identity_owner(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .shared
            .identities
            .get(identity_key(issuer, subject))?
            .and_then(|v| UserId::from_be_slice(&v)))
    }

    /// Links an identity to an existing user; linking it again to the
    /// same user changes nothing. `IdentityTaken` if another user has it.
    /// `audit` is written only if the link is new.
    pub fn link_identity(
        &self,
        user: UserId,
        identity: &IdentityRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let s = &self.shared;
        let key = identity_key(&identity.issuer, &identity.subject);
        let value = codec::encode(identity);
        let prepared = self.prepare_audit(audit)?;
        let linked = tx(
            (&s.users, &s.identities, &s.user_identities, &s.audit).transaction(
                |(users, identities, by_user, log)| {
                    if users.get(user.to_be_bytes())?.is_none() {
                        return Err(Tx::Abort(StoreError::NoSuchUser));
                    }
                    match identities.get(&key)? {
                        Some(owner) if UserId::from_be_slice(&owner) == Some(user) => {
                            return Ok(false)
                        }
                        Some(_) => return Err(Tx::Abort(StoreError::IdentityTaken)),
                        None => {}
                    }
                    identities.insert(key.as_slice(), &user.to_be_bytes())?;
                    by_user.insert(
                        user_identity_key(user, &identity.issuer, &identity.subject),
                        value.as_slice(),
                    )?;
                    write_audit(log, &prepared)?;
                    Ok(true)
                },
            ),
        )?;
        if linked {
            self.audit_written(&prepared);
        }
        Ok(())
    }

    /// A user's linked identities, oldest link first.
    pub fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRecord>, StoreError> {
        let mut found: Vec<IdentityRecord> = self
            .shared
            .user_identities
            .scan_prefix(user.to_be_bytes())
            .values()
            .map(|v| decode("user_identities", &v?))
            .collect::<Result<_, _>>()?;
        found.sort_by_key(|i| i.linked_at_ms);
        Ok(found)
    }

    /// Unlinks one of a user's identities by its public id; `None` if the
    /// user has no such identity. Refused with `LastIdentity` when it is
    /// the user's only way to sign in (no password, no other identity).
    pub fn unlink_identity(
        &self,
        user: UserId,
        public_id: &str,
        audit: &[AuditRecord],
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let s = &self.shared;
        let listed = self.identities_of(user)?;
        let Some(target) = listed.iter().find(|i| i.public_id() == public_id).cloned() else {
            return Ok(None);
        };
        let keys: Vec<Vec<u8>> = listed
            .iter()
            .map(|i| user_identity_key(user, &i.issuer, &i.subject))
            .collect();
        let prepared = self.prepare_audit(audit)?;
        tx(
            (&s.users, &s.identities, &s.user_identities, &s.audit).transaction(
                |(users, identities, by_user, log)| {
                    let raw = users
                        .get(user.to_be_bytes())?
                        .ok_or(Tx::Abort(StoreError::NoSuchUser))?;
                    let record: super::UserRecord = decode("users", &raw).map_err(Tx::Abort)?;
                    // Read every link inside the transaction, so two unlinks at
                    // once cannot each leave the other as the last one.
                    let mut linked = 0;
                    for key in &keys {
                        if by_user.get(key)?.is_some() {
                            linked += 1;
                        }
                    }
                    if !record.has_password() && linked <= 1 {
                        return Err(Tx::Abort(StoreError::LastIdentity));
                    }
                    identities.remove(identity_key(&target.issuer, &target.subject))?;
                    by_user.remove(user_identity_key(user, &target.issuer, &target.subject))?;
                    write_audit(log, &prepared)?;
                    Ok(())
                },
            ),
        )?;
        self.audit_written(&prepared);
        Ok(Some(target))
    }

    /// Removes whatever links a user still has (after the user is gone: a
    /// link that committed while the user was being removed).
    pub(super) fn unlink_all(&self, user: UserId) -> Result<(), StoreError> {
        let s = &self.shared;
        for record in self.identities_of(user)? {
            let key = identity_key(&record.issuer, &record.subject);
            tx(
                (&s.identities, &s.user_identities).transaction(|(identities, by_user)| {
                    if identities
                        .get(&key)?
                        .is_some_and(|owner| UserId::from_be_slice(&owner) == Some(user))
                    {
                        identities.remove(key.as_slice())?;
                    }
                    by_user.remove(user_identity_key(user, &record.issuer, &record.subject))?;
                    Ok::<_, Tx<StoreError>>(())
                }),
            )?;
        }
        Ok(())
    }
}
