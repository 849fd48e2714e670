//! Identities on Redis: `user:{<id>}:identities` (identity key to record)
//! lists one user's links, and `ident:<key>` finds the user at sign-in.
//! They live in different slots, so a link lists first and claims the
//! entry after (giving the listing back if another user holds it), and an
//! unlink unlists first and gives the entry up after; an entry is trusted
//! only when its user lists it (users.rs has the same rule for names).

use redis::Value;

use super::audit::blob;
use super::users::Index;
use super::{arg, decode, Answer, AuditRecord, IdentityRecord, RedisStore, StoreError};
use crate::domain::{hex, UserId};
use crate::store::codec;
use crate::store::records::identity_key;

impl RedisStore {
    /// The user an identity is linked to, if any.
    pub async fn identity_owner(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let index = Index::Ident(hex(&identity_key(issuer, subject)));
        let owner: Option<u64> = self
            .run(redis::cmd("GET").arg(self.index_key(&index)))
            .await?;
        let Some(owner) = owner else { return Ok(None) };
        Ok(self
            .holds(owner, &index)
            .await?
            .then(|| UserId::from_u64(owner)))
    }

    /// Links an identity to an existing user.
    pub async fn link_identity(
        &self,
        user: UserId,
        identity: &IdentityRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let uid = user.as_u64();
        let k = hex(&identity_key(&identity.issuer, &identity.subject));
        self.list_logs(audit).await?;
        let reply: Vec<Value> = self
            .script(
                &self.shared.scripts.identity_link,
                &[&self.shared.keys.user(uid)],
                &[arg(&k), arg(codec::encode(identity)), blob(audit)],
            )
            .await?;
        let Answer::Done(added) = Answer::of(reply)? else {
            return Ok(());
        };
        let added = added
            .into_iter()
            .next()
            .and_then(|v| redis::from_redis_value::<i64>(v).ok())
            == Some(1);
        if added {
            self.audit_written(audit);
        }
        if self.claim(&Index::Ident(k.clone()), uid).await? {
            return Ok(());
        }
        if added {
            let _: u64 = self
                .run(
                    redis::cmd("HDEL")
                        .arg(self.shared.keys.user_identities(uid))
                        .arg(&k),
                )
                .await?;
        }
        Err(StoreError::IdentityTaken)
    }

    /// A user's linked identities, oldest link first.
    pub async fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRecord>, StoreError> {
        let raw: Vec<Vec<u8>> = self
            .run(redis::cmd("HVALS").arg(self.shared.keys.user_identities(user.as_u64())))
            .await?;
        let mut found = raw
            .iter()
            .map(|r| decode("identity", r))
            .collect::<Result<Vec<IdentityRecord>, _>>()?;
        found.sort_by_key(|i| i.linked_at_ms);
        Ok(found)
    }

    /// Unlinks one identity by public id, unless it is a passwordless
    /// user's last way to sign in.
    pub async fn unlink_identity(
        &self,
        user: UserId,
        public_id: &str,
        audit: &[AuditRecord],
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let Some(target) = self
            .identities_of(user)
            .await?
            .into_iter()
            .find(|i| i.public_id() == public_id)
        else {
            return Ok(None);
        };
        let key = hex(&identity_key(&target.issuer, &target.subject));
        let user_key = self.shared.keys.user(user.as_u64());
        let (key, target, user_key) = (&key, &target, &user_key);
        self.list_logs(audit).await?;
        let entries = &blob(audit);
        let unlinked = self
            .with_user(user, "unlinking an identity", |raw, record| async move {
                let has_password = if record.has_password() { "1" } else { "0" };
                let args = [arg(raw), arg(key), arg(has_password), entries.clone()];
                let reply = self
                    .script(&self.shared.scripts.identity_unlink, &[user_key], &args)
                    .await?;
                Ok(match Answer::of(reply)? {
                    Answer::Done(_) => Some(Some(target.clone())),
                    Answer::Nothing => Some(None),
                    Answer::Retry => None,
                })
            })
            .await?;
        if unlinked.is_some() {
            self.audit_written(audit);
            self.release(&[Index::Ident(key.clone())], user.as_u64())
                .await?;
        }
        Ok(unlinked)
    }
}
