//! Fresh, empty stores of every backend for the store's own tests.

use tempfile::TempDir;

use super::Store;
use crate::config::StorageConfig;

/// A store opened for one test, with what keeps it alive.
pub struct TestStore {
    /// The store under test.
    pub store: Store,
    _dir: TempDir,
}

impl TestStore {
    /// One empty store per backend.
    pub async fn every_backend() -> Vec<TestStore> {
        vec![Self::sled().await]
    }

    /// sled in a temp dir.
    pub async fn sled() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StorageConfig {
            data_dir: dir.path().to_owned(),
            ..StorageConfig::default()
        })
        .await
        .unwrap();
        TestStore { store, _dir: dir }
    }

    /// Closes the store, as a stopping server does.
    pub async fn close(self) {
        self.store.close().await.unwrap();
    }
}
