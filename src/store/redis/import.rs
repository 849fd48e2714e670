//! Writes records as they are, ids included, for `migrate`: the prefix is
//! empty and no server runs, so plain commands in one pipeline per record
//! are enough.

use super::{arg, RedisStore, StoreError};
use crate::domain::{email_key, hex, name_key, Role, TokenHash};
use crate::store::records::identity_key;
use crate::store::{codec, IdentityRecord, MessageRecord, SessionRecord, UserRecord};

impl RedisStore {
    /// The key prefix, for messages that name it.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// A user with both indexes, the admin count and their identities.
    pub async fn import_user(
        &self,
        user: &UserRecord,
        identities: &[IdentityRecord],
    ) -> Result<(), StoreError> {
        let id = user.id;
        let mut pipe = redis::pipe();
        pipe.set(self.key(&format!("user:{id}")), codec::encode(user))
            .set(self.key(&format!("name:{}", name_key(&user.username))), id)
            .set(self.key(&format!("email:{}", email_key(&user.email))), id)
            .zadd(self.key("users"), id, id);
        if user.role == Role::Admin {
            pipe.incr(self.key("admin_count"), 1);
        }
        for identity in identities {
            let k = hex(&identity_key(&identity.issuer, &identity.subject));
            pipe.set(self.key(&format!("ident:{k}")), id).hset(
                self.key(&format!("user_idents:{id}")),
                k,
                codec::encode(identity),
            );
        }
        self.pipeline(&pipe).await
    }

    /// A session with both index entries, as a login writes it (its user
    /// is imported first).
    pub async fn import_session(
        &self,
        hash: &TokenHash,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        self.put_session("new", hash, session).await.map(drop)
    }

    /// A chat message under its own id, in its room's stream.
    pub async fn import_message(&self, message: &MessageRecord) -> Result<(), StoreError> {
        let stored = MessageRecord {
            id: 0,
            ..message.clone()
        };
        let mut pipe = redis::pipe();
        pipe.cmd("XADD")
            .arg(self.key(&format!("room:{}", message.room)))
            .arg(format!("{}-0", message.id))
            .arg("r")
            .arg(arg(codec::encode(&stored)));
        pipe.cmd("SET")
            .arg(self.key("next_message_id"))
            .arg(message.id)
            .arg("GET");
        // Keep the counter at the highest id seen (messages come room by
        // room, so ids do not arrive in order).
        let mut conn = self.shared.conn.clone();
        let (_, previous): (String, Option<u64>) =
            super::bounded(self.shared.timeout, pipe.query_async(&mut conn)).await?;
        if let Some(previous) = previous.filter(|p| *p > message.id) {
            let _: () = self
                .run(
                    redis::cmd("SET")
                        .arg(self.key("next_message_id"))
                        .arg(previous),
                )
                .await?;
        }
        Ok(())
    }

    /// The user id counter, and the development secret if there was one.
    pub async fn import_counters(
        &self,
        next_user_id: u64,
        dev_secret: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.set(self.key("next_user_id"), next_user_id);
        if let Some(secret) = dev_secret {
            pipe.set(self.key("dev_secret"), secret);
        }
        self.pipeline(&pipe).await
    }

    async fn pipeline(&self, pipe: &redis::Pipeline) -> Result<(), StoreError> {
        let mut conn = self.shared.conn.clone();
        let _: redis::Value =
            super::bounded(self.shared.timeout, pipe.query_async(&mut conn)).await?;
        Ok(())
    }
}
