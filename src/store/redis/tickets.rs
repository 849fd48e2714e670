//! Tickets on Redis: one key each, living until its deadline (Redis
//! reclaims it; lookups still decide by the deadline). A user's tickets
//! are in the user's slot; taking one is `GETDEL`, so of two instances
//! racing for the same ticket, one gets it.

use super::{decode, RedisStore, StoreError, TicketKey, TicketRecord};
use crate::domain::hex;
use crate::store::codec;

impl RedisStore {
    fn ticket_key(&self, key: &TicketKey) -> String {
        let keys = &self.shared.keys;
        match key {
            TicketKey::User(kind, user) => {
                format!("{}:ticket:{}", keys.user(user.as_u64()), kind.name())
            }
            TicketKey::Id(kind, id) => keys.plain(&format!("ticket:{}:{}", kind.name(), hex(id))),
        }
    }

    /// Stores a ticket, replacing one under the same key.
    pub async fn put_ticket(
        &self,
        key: &TicketKey,
        record: &TicketRecord,
    ) -> Result<(), StoreError> {
        let _: () = self
            .run(
                redis::cmd("SET")
                    .arg(self.ticket_key(key))
                    .arg(codec::encode(record))
                    .arg("PXAT")
                    .arg(record.deadline_ms.max(1)),
            )
            .await?;
        Ok(())
    }

    /// The ticket under `key`, if it has not ended by `now_ms`.
    pub async fn ticket(
        &self,
        key: &TicketKey,
        now_ms: u64,
    ) -> Result<Option<TicketRecord>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .run(redis::cmd("GET").arg(self.ticket_key(key)))
            .await?;
        live(raw, now_ms)
    }

    /// Removes the ticket under `key` and answers it if it had not ended.
    pub async fn take_ticket(
        &self,
        key: &TicketKey,
        now_ms: u64,
    ) -> Result<Option<TicketRecord>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .run(redis::cmd("GETDEL").arg(self.ticket_key(key)))
            .await?;
        live(raw, now_ms)
    }
}

fn live(raw: Option<Vec<u8>>, now_ms: u64) -> Result<Option<TicketRecord>, StoreError> {
    let Some(raw) = raw else { return Ok(None) };
    let record: TicketRecord = decode("ticket", &raw)?;
    Ok((record.deadline_ms > now_ms).then_some(record))
}
