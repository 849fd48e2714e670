//! Writes records as they are, ids included, for `restore` and `migrate`: the same
//! steps as a registration and a login (the prefix is empty and no server
//! runs), and chat messages under their own ids.

use super::{arg, RedisStore, StoreError};
use crate::store::{codec, IdentityRecord, MessageRecord, UserRecord};

impl RedisStore {
    /// The key prefix, for messages that name it.
    pub fn prefix(&self) -> &str {
        self.shared.keys.prefix()
    }

    /// A user with their indexes, listing, admin count and identities.
    pub async fn import_user(
        &self,
        user: &UserRecord,
        identities: &[IdentityRecord],
    ) -> Result<(), StoreError> {
        self.add_user(user, identities, &[]).await
    }

    /// A chat message under its own id, in its room's stream; the message
    /// counter kept at the highest id seen (messages come room by room, so
    /// ids do not arrive in order).
    pub async fn import_message(&self, message: &MessageRecord) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let stored = MessageRecord {
            id: 0,
            ..message.clone()
        };
        let _: String = self
            .run(
                redis::cmd("XADD")
                    .arg(keys.room(&message.room))
                    .arg(format!("{}-0", message.id))
                    .arg("r")
                    .arg(arg(codec::encode(&stored))),
            )
            .await?;
        let previous: Option<u64> = self
            .run(
                redis::cmd("SET")
                    .arg(keys.all("next_message_id"))
                    .arg(message.id)
                    .arg("GET"),
            )
            .await?;
        if let Some(previous) = previous.filter(|p| *p > message.id) {
            let _: () = self
                .run(
                    redis::cmd("SET")
                        .arg(keys.all("next_message_id"))
                        .arg(previous),
                )
                .await?;
        }
        Ok(())
    }

    /// The user id counter (it holds the last id given, sled's the next),
    /// and the development secret if there was one.
    pub async fn import_counters(
        &self,
        next_user_id: u64,
        dev_secret: Option<&str>,
    ) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let _: () = self
            .run(
                redis::cmd("SET")
                    .arg(keys.all("next_user_id"))
                    .arg(next_user_id.saturating_sub(1)),
            )
            .await?;
        if let Some(secret) = dev_secret {
            let _: () = self
                .run(redis::cmd("SET").arg(keys.plain("dev_secret")).arg(secret))
                .await?;
        }
        Ok(())
    }
}
