//! Getting back in without an admin: a code mailed to the account's
//! address, or a link an operator hands over. Neither is consumed by a
//! GET (mail scanners open links): the code is typed, the link opens the
//! page, which posts it.
//!
//! Asking for a code answers the same, in the same time, whether or not
//! the account exists: the work is done (or not) and the answer waits
//! until `ANSWER_FLOOR` after the request came.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{millis, throttle_key, AuthError, By, ClientInfo, Guard, SignIn};
use crate::domain::{hex, Amr, Password, UserId};
use crate::mail::Letter;
use crate::store::{
    codec, now_ms, AuditKind, Store, TicketKey, TicketKind, TicketRecord, UserRecord,
};

/// How long a mailed code works.
pub const CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// Guesses one mailed code allows.
const CODE_TRIES: u32 = 5;
/// How long an operator's link works.
pub const LINK_TTL: Duration = Duration::from_secs(60 * 60);
/// No answer to a recovery request comes sooner, so the time taken says
/// nothing about whether the account exists.
const ANSWER_FLOOR: Duration = Duration::from_millis(250);
/// Codes mailed per account per 15 minutes.
pub const PER_ACCOUNT: u32 = 3;
/// Recovery requests per client address per 15 minutes.
pub const PER_IP: u32 = 10;

/// Recovery outcomes so far, for `/metrics`.
#[derive(Debug, Default)]
pub struct RecoveryCounts {
    /// Requests answered 202 (a code mailed or not).
    pub requested: AtomicU64,
    /// Passwords set with a code or a link.
    pub used: AtomicU64,
    /// Codes or links refused.
    pub failed: AtomicU64,
    /// Requests refused with 429.
    pub throttled: AtomicU64,
}

/// A mailed code (recovery, e-mail verification) as its ticket keeps it:
/// the HMAC only, the address it went to, and the guesses it has left.
#[derive(Serialize, Deserialize)]
pub(super) struct MailedCode {
    mac: [u8; 32],
    /// Where it was sent: a verification proves this address, no other.
    pub email: String,
    tries_left: u32,
}
impl codec::Record for MailedCode {}

/// An operator's link: whose password it sets.
#[derive(Serialize, Deserialize)]
struct LinkBody {
    user_id: u64,
}
impl codec::Record for LinkBody {}

/// What a request by login mails.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mailing {
    /// A recovery code.
    RecoveryCode,
    /// A verification code, to an address not verified yet.
    Verification,
}

/// What proves a recovery is the account holder's.
pub enum RecoveryProof {
    /// The code mailed for `login` (a username or an e-mail).
    Code {
        /// As typed when asking.
        login: String,
        /// The six digits.
        code: String,
    },
    /// The secret of an operator's link.
    Link(String),
}

impl super::Auth {
    /// Mails a recovery code to the account `login` names, if there is
    /// one; answers the same either way, no sooner than `ANSWER_FLOOR`.
    /// Each request counts against the account and the client's address
    /// (on every instance): past `PER_ACCOUNT` or `PER_IP`, `Throttled`.
    pub async fn request_recovery(
        &self,
        login: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let outcome = self
            .mail_to_login(login, client, Mailing::RecoveryCode)
            .await;
        let counts = &self.inner.recovery;
        match &outcome {
            Ok(()) => counts.requested.fetch_add(1, Relaxed),
            Err(AuthError::Throttled(_)) => counts.throttled.fetch_add(1, Relaxed),
            Err(_) => 0,
        };
        outcome
    }

    /// Mails `what` to the account `login` names, if there is one (and it
    /// wants it); answers the same either way, no sooner than
    /// `ANSWER_FLOOR`. Every request counts against the account (or the
    /// login as typed) and the client's address, found or not: hence the
    /// `false` handed to `guarded`.
    pub(super) async fn mail_to_login(
        &self,
        login: &str,
        client: &ClientInfo,
        what: Mailing,
    ) -> Result<(), AuthError> {
        let started = Instant::now();
        self.mail_enabled()?;
        let outcome = async {
            let user = self.find_login(login).await?;
            let account = login_account(user.as_ref(), login);
            let work = async {
                match (what, &user) {
                    (Mailing::RecoveryCode, Some(user)) => self.mail_code(user, client).await?,
                    (Mailing::Verification, Some(user)) if !user.email_verified => {
                        self.mail_verification(user).await?
                    }
                    _ => {}
                }
                Ok(false)
            };
            self.guarded(Guard::Recovery, &account, client, work)
                .await
                .map(drop)
        }
        .await;
        tokio::time::sleep_until((started + ANSWER_FLOOR).into()).await;
        outcome
    }

