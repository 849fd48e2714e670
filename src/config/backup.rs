//! `[backup]`: backups the server takes by itself. Empty `dir`: none (an
//! operator can still take one with `sessiond backup`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// Where and how often scheduled backups are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// The directory backups are written to; empty: no scheduled backups.
    pub dir: PathBuf,
    /// How often: the first one an `every` after start.
    #[serde(deserialize_with = "duration")]
    pub every: Duration,
    /// How many to keep; older ones are removed after a new one is written.
    pub keep: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::new(),
            every: Duration::from_secs(24 * 60 * 60),
            keep: 7,
        }
    }
}

impl BackupConfig {
    /// Whether the server takes backups by itself.
    pub fn scheduled(&self) -> bool {
        !self.dir.as_os_str().is_empty()
    }
}
