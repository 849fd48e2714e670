//! The outbox on Redis: `{outbox}:mails` (id -> mail) and `{outbox}:due`
//! (ids by next try), one slot, so claiming is one script: of several
//! instances, one sends each mail.

use super::{arg, decode, RedisStore, StoreError};
use crate::store::{codec, MailRecord};

impl RedisStore {
    pub(super) fn outbox_keys(&self) -> [String; 3] {
        let keys = &self.shared.keys;
        ["due", "mails", "next_id"].map(|k| keys.plain(&format!("{{outbox}}:{k}")))
    }

    /// Queues a mail; answers its id.
    pub async fn queue_mail(&self, mail: &MailRecord) -> Result<u64, StoreError> {
        self.put_mail(None, mail).await
    }

    async fn put_mail(&self, id: Option<u64>, mail: &MailRecord) -> Result<u64, StoreError> {
        let [due, mails, next] = self.outbox_keys();
        let id = id.map(|i| i.to_string()).unwrap_or_default();
        self.script(
            &self.shared.scripts.mail_put,
            &[&due, &mails, &next],
            &[arg(id), codec::encode(mail), arg(mail.next_attempt_ms)],
        )
        .await
    }

    /// The first mail due by `now_ms`, its next try moved to
    /// `now_ms + lease_ms`.
    pub async fn claim_mail(
        &self,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<(u64, MailRecord)>, StoreError> {
        let [due, mails, _] = self.outbox_keys();
        let claimed: Option<(u64, Vec<u8>)> = self
            .script(
                &self.shared.scripts.mail_claim,
                &[&due, &mails],
                &[arg(now_ms), arg(lease_ms)],
            )
            .await?;
        let Some((id, raw)) = claimed else {
            return Ok(None);
        };
        let mut mail: MailRecord = decode("outbox", &raw)?;
        mail.next_attempt_ms = now_ms.saturating_add(lease_ms);
        Ok(Some((id, mail)))
    }

    /// Removes a mail: sent, or given up on.
    pub async fn finish_mail(&self, id: u64) -> Result<(), StoreError> {
        let [due, mails, _] = self.outbox_keys();
        let _: u64 = self
            .script(&self.shared.scripts.mail_done, &[&due, &mails], &[arg(id)])
            .await?;
        Ok(())
    }

    /// Puts a mail back for another try at its `next_attempt_ms`.
    pub async fn retry_mail(&self, id: u64, mail: &MailRecord) -> Result<(), StoreError> {
        self.put_mail(Some(id), mail).await.map(drop)
    }

    /// Every queued mail, for `check` and `migrate`.
    pub async fn queued_mails(&self) -> Result<Vec<(u64, MailRecord)>, StoreError> {
        let [_, mails, _] = self.outbox_keys();
        let all: Vec<(u64, Vec<u8>)> = self.run(redis::cmd("HGETALL").arg(&mails)).await?;
        all.into_iter()
            .map(|(id, raw)| Ok((id, decode("outbox", &raw)?)))
            .collect()
    }
}
