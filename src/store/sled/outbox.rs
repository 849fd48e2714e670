//! The outbox on sled: `outbox` maps an id (big-endian) to a mail. One
//! process sends, so a claim is a compare-and-swap that pushes the mail's
//! next try past the send; a process killed mid-send leaves it to be
//! tried again once that passes.

use super::{codec, decode, SledStore, StoreError};
use crate::store::MailRecord;

impl SledStore {
    /// Queues a mail; answers its id.
    pub fn queue_mail(&self, mail: &MailRecord) -> Result<u64, StoreError> {
        let s = &self.shared;
        let id = s.db.generate_id()? + 1;
        s.outbox.insert(id.to_be_bytes(), codec::encode(mail))?;
        Ok(id)
    }

    /// The first mail due by `now_ms`, its next try moved to
    /// `now_ms + lease_ms` (the sender counts a failed attempt).
    pub fn claim_mail(
        &self,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<(u64, MailRecord)>, StoreError> {
        let outbox = &self.shared.outbox;
        for entry in outbox.iter() {
            let (key, raw) = entry?;
            let mut mail: MailRecord = decode("outbox", &raw)?;
            if mail.next_attempt_ms > now_ms {
                continue;
            }
            mail.next_attempt_ms = now_ms.saturating_add(lease_ms);
            let swapped = outbox.compare_and_swap(&key, Some(&raw), Some(codec::encode(&mail)))?;
            if swapped.is_ok() {
                let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or_default());
                return Ok(Some((id, mail)));
            }
        }
        Ok(None)
    }

    /// Removes a mail: sent, or given up on.
    pub fn finish_mail(&self, id: u64) -> Result<(), StoreError> {
        self.shared.outbox.remove(id.to_be_bytes())?;
        Ok(())
    }

    /// Puts a mail back for another try at `next_attempt_ms`.
    pub fn retry_mail(&self, id: u64, mail: &MailRecord) -> Result<(), StoreError> {
        let outbox = &self.shared.outbox;
        // Only if it is still queued: never brings back a finished one.
        if outbox.contains_key(id.to_be_bytes())? {
            outbox.insert(id.to_be_bytes(), codec::encode(mail))?;
        }
        Ok(())
    }

    /// Every queued mail, for `check` and `migrate`.
    pub fn queued_mails(&self) -> Result<Vec<(u64, MailRecord)>, StoreError> {
        let mut mails = Vec::new();
        for entry in self.shared.outbox.iter() {
            let (key, raw) = entry?;
            let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or_default());
            mails.push((id, decode("outbox", &raw)?));
        }
        Ok(mails)
    }
}
