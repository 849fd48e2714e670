//! Tickets: ceremony state between two requests, each with its deadline
//! and an entry in `ticket_expiry`, so the pruner walks only what ended.

use std::ops::Bound;

use sled::Transactional;

use super::records::ticket_expiry_key;
use super::{codec, decode, tx, SledStore, StoreError, TicketKey, TicketRecord};

impl SledStore {
    /// Stores a ticket, replacing one under the same key.
    pub fn put_ticket(&self, key: &TicketKey, record: &TicketRecord) -> Result<(), StoreError> {
        let s = &self.shared;
        let key = key.bytes();
        let value = codec::encode(record);
        tx(
            (&s.tickets, &s.ticket_expiry).transaction(|(tickets, expiry)| {
                if let Some(old) = tickets.insert(key.as_slice(), value.as_slice())? {
                    let old: TicketRecord = decode("tickets", &old).map_err(Tx::Abort)?;
                    expiry.remove(ticket_expiry_key(old.deadline_ms, &key))?;
                }
                expiry.insert(ticket_expiry_key(record.deadline_ms, &key), &[])?;
                Ok(())
            }),
        )
    }

    /// The ticket under `key`, if it has not ended by `now_ms`.
    pub fn ticket(&self, key: &TicketKey, now_ms: u64) -> Result<Option<TicketRecord>, StoreError> {
        let Some(raw) = self.shared.tickets.get(key.bytes())? else {
            return Ok(None);
        };
        let record: TicketRecord = decode("tickets", &raw)?;
        Ok((record.deadline_ms > now_ms).then_some(record))
    }

    /// Removes the ticket under `key` and answers it if it had not ended:
    /// of two racing takers, one gets it.
    pub fn take_ticket(
        &self,
        key: &TicketKey,
        now_ms: u64,
    ) -> Result<Option<TicketRecord>, StoreError> {
        let s = &self.shared;
        let key = key.bytes();
        let taken = tx(
            (&s.tickets, &s.ticket_expiry).transaction(|(tickets, expiry)| {
                let Some(raw) = tickets.remove(key.as_slice())? else {
                    return Ok(None);
                };
                let record: TicketRecord = decode("tickets", &raw).map_err(Tx::Abort)?;
                expiry.remove(ticket_expiry_key(record.deadline_ms, &key))?;
                Ok(Some(record))
            }),
        )?;
        Ok(taken.filter(|t| t.deadline_ms > now_ms))
    }

    /// Replaces the ticket under `key` with `new` (or removes it) if it
    /// still is `expected`; one ended by `now_ms` counts as none.
    pub fn swap_ticket(
        &self,
        key: &TicketKey,
        expected: Option<&TicketRecord>,
        new: Option<&TicketRecord>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let s = &self.shared;
        let key = key.bytes();
        let expected = expected.map(codec::encode);
        let new_value = new.map(codec::encode);
        tx(
            (&s.tickets, &s.ticket_expiry).transaction(|(tickets, expiry)| {
                let current = match tickets.get(key.as_slice())? {
                    None => None,
                    Some(raw) => {
                        let record: TicketRecord = decode("tickets", &raw).map_err(Tx::Abort)?;
                        Some((raw, record))
                    }
                };
                let live = current
                    .as_ref()
                    .filter(|(_, r)| r.deadline_ms > now_ms)
                    .map(|(raw, _)| raw.as_ref());
                if live != expected.as_deref() {
                    return Ok(false);
                }
                if let Some((_, old)) = &current {
                    expiry.remove(ticket_expiry_key(old.deadline_ms, &key))?;
                }
                match (new, &new_value) {
                    (Some(record), Some(value)) => {
                        tickets.insert(key.as_slice(), value.as_slice())?;
                        expiry.insert(ticket_expiry_key(record.deadline_ms, &key), &[])?;
                    }
                    _ => {
                        tickets.remove(key.as_slice())?;
                    }
                }
                Ok(true)
            }),
        )
    }

    /// Every live ticket of the lasting kinds (for backups).
    pub fn lasting_tickets(
        &self,
        now_ms: u64,
    ) -> Result<Vec<(TicketKey, TicketRecord)>, StoreError> {
        let mut out = Vec::new();
        for kind in crate::store::TicketKind::LASTING {
            let prefix = [kind.name().as_bytes(), &[0]].concat();
            for item in self.shared.tickets.scan_prefix(prefix) {
                let (key, raw) = item?;
                let Some(key) = TicketKey::lasting_from_bytes(&key) else {
                    continue;
                };
                let record: TicketRecord = decode("tickets", &raw)?;
                if record.deadline_ms > now_ms {
                    out.push((key, record));
                }
            }
        }
        Ok(out)
    }

    /// Removes every ticket ended by `now_ms`; returns how many.
    pub(super) fn prune_tickets(&self, now_ms: u64) -> Result<u64, StoreError> {
        let s = &self.shared;
        let upper = Bound::Excluded(sled::IVec::from(&now_ms.saturating_add(1).to_be_bytes()));
        let ended = s
            .ticket_expiry
            .range((Bound::Unbounded, upper))
            .keys()
            .collect::<Result<Vec<_>, _>>()?;
        for entry in &ended {
            let key = &entry[8..];
            tx(
                (&s.tickets, &s.ticket_expiry).transaction(|(tickets, expiry)| {
                    expiry.remove(entry)?;
                    // A ticket put again meanwhile has a later deadline: kept.
                    if let Some(raw) = tickets.get(key)? {
                        let record: TicketRecord = decode("tickets", &raw).map_err(Tx::Abort)?;
                        if record.deadline_ms <= now_ms {
                            tickets.remove(key)?;
                        }
                    }
                    Ok(())
                }),
            )?;
        }
        Ok(ended.len() as u64)
    }
}

use sled::transaction::ConflictableTransactionError as Tx;
