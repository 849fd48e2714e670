//! Fresh, empty stores of every backend for the store's own tests: sled
//! in a temp dir, and Redis under a prefix of its own on the test
//! process's redis-server. Without redis-server installed the Redis runs
//! are skipped with one line, except in CI (`CI=true`), where they fail.

use tempfile::TempDir;

use super::Store;
use crate::config::{Backend, StorageConfig};
use crate::local_redis::{LocalCluster, LocalRedis};

/// Makes each `async fn name(store: &Store)` a test that runs its body on
/// every backend in turn, each freshly opened and empty.
macro_rules! on_every_backend {
    ($(async fn $name:ident($store:ident: &Store) $body:block)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                for backend in $crate::store::test_support::TestStore::every_backend().await {
                    async fn run($store: &Store) $body
                    run(&backend.store).await;
                    backend.close().await;
                }
            }
        )*
    };
}
pub(crate) use on_every_backend;

/// A store opened for one test, with what keeps it alive.
pub struct TestStore {
    /// The store under test.
    pub store: Store,
    _dir: TempDir,
}

impl TestStore {
    /// One empty store per backend available.
    pub async fn every_backend() -> Vec<TestStore> {
        let mut all = vec![Self::sled().await];
        all.extend(Self::redis().await);
        all.extend(Self::redis_cluster().await);
        all
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

    /// Redis under a fresh prefix, or `None` (said once) without
    /// redis-server.
    pub async fn redis() -> Option<TestStore> {
        Some(Self::redis_at(redis_url()?, false).await)
    }

    /// A three-node Redis Cluster under a fresh prefix, or `None` (said
    /// once) without redis-server and redis-cli.
    pub async fn redis_cluster() -> Option<TestStore> {
        Some(Self::redis_at(cluster_url()?, true).await)
    }

    async fn redis_at(url: String, cluster: bool) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_now(&StorageConfig {
            data_dir: dir.path().to_owned(),
            backend: Backend::Redis,
            redis_url: url,
            redis_cluster: cluster,
            redis_key_prefix: format!("test-{}:", crate::domain::hex(&rand::<8>())),
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

/// Registers `name` (`name@example.com`), an ordinary user.
pub async fn add_user(store: &Store, name: &str) -> crate::store::UserRecord {
    use crate::domain::{Email, Role, Username};
    store
        .create_user(
            crate::store::NewUser {
                username: &Username::parse(name).unwrap(),
                email: &Email::parse(&format!("{name}@example.com")).unwrap(),
                role: Role::User,
                password_hash: "x".into(),
                now_ms: 1,
            },
            &[],
        )
        .await
        .unwrap()
}

/// The test process's Redis Cluster, or `None` without redis-server (a
/// failure in CI).
pub fn cluster_url() -> Option<String> {
    installed(LocalCluster::shared(), "the Redis Cluster runs")
}

/// The test process's redis-server, or `None` without one (a failure in CI).
pub fn redis_url() -> Option<String> {
    installed(LocalRedis::shared(), "the Redis runs")
}

fn installed(shared: Option<&'static Result<String, String>>, what: &str) -> Option<String> {
    match shared {
        Some(Ok(url)) => Some(url.clone()),
        Some(Err(e)) => panic!("{e}"),
        None => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is not installed; CI must install it (apt-get install redis-server)");
            }
            static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
            let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
            if !said.iter().any(|s| s == what) {
                eprintln!("skipped: {what} of the store tests (redis-server is not installed)");
                said.push(what.to_owned());
            }
            None
        }
    }
}

fn rand<const N: usize>() -> [u8; N] {
    use rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}
