//! Backups taken while the server runs: on request (`POST
//! /api/admin/backup`, which `sessiond backup` calls) and on a schedule
//! (`[backup]`). The file itself is `store::Snapshot`'s.
//!
//! `sessiond backup` needs nothing but the server's config: on sled the
//! server writes `<data_dir>/backup-access` (mode 0600, so only the
//! service user reads it) with its address and a random credential made
//! at each start, and removes it at stop. Only its SHA-256 is kept here.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Backend, BackupConfig, Config};
use crate::domain::hex;
use crate::store::{Store, StoreError};

/// The file beside the database that tells `sessiond backup` where the
/// server is and how to ask it.
pub const ACCESS_FILE: &str = "backup-access";

/// What the access file holds.
#[derive(Serialize, Deserialize)]
pub struct Access {
    /// The server's own address, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The credential, sent as `Authorization: Bearer`.
    pub token: String,
}

/// Backups of one server's store, and what `/metrics` says of them.
pub struct Backups {
    store: Store,
    /// A sled data dir's development secret, which a restore needs for
    /// cookies to keep working; `None` with a configured secret.
    dev_secret: Option<PathBuf>,
    /// Where the access file is written (sled only: on Redis `sessiond
    /// backup` reads Redis itself).
    access_file: Option<PathBuf>,
    /// SHA-256 of this run's credential.
    credential: [u8; 32],
    credential_text: String,
    /// Unix seconds of the last backup taken, 0 before any.
    pub last_at: AtomicU64,
    /// Its size in bytes.
    pub last_bytes: AtomicU64,
    /// Backups taken since start.
    pub taken: AtomicU64,
    /// Scheduled backups that could not be written.
    pub failed: AtomicU64,
}

impl Backups {
    /// Backups of `store` as `config` sets them up.
    pub fn new(config: &Config, store: Store) -> Self {
        let sled = config.storage.backend == Backend::Sled;
        let dir = &config.storage.data_dir;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let credential_text = hex(&secret);
        Backups {
            store,
            dev_secret: (sled && config.secrets.current.is_none()).then(|| dir.join("dev-secret")),
            access_file: sled.then(|| dir.join(ACCESS_FILE)),
            credential: Sha256::digest(credential_text.as_bytes()).into(),
            credential_text,
            last_at: AtomicU64::new(0),
            last_bytes: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// A backup file of the whole store, read while it serves.
    pub async fn take(&self) -> Result<Vec<u8>, StoreError> {
        let file = self.file().await?;
        self.record(file.len());
        Ok(file)
    }

    async fn file(&self) -> Result<Vec<u8>, StoreError> {
        let dev_secret = self
            .dev_secret
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned());
        let snapshot = self.store.snapshot(dev_secret).await?;
        let file = tokio::task::spawn_blocking(move || snapshot.to_file())
            .await
            .map_err(|e| StoreError::Redis(format!("the backup task failed: {e}")))?;
        Ok(file)
    }

    fn record(&self, bytes: usize) {
        self.last_at.store(unix_now(), Relaxed);
        self.last_bytes.store(bytes as u64, Relaxed);
        self.taken.fetch_add(1, Relaxed);
    }

    /// Whether `token` is this run's backup credential.
    pub fn admits(&self, token: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        hash.ct_eq(&self.credential).into()
    }

    /// Writes the access file for a server bound to `addr` (sled only).
    pub fn publish_access(&self, addr: SocketAddr) -> std::io::Result<()> {
        let Some(path) = &self.access_file else {
            return Ok(());
        };
        let host = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
            ip if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let access = Access {
            url: format!("http://{host}:{}", addr.port()),
            token: self.credential_text.clone(),
        };
        let text = serde_json::to_string(&access).expect("two strings serialize");
        write_private(path, text.as_bytes())
    }

    /// Removes the access file at stop: its credential ends with the run.
    pub fn withdraw_access(&self) {
        if let Some(path) = &self.access_file {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Takes a backup every `config.every` into `config.dir` until `stop`
    /// completes, keeping the newest `config.keep`.
    pub async fn run_scheduled(
        &self,
        config: BackupConfig,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(config.every) => {}
            }
            match self.write_scheduled(&config).await {
                Ok(path) => tracing::info!(path = %path.display(), "backup written"),
                Err(e) => {
                    self.failed.fetch_add(1, Relaxed);
                    tracing::error!(dir = %config.dir.display(), error = %e, "scheduled backup failed");
                }
            }
        }
    }

    async fn write_scheduled(&self, config: &BackupConfig) -> Result<PathBuf, String> {
        let file = self.file().await.map_err(|e| e.to_string())?;
        let (dir, keep, bytes) = (config.dir.clone(), config.keep as usize, file.len());
        let path = tokio::task::spawn_blocking(move || write_into(&dir, &file, keep))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        // Counted once it is on disk, and the old ones are gone.
        self.record(bytes);
        Ok(path)
    }
}

/// Writes `file` into `dir` as `sessiond-<unix ms>.backup`: a temporary
/// name first, fsynced, then renamed and the directory fsynced, so a crash
/// leaves a whole backup or none. Then removes all but the newest `keep`.
pub fn write_into(dir: &Path, file: &[u8], keep: usize) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    let path = dir.join(format!("sessiond-{millis:015}.backup"));
    write_whole(&path, file)?;
    let mut ours: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sessiond-") && n.ends_with(".backup"))
        })
        .collect();
    // Zero-padded millis: the names sort by age.
    ours.sort();
    let old = ours.len().saturating_sub(keep);
    for stale in &ours[..old] {
        std::fs::remove_file(stale)?;
    }
    Ok(path)
}

/// Writes `bytes` to `path` as a whole file or not at all: under a
/// temporary name first (private, fsynced), then renamed, and the
/// directory fsynced so the rename lasts.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(".{name}.partial"));
    write_private(&temp, bytes)?;
    std::fs::rename(&temp, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` readable by this user only, fsynced (a
/// backup holds password hashes and may hold a signing secret). Whatever
/// was at `path` (a file with a looser mode, a symlink) is removed first,
/// and the new file made afresh, so the mode is always 0600.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    out.write_all(bytes)?;
    out.sync_all()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_backups_keep_the_newest_and_leave_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = Vec::new();
        for n in 0..4u8 {
            written.push(write_into(dir.path(), &[n], 2).unwrap());
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut left: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        assert_eq!(left, written[2..].to_vec());
        assert_eq!(std::fs::read(&left[1]).unwrap(), vec![3]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&left[1]).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "a backup holds secrets: {mode:o}");
    }

    #[test]
    fn a_private_file_replaces_a_looser_one_or_a_symlink_and_not_its_target() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, target) = (
            dir.path().join("backup-access"),
            dir.path().join("elsewhere"),
        );
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&target, "someone else's").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_private(&path, b"ours").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "someone else's");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ours");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
