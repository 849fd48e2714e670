//! Failed logins counted in Redis, so every instance sees every guess:
//! `fail:<subject>` is a sorted set of attempt times, trimmed to the
//! window and expiring with it. One script per subject (subjects are keys
//! of their own, on any node of a cluster), sent side by side.

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
        let args = [arg(now_ms()), arg(window.as_millis() as u64)];
        let each = subjects.iter().map(|subject| {
            let key = self.shared.keys.failures(subject);
            let args = &args;
            async move {
                let (count, oldest): (u64, u64) = self
                    .read_script(&self.shared.scripts.failures_read, &[&key], args)
                    .await?;
                Ok::<_, StoreError>((count.min(u32::MAX as u64) as u32, oldest))
            }
        });
        futures_util::future::try_join_all(each).await
    }

    /// Counts one failed login against each subject.
    pub async fn count_login_failure(
        &self,
        subjects: &[&str],
        window: Duration,
    ) -> Result<(), StoreError> {
        let attempt = hex(&super::rand_bytes());
        let args = [arg(now_ms()), arg(window.as_millis() as u64), arg(&attempt)];
        let each = subjects.iter().map(|subject| {
            let key = self.shared.keys.failures(subject);
            let args = &args;
            async move {
                self.script::<i64>(&self.shared.scripts.failure_count, &[&key], args)
                    .await
            }
        });
        futures_util::future::try_join_all(each).await.map(drop)
    }

    /// Forgets a subject's failures (a right password, an admin's unlock).
    pub async fn forgive_login_failures(&self, subject: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .run(redis::cmd("DEL").arg(self.shared.keys.failures(subject)))
            .await?;
        Ok(())
    }
}