    async fn mail_code(&self, user: &UserRecord, client: &ClientInfo) -> Result<(), AuthError> {
        let id = user.user_id();
        let code = six_digits();
        let mac = self.inner.factor_keys.mailed_code_macs(id, &code)[0];
        let key = TicketKey::User(TicketKind::Recovery, id);
        self.put_mailed_code(&key, mac, &user.email, CODE_TTL)
            .await?;
        let letter = Letter::recovery_code(
            &user.username,
            &code,
            CODE_TTL.as_secs() / 60,
            &self.inner.page_url,
        );
        self.inner.outbox.queue(&user.email, &letter).await?;
        let asked = By::client(id, client).entry(AuditKind::RecoveryRequested, id);
        self.record(&[asked.detail("mail")]).await?;
        self.inner.store.commit_durably().await?;
        Ok(())
    }

    /// Sets a new password with a mailed code or an operator's link: every
    /// session of the user ends, a notice is mailed (where mail is on),
    /// and the requester is signed in with a new session, or, for a user
    /// with a second factor, given the second step. A wrong code uses up
    /// one of its tries; a used, expired or unknown one is refused alike.
    pub async fn recover(
        &self,
        proof: RecoveryProof,
        new: &Password,
        client: &ClientInfo,
    ) -> Result<SignIn, AuthError> {
        let outcome = self.recover_now(proof, new, client).await;
        let counts = &self.inner.recovery;
        match &outcome {
            Ok(_) => counts.used.fetch_add(1, Relaxed),
            Err(AuthError::RecoveryFailed) => counts.failed.fetch_add(1, Relaxed),
            Err(_) => 0,
        };
        outcome
    }

    async fn recover_now(
        &self,
        proof: RecoveryProof,
        new: &Password,
        client: &ClientInfo,
    ) -> Result<SignIn, AuthError> {
        let store = &self.inner.store;
        let how = match &proof {
            RecoveryProof::Code { .. } => "code",
            RecoveryProof::Link(_) => "link",
        };
        let user = match proof {
            RecoveryProof::Code { login, code } => {
                self.mail_enabled()?;
                let user = self
                    .find_login(&login)
                    .await?
                    .ok_or(AuthError::RecoveryFailed)?;
                self.use_code(user.user_id(), &code).await?;
                // The code came to the address: it is the user's.
                if !user.email_verified {
                    let email = &user.email;
                    store
                        .verify_email(user.user_id(), email, email, &[])
                        .await?;
                }
                user
            }
            RecoveryProof::Link(secret) => {
                let key = link_key(&secret).ok_or(AuthError::RecoveryFailed)?;
                let ticket = store
                    .take_ticket(&key)
                    .await?
                    .ok_or(AuthError::RecoveryFailed)?;
                let body: LinkBody = codec::decode(&ticket.body).map_err(unexpected)?;
                store
                    .user(UserId::from_u64(body.user_id))
                    .await?
                    .ok_or(AuthError::RecoveryFailed)?
            }
        };
        let id = user.user_id();
        let hash = self.inner.passwords.hash(new).await?;
        let by = By::client(id, client);
        let used = [
            by.entry(AuditKind::RecoveryUsed, id).detail(how),
            by.entry(AuditKind::PasswordChanged, id).detail("recovery"),
        ];
        let user = store.set_password_hash(id, &hash, &used).await?;
        let revoked = [by
            .entry(AuditKind::SessionsRevoked, id)
            .detail("password_changed")];
        store.end_sessions_of(id, None, &revoked).await?;
        if self.inner.mail_enabled {
            let letter = Letter::password_changed(&user.username, &self.inner.page_url);
            self.inner.outbox.queue(&user.email, &letter).await?;
        }
        store.commit_durably().await?;
        self.after_first_factor(user, client, true, vec![Amr::Pwd])
            .await
    }

    /// Takes the user's mailed recovery code if `code` is it.
    async fn use_code(&self, id: UserId, code: &str) -> Result<(), AuthError> {
        let key = TicketKey::User(TicketKind::Recovery, id);
        let macs = |typed: &str| self.inner.factor_keys.mailed_code_macs(id, typed);
        self.take_mailed_code(&key, macs, code).await.map(drop)
    }

