//! Identities on Redis: `ident:<key>` finds the user at sign-in, and
//! `user_idents:<id>` (a hash of identity key to record) lists one user's
//! links. Both are written by one script.

use redis::Value;

use super::{
    arg, decode, status, status_error, too_many_retries, IdentityRecord, RedisStore, StoreError,
    UserRecord, RETRIES,
};
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
        match status_error(&status(&reply)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
        let user_key = self.key(&format!("user:{}", user.as_u64()));
        for _ in 0..RETRIES {
            let raw: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(&user_key)).await?;
            let raw = raw.ok_or(StoreError::NoSuchUser)?;
            let record: UserRecord = decode("user", &raw)?;
            let has_password = if record.has_password() { "1" } else { "0" };
            let reply: Vec<Value> = self
                .script(
                    &self.shared.scripts.unlink_identity,
                    &[arg(user.as_u64()), arg(raw), arg(&key), arg(has_password)],
                )
                .await?;
            match status(&reply).as_str() {
                "ok" => return Ok(Some(target)),
                "none" => return Ok(None),
                "retry" => continue,
                other => return Err(status_error(other).unwrap_or(StoreError::NoSuchUser)),
            }
        }
        Err(too_many_retries("unlinking an identity"))
    }
}
