//! `sessiond migrate`: copies everything from a sled data dir into an
//! empty Redis prefix, keeping every id and token hash, so users keep
//! their ids and cookies keep working (with the same secret; a development
//! secret is carried over too).

use super::redis::RedisStore;
use super::sled::SledStore;
use super::{Backend, Store, StoreError};

/// What was copied.
#[derive(Debug, Default)]
pub struct MigrateReport {
    /// Users copied.
    pub users: u64,
    /// Sessions copied.
    pub sessions: u64,
    /// Identities copied.
    pub identities: u64,
    /// Chat messages copied.
    pub messages: u64,
    /// Mails still to be sent, copied.
    pub mails: u64,
}

impl Store {
    /// Copies this sled store into `to`, a Redis store whose prefix holds
    /// nothing. `dev_secret` is the data dir's development secret, if any.
    pub async fn migrate_to(
        &self,
        to: &Store,
        dev_secret: Option<&str>,
    ) -> Result<MigrateReport, StoreError> {
        let (Backend::Sled(from), Backend::Redis(into)) = (&self.backend, &to.backend) else {
            return Err(StoreError::RedisRefused(
                "migrate copies a sled data dir into Redis; set storage.backend = \"sled\" for the source".into(),
            ));
        };
        if !into.is_empty().await? {
            return Err(StoreError::RedisRefused(format!(
                "the Redis prefix {:?} already holds data; migrate only into an empty prefix (choose another with --prefix)",
                into.prefix()
            )));
        }
        copy(from, into, dev_secret).await
    }
}

async fn copy(
    from: &SledStore,
    into: &RedisStore,
    dev_secret: Option<&str>,
) -> Result<MigrateReport, StoreError> {
    let mut report = MigrateReport::default();
    for user in from.list_users(None, usize::MAX)? {
        let identities = from.identities_of(user.user_id())?;
        report.identities += identities.len() as u64;
        into.import_user(&user, &identities).await?;
        report.users += 1;
    }
    for (hash, session) in from.all_sessions()? {
        into.import_session(&hash, &session).await?;
        report.sessions += 1;
    }
    for message in from.all_messages()? {
        into.import_message(&message).await?;
        report.messages += 1;
    }
    for (_, mail) in from.queued_mails()? {
        into.queue_mail(&mail).await?;
        report.mails += 1;
    }
    into.import_counters(from.next_user_id()?, dev_secret)
        .await?;
    Ok(report)
}
