//! Identities on Redis: `ident:<key>` finds the user at sign-in, and
//! `user_idents:<id>` (a hash of identity key to record) lists one user's
//! links. Both are written by one script.

use redis::Value;

use super::{arg, decode, Answer, IdentityRecord, RedisStore, StoreError};
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
        let owner: Option<u64> = self
            .run(
                redis::cmd("GET")
                    .arg(self.key(&format!("ident:{}", hex(&identity_key(issuer, subject))))),
            )
            .await?;
        Ok(owner.map(UserId::from_u64))
    }

    /// Links an identity to an existing user.
    pub async fn link_identity(
        &self,
        user: UserId,
        identity: &IdentityRecord,
    ) -> Result<(), StoreError> {
        let reply: Vec<Value> = self
            .script(
                &self.shared.scripts.link_identity,
                &[
                    arg(user.as_u64()),
                    arg(hex(&identity_key(&identity.issuer, &identity.subject))),
                    arg(codec::encode(identity)),
                ],
            )
            .await?;
        Answer::of(reply).map(drop)
    }

    /// A user's linked identities, oldest link first.
    pub async fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRecord>, StoreError> {
        let raw: Vec<Vec<u8>> = self
            .run(redis::cmd("HVALS").arg(self.key(&format!("user_idents:{}", user.as_u64()))))
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
        let (key, target) = (&key, &target);
        self.with_user(user, "unlinking an identity", |raw, record| async move {
            let has_password = if record.has_password() { "1" } else { "0" };
            let args = [arg(user.as_u64()), arg(raw), arg(key), arg(has_password)];
            let reply = self
                .script(&self.shared.scripts.unlink_identity, &args)
                .await?;
            Ok(match Answer::of(reply)? {
                Answer::Done(_) => Some(Some(target.clone())),
                Answer::Nothing => Some(None),
                Answer::Retry => None,
            })
        })
        .await
    }
}
