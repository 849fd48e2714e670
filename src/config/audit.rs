//! `[audit]`: how long the security log keeps what it records.

use std::time::Duration;

use serde::Deserialize;

use super::duration;
use crate::store::AuditRetention;

/// How long entries are kept, and how many per user.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries older than this are pruned.
    #[serde(deserialize_with = "duration")]
    pub keep: Duration,
    /// A user's oldest entries past this many are pruned, so one account
    /// under a password-guessing storm cannot fill the disk.
    pub max_per_user: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            keep: Duration::from_secs(90 * 24 * 60 * 60),
            max_per_user: 1000,
        }
    }
}

impl AuditConfig {
    /// What the pruner keeps.
    pub fn retention(&self) -> AuditRetention {
        AuditRetention {
            keep_ms: crate::auth::millis(self.keep),
            per_user: self.max_per_user,
        }
    }
}