    /// Keeps a mailed code's HMAC under `key` with its tries, replacing an
    /// earlier one.
    pub(super) async fn put_mailed_code(
        &self,
        key: &TicketKey,
        mac: [u8; 32],
        email: &str,
        ttl: Duration,
    ) -> Result<(), AuthError> {
        let body = MailedCode {
            mac,
            email: email.to_owned(),
            tries_left: CODE_TRIES,
        };
        self.put_ticket(key, &body, ttl).await
    }

    /// Takes the code under `key` if `typed` is it (`macs` gives its HMACs
    /// under every key); a wrong guess puts it back with one try fewer
    /// (none left: gone). Wrong, used, expired: `RecoveryFailed` alike.
    pub(super) async fn take_mailed_code(
        &self,
        key: &TicketKey,
        macs: impl Fn(&str) -> Vec<[u8; 32]>,
        typed: &str,
    ) -> Result<MailedCode, AuthError> {
        let store = &self.inner.store;
        let ticket = store
            .take_ticket(key)
            .await?
            .ok_or(AuthError::RecoveryFailed)?;
        let mut body: MailedCode = codec::decode(&ticket.body).map_err(unexpected)?;
        let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        if macs(&typed)
            .iter()
            .any(|mac| bool::from(mac.ct_eq(&body.mac)))
        {
            return Ok(body);
        }
        body.tries_left = body.tries_left.saturating_sub(1);
        if body.tries_left > 0 {
            let back = TicketRecord {
                deadline_ms: ticket.deadline_ms,
                body: codec::encode(&body),
            };
            store.put_ticket(key, &back).await?;
        }
        Err(AuthError::RecoveryFailed)
    }

    /// The user a login names: an e-mail if it has an `@`, else a name.
    pub(super) async fn find_login(&self, login: &str) -> Result<Option<UserRecord>, AuthError> {
        let login = login.trim();
        let store = &self.inner.store;
        Ok(if login.contains('@') {
            store.user_by_email(login).await?
        } else {
            store.user_by_name(login).await?
        })
    }

    pub(super) fn mail_enabled(&self) -> Result<(), AuthError> {
        if self.inner.mail_enabled {
            Ok(())
        } else {
            Err(AuthError::MailNotConfigured)
        }
    }

    /// A single-use link to the page's "set a new password" view for a
    /// user, valid for `LINK_TTL`.
    pub async fn reset_link(&self, id: UserId) -> Result<String, AuthError> {
        reset_link(&self.inner.store, &self.inner.page_url, id).await
    }
}

/// Makes an operator's link for `id` (`page` is the page's URL), answered
/// once durable. Needs no keys, so the offline CLI can use it.
pub async fn reset_link(store: &Store, page: &str, id: UserId) -> Result<String, AuthError> {
    store.user(id).await?.ok_or(AuthError::NotFound)?;
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let secret = hex(&secret);
    let key = link_key(&secret).expect("a fresh secret is well formed");
    let record = TicketRecord {
        deadline_ms: now_ms().saturating_add(millis(LINK_TTL)),
        body: codec::encode(&LinkBody {
            user_id: id.as_u64(),
        }),
    };
    store.put_ticket(&key, &record).await?;
    store.commit_durably().await?;
    Ok(format!("{page}/#/reset/{secret}"))
}

/// Where a link's ticket is kept: under the SHA-256 of its secret, so the
/// store (a dump of it) holds no usable link.
fn link_key(secret: &str) -> Option<TicketKey> {
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digest: [u8; 32] = Sha256::digest(secret.to_ascii_lowercase().as_bytes()).into();
    Some(TicketKey::Id(TicketKind::ResetLink, digest))
}

/// What a login's requests count against: the account it names, or, for
/// none, the login as typed (so unknown names are throttled alike).
fn login_account(user: Option<&UserRecord>, login: &str) -> String {
    user.map_or_else(
        || format!("login:{}", login.trim().to_lowercase()),
        |u| throttle_key(u.user_id()),
    )
}

/// Six digits from the OS random source, each value equally likely.
pub(super) fn six_digits() -> String {
    loop {
        let n = OsRng.next_u32();
        // 4_294_000_000 is the largest multiple of a million below 2^32.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

fn unexpected(e: codec::CodecError) -> AuthError {
    AuthError::Unexpected(format!("a recovery ticket does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_links_need_their_whole_secret() {
        for _ in 0..100 {
            let c = six_digits();
            assert!(c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()), "{c}");
        }
        assert!(link_key(&"ab".repeat(32)).is_some());
        assert!(link_key(&"ab".repeat(31)).is_none());
        assert!(link_key(&"zz".repeat(32)).is_none());
    }
}
