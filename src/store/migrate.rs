//! `sessiond migrate`: copies everything from a sled data dir into an
//! empty Redis prefix, keeping every id and token hash, so users keep
//! their ids and cookies keep working (with the same secret; a development
//! secret is carried over too). A backup taken and restored at once.

use super::{Backend, RestoreReport, Store, StoreError};

impl Store {
    /// Copies this sled store into `to`, a Redis store whose prefix holds
    /// nothing. `dev_secret` is the data dir's development secret, if any.
    pub async fn migrate_to(
        &self,
        to: &Store,
        dev_secret: Option<&str>,
    ) -> Result<RestoreReport, StoreError> {
        let (Backend::Sled(_), Backend::Redis(into)) = (&self.backend, &to.backend) else {
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
        let snapshot = self.snapshot(dev_secret.map(str::to_owned)).await?;
        to.restore(snapshot).await
    }
}
