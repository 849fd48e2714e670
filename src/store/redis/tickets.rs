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

impl RedisStore {
    /// Replaces the ticket under `key` with `new` (or removes it) if it
    /// still is `expected`: one script, so instances racing on it take
    /// turns. Redis removes a ticket at its deadline itself.
    pub async fn swap_ticket(
        &self,
        key: &TicketKey,
        expected: Option<&TicketRecord>,
        new: Option<&TicketRecord>,
        _now_ms: u64,
    ) -> Result<bool, StoreError> {
        let flag = |present: bool| {
            if present {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            }
        };
        let args = [
            flag(expected.is_some()),
            expected.map(codec::encode).unwrap_or_default(),
            flag(new.is_some()),
            new.map(codec::encode).unwrap_or_default(),
            new.map_or(1, |n| n.deadline_ms.max(1))
                .to_string()
                .into_bytes(),
        ];
        let swapped: u8 = self
            .script(
                &self.shared.scripts.ticket_swap,
                &[&self.ticket_key(key)],
                &args,
            )
            .await?;
        Ok(swapped == 1)
    }
}

impl RedisStore {
    /// Every live ticket of the lasting kinds (for backups), found with
    /// SCAN on every primary.
    pub async fn lasting_tickets(
        &self,
        now_ms: u64,
    ) -> Result<Vec<(TicketKey, TicketRecord)>, StoreError> {
        use crate::store::TicketKind;
        let mut keys = Vec::new();
        for kind in TicketKind::LASTING {
            if kind == TicketKind::OidcApps {
                for found in self
                    .scan(&format!("user:{{*}}:ticket:{}", kind.name()))
                    .await?
                {
                    if let Some(user) = super::check::tag_of(&found) {
                        keys.push(TicketKey::User(kind, crate::domain::UserId::from_u64(user)));
                    }
                }
            } else {
                let start = format!("ticket:{}:", kind.name());
                for found in self.scan(&format!("{start}*")).await? {
                    let hex = found.rsplit(':').next().unwrap_or("");
                    let mut id = [0u8; 32];
                    if base16ct::lower::decode(hex, &mut id).is_ok_and(|d| d.len() == 32) {
                        keys.push(TicketKey::Id(kind, id));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for key in keys {
            if let Some(record) = self.ticket(&key, now_ms).await? {
                out.push((key, record));
            }
        }
        Ok(out)
    }
}

fn live(raw: Option<Vec<u8>>, now_ms: u64) -> Result<Option<TicketRecord>, StoreError> {
    let Some(raw) = raw else { return Ok(None) };
    let record: TicketRecord = decode("ticket", &raw)?;
    Ok((record.deadline_ms > now_ms).then_some(record))
}
