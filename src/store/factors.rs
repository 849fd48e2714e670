//! The rules of second factors that must hold between instances, as store
//! operations: a TOTP step is accepted once, a recovery code is used once.
//! Each is one compare-and-write of the user's factors
//! (`Store::change_factors`), so two requests, on one instance or two,
//! cannot both pass.

use super::{Store, StoreError};
use crate::domain::UserId;

impl Store {
    /// Accepts TOTP step `step` for factor `id` if it is later than every
    /// step accepted before (RFC 6238 5.2); `false` for a replay, or when
    /// the user has no such TOTP factor.
    pub async fn accept_totp_step(
        &self,
        user: UserId,
        step: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let accepted = self
            .change_factors(user, |f| {
                let totp = f.totp.as_mut()?;
                if step <= totp.last_step {
                    return None;
                }
                totp.last_step = step;
                totp.last_used_at_ms = now_ms;
                Some(())
            })
            .await?;
        Ok(accepted.is_some())
    }

    /// Uses up the recovery code whose HMAC is `mac`; answers how many are
    /// left, or `None` if it was not (or no longer) one of the batch.
    pub async fn use_recovery_code(
        &self,
        user: UserId,
        mac: &[u8; 32],
    ) -> Result<Option<usize>, StoreError> {
        let used = self
            .change_factors(user, |f| {
                let at = f.recovery.iter().position(|m| constant_time_eq(m, mac))?;
                f.recovery.swap_remove(at);
                Some(f.recovery.len())
            })
            .await?;
        Ok(used.map(|(left, _)| left))
    }
}

/// Compares two MACs without stopping at the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
