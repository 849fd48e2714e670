//! Failed logins counted in Redis, so every instance sees every guess:
//! `fail:<subject>` is a sorted set of attempt times, trimmed to the
//! window and expiring with it.

use std::time::Duration;

use super::{arg, RedisStore, StoreError};
use crate::domain::hex;
use crate::store::now_ms;

impl RedisStore {
    /// For each subject: failures within `window`, and the oldest one's
    /// time in Unix millis.
    pub async fn login_failures(
        &self,
        subjects: &[&str],
        window: Duration,
    ) -> Result<Vec<(u32, u64)>, StoreError> {
        let now = now_ms();
        let window_ms = window.as_millis() as u64;
        let mut args = vec![arg(now), arg(window_ms)];
        args.extend(subjects.iter().map(arg));
        let flat: Vec<u64> = self
            .read_script(&self.shared.scripts.failures, &args)
            .await?;
        Ok(flat
            .chunks_exact(2)
            .map(|p| (p[0].min(u32::MAX as u64) as u32, p[1]))
            .collect())
    }

    /// Counts one failed login against each subject.
    pub async fn count_login_failure(
        &self,
        subjects: &[&str],
        window: Duration,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let window_ms = window.as_millis() as u64;
        let attempt = hex(&super::rand_bytes());
        let mut args = vec![arg(now), arg(window_ms), arg(&attempt)];
        args.extend(subjects.iter().map(arg));
        let _: i64 = self
            .script(&self.shared.scripts.count_failure, &args)
            .await?;
        Ok(())
    }

    /// Forgets a subject's failures (a right password, an admin's unlock).
    pub async fn forgive_login_failures(&self, subject: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .run(redis::cmd("DEL").arg(self.key(&format!("fail:{subject}"))))
            .await?;
        Ok(())
    }
}
