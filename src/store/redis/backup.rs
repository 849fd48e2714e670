//! Reading every lasting record under the prefix for a backup, as
//! `migrate` and `check` walk it: the user list, each user's keys, every
//! session, each room's stream (found with SCAN on every primary).

use super::messages::{message_from, StreamEntry};
use super::{RedisStore, StoreError};
use crate::store::Snapshot;

impl RedisStore {
    /// Every lasting record (see `store::backup`).
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let keys = &self.shared.keys;
        let mut users = Vec::new();
        for user in self.list_users(None, usize::MAX).await? {
            let identities = self.identities_of(user.user_id()).await?;
            users.push((user, identities));
        }
        let mut messages = Vec::new();
        for room in self.scan("room:*").await? {
            let entries: Vec<StreamEntry> = self
                .run(redis::cmd("XRANGE").arg(&room).arg("-").arg("+"))
                .await?;
            for (id, fields) in &entries {
                if let Some((_, raw)) = fields.iter().find(|(f, _)| f == "r") {
                    messages.push(message_from(id, raw)?);
                }
            }
        }
        // The counter holds the last id given.
        let last: Option<u64> = self
            .run(redis::cmd("GET").arg(keys.all("next_user_id")))
            .await?;
        Ok(Snapshot {
            users,
            sessions: self.all_sessions().await?,
            messages,
            mails: self
                .queued_mails()
                .await?
                .into_iter()
                .map(|(_, m)| m)
                .collect(),
            activity: self.all_activity().await?,
            tickets: self.lasting_tickets(crate::store::now_ms()).await?,
            next_user_id: last.unwrap_or(0) + 1,
            dev_secret: self
                .run(redis::cmd("GET").arg(keys.plain("dev_secret")))
                .await?,
        })
    }
}
