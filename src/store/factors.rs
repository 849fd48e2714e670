//! The rules of second factors that must hold between instances, as store
//! operations: a TOTP step is accepted once, a recovery code is used once,
//! a key's signature counter only rises.
//! Each is one compare-and-write of the user's factors
//! (`Store::change_factors`), so two requests, on one instance or two,
//! cannot both pass.

use subtle::ConstantTimeEq;

use super::{Store, StoreError, UserRecord};
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
            .change_factors(user, &[], |f| {
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

    /// Records a use of key `factor` whose authenticator reported
    /// `counter`, with its updated credential, if the counter rose (or
    /// stayed 0, as a synced passkey's does); `false` for a regression (a
    /// cloned key, or one assertion accepted twice) or an unknown key.
    pub async fn accept_key_use(
        &self,
        user: UserId,
        factor: &str,
        counter: u32,
        credential: &[u8],
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let accepted = self
            .change_factors(user, &[], |f| {
                let key = f.keys.iter_mut().find(|k| k.id == factor)?;
                if (counter > 0 || key.counter > 0) && counter <= key.counter {
                    return None;
                }
                key.counter = counter;
                key.credential = credential.to_vec();
                key.last_used_at_ms = now_ms;
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
            .change_factors(user, &[], |f| {
                let at = f.recovery.iter().position(|m| bool::from(m.ct_eq(mac)))?;
                f.recovery.swap_remove(at);
                Some(f.recovery.len())
            })
            .await?;
        Ok(used.map(|(left, _)| left))
    }
}

/// What `check` finds wrong with a user's factors: ids that repeat (a
/// removal would take the wrong one), a key registered twice or without
/// its credential, a TOTP factor with no secret,
/// recovery codes left with no factor to recover, or more than a batch.
pub(super) fn problems(user: &UserRecord) -> Vec<String> {
    let f = &user.factors;
    let id = user.user_id();
    let mut out = Vec::new();
    let mut ids: Vec<&str> = f.keys.iter().map(|k| k.id.as_str()).collect();
    ids.extend(f.totp.iter().map(|t| t.id.as_str()));
    let listed = ids.len();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != listed || ids.iter().any(|i| i.is_empty()) {
        out.push(format!("user {id}: second-factor ids repeat or are empty"));
    }
    let mut creds: Vec<&[u8]> = f.keys.iter().map(|k| k.credential_id.as_slice()).collect();
    let keys = creds.len();
    creds.sort_unstable();
    creds.dedup();
    if creds.len() != keys || f.keys.iter().any(|k| k.credential.is_empty()) {
        out.push(format!("user {id}: a key repeats or has no credential"));
    }
    if f.totp.as_ref().is_some_and(|t| t.sealed_secret.is_empty()) {
        out.push(format!("user {id}: a TOTP factor without its secret"));
    }
    if !f.recovery.is_empty() && !f.any() {
        out.push(format!("user {id}: recovery codes without a second factor"));
    }
    if f.recovery.len() > RECOVERY_BATCH {
        out.push(format!("user {id}: more recovery codes than a batch"));
    }
    out
}

/// Recovery codes per batch (the auth layer makes them).
const RECOVERY_BATCH: usize = 10;
