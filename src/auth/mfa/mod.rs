//! Second factors: TOTP, keys and recovery codes, the pending sign-in between
//! the password and the second step, and the fresh proof that changing
//! factors needs. Knows no HTTP.
//!
//! The rules that must hold between instances are store operations
//! (`Store::accept_totp_step`, `Store::use_recovery_code`, single-use
//! tickets); this module decides what to ask the store, and when.

mod codes;
mod keys;
mod seal;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use codes::totp_code;
pub(crate) use keys::Keys;
pub(crate) use seal::FactorKeys;

use super::{millis, Auth, AuthError, By, ClientInfo, CurrentSession, Guard, NewSession};
use crate::domain::{hex, Amr, Password, UserId};
use crate::store::{
    now_ms, AuditKind, Factors, Store, TicketKey, TicketKind, TicketRecord, TotpFactor, UserRecord,
};

/// How long the pending sign-in between the two steps lives.
pub const PENDING_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a shown TOTP secret waits for its confirming code.
const ENROL_TTL: Duration = Duration::from_secs(10 * 60);

/// What the password step answers a user with a second factor: no
/// session, a token for the second step and the ways it can be passed.
#[derive(Debug)]
pub struct PendingSignIn {
    /// `<user id>.<64 hex>`: the random part only the client holds.
    pub token: String,
    /// `totp`, `webauthn`, `recovery`: what this user can answer with.
    pub methods: Vec<&'static str>,
    /// Seconds it lives.
    pub expires_in: u64,
}

/// Where a first factor leads.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in (boxed: the pending variant is small).
    Session(Box<NewSession>),
    /// A second step is due.
    SecondStep(PendingSignIn),
}

/// What a second step, or a re-authentication, offers.
pub enum Proof {
    /// A TOTP code.
    Totp(String),
    /// A recovery code (used up).
    Recovery(String),
    /// A key's answer to the challenge `Auth::key_step_start` gave.
    Key(Box<webauthn_rs::prelude::PublicKeyCredential>),
}

impl Proof {
    /// The method's name in the contract (and the security log).
    pub fn method(&self) -> &'static str {
        match self {
            Proof::Totp(_) => "totp",
            Proof::Recovery(_) => "recovery",
            Proof::Key(_) => "webauthn",
        }
    }
}

/// Second-step outcomes, for `/metrics`.
#[derive(Debug, Default)]
pub struct MfaCounts {
    /// Passed.
    pub success: AtomicU64,
    /// A wrong code, or a pending token that is not (or no longer) valid.
    pub failure: AtomicU64,
    /// Refused by throttling.
    pub throttled: AtomicU64,
}

/// One factor as the account page lists it.
#[derive(Debug, Clone)]
pub struct FactorInfo {
    /// For `DELETE /api/auth/mfa/{id}`.
    pub id: String,
    /// `totp` or `webauthn`.
    pub kind: &'static str,
    /// A label.
    pub name: String,
    /// Unix millis.
    pub created_at_ms: u64,
    /// Unix millis; 0: never.
    pub last_used_at_ms: u64,
}

/// A user's factors, without any secret.
pub fn list_factors(f: &Factors) -> Vec<FactorInfo> {
    let totp = f.totp.iter().map(|t| FactorInfo {
        id: t.id.clone(),
        kind: "totp",
        name: "Authenticator app".into(),
        created_at_ms: t.created_at_ms,
        last_used_at_ms: t.last_used_at_ms,
    });
    let keys = f.keys.iter().map(|k| FactorInfo {
        id: k.id.clone(),
        kind: "webauthn",
        name: k.name.clone(),
        created_at_ms: k.created_at_ms,
        last_used_at_ms: k.last_used_at_ms,
    });
    totp.chain(keys).collect()
}

/// What a TOTP enrolment shows, once.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrolment {
    /// Base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/...`.
    pub otpauth_uri: String,
    /// The URI as a QR code.
    pub qr_svg: String,
}

/// The pending sign-in as stored (under the user: a newer password step
/// replaces it).
#[derive(Serialize, Deserialize)]
struct PendingBody {
    /// SHA-256 of the token's random part.
    token_hash: [u8; 32],
    /// The client it was given to.
    ip: String,
    user_agent: String,
    remember: bool,
    /// What the first step proved.
    first: Vec<Amr>,
}
impl crate::store::codec::Record for PendingBody {}

/// A TOTP secret shown and not yet confirmed, sealed.
#[derive(Serialize, Deserialize)]
struct EnrolBody {
    sealed: Vec<u8>,
}
impl crate::store::codec::Record for EnrolBody {}

impl Auth {
    /// Second-step outcomes so far.
    pub fn mfa_counts(&self) -> &MfaCounts {
        &self.inner.mfa_counts
    }

    /// After a first factor: a session, or, for a user with a second
    /// factor, a pending sign-in (which is when, and only when, the user's
    /// factors are revealed).
    pub(super) async fn after_first_factor(
        &self,
        user: UserRecord,
        client: &ClientInfo,
        remember: bool,
        first: Vec<Amr>,
    ) -> Result<SignIn, AuthError> {
        if !user.factors.any() {
            let new = self
                .open_session(user, client, remember, first, Vec::new())
                .await?;
            return Ok(SignIn::Session(Box::new(new)));
        }
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let body = PendingBody {
            token_hash: Sha256::digest(secret).into(),
            ip: client.ip.to_string(),
            user_agent: client.user_agent.clone().unwrap_or_default(),
            remember,
            first,
        };
        let key = TicketKey::User(TicketKind::Pending, user.user_id());
        self.put_ticket(&key, &body, PENDING_TTL).await?;
        let f = &user.factors;
        let mut methods = Vec::new();
        if f.totp.is_some() {
            methods.push("totp");
        }
        if !f.keys.is_empty() {
            methods.push("webauthn");
        }
        if !f.recovery.is_empty() {
            methods.push("recovery");
        }
        Ok(SignIn::SecondStep(PendingSignIn {
            token: format!("{}.{}", user.user_id(), hex(&secret)),
            methods,
            expires_in: PENDING_TTL.as_secs(),
        }))
    }

    /// The second step: the pending token and a code. Passed, it opens a
    /// new session and uses the token up; failed, it counts against the
    /// account's second-factor throttle and the token stays for another
    /// try until it expires.
    pub async fn second_step(
        &self,
        pending: &str,
        proof: &Proof,
        client: &ClientInfo,
    ) -> Result<NewSession, AuthError> {
        let (user, body) = match self.pending(pending, client).await? {
            Some(found) => found,
            None => return Err(self.mfa_failed()),
        };
        let id = user.user_id();
        let by = By::client(id, client);
        let method = proof.method();
        let amr = match self.check_proof(&user, proof, client).await {
            Ok(Some(amr)) => amr,
            Ok(None) => {
                let failed = by.entry(AuditKind::MfaFailed, id).detail(method);
                self.record(&[failed]).await?;
                return Err(self.mfa_failed());
            }
            Err(AuthError::Throttled(wait)) => {
                if self.inner.throttle_notes.first(id, "mfa") {
                    let throttled = by.entry(AuditKind::LoginThrottled, id).detail("mfa");
                    self.record(&[throttled]).await?;
                }
                return Err(AuthError::Throttled(wait));
            }
            Err(e) => return Err(e),
        };
        // Single use: of two second steps racing, one takes it.
        let key = TicketKey::User(TicketKind::Pending, id);
        let taken = self.inner.store.take_ticket(&key).await?;
        let still: Option<PendingBody> = taken.and_then(|t| decode_body(&t));
        if !still.is_some_and(|b| bool::from(b.token_hash.ct_eq(&body.token_hash))) {
            return Err(self.mfa_failed());
        }
        let mut all = body.first;
        all.extend(amr);
        let passed = vec![by.entry(AuditKind::MfaPassed, id).detail(method)];
        let new = self
            .open_session(user, client, body.remember, all, passed)
            .await?;
        self.inner
            .mfa_counts
            .success
            .fetch_add(1, Ordering::Relaxed);
        self.inner.logins.success.fetch_add(1, Ordering::Relaxed);
        Ok(new)
    }

    /// The user and pending sign-in behind a token, if it is the user's
    /// latest, unexpired, and given to this client.
    async fn pending(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Option<(UserRecord, PendingBody)>, AuthError> {
        let Some((id, secret)) = parse_pending(token) else {
            return Ok(None);
        };
        let key = TicketKey::User(TicketKind::Pending, id);
        let Some(body) = self
            .inner
            .store
            .ticket(&key)
            .await?
            .and_then(|t| decode_body::<PendingBody>(&t))
        else {
            return Ok(None);
        };
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let same_client = body.ip == client.ip.to_string()
            && body.user_agent == client.user_agent.clone().unwrap_or_default();
        if !bool::from(hash.ct_eq(&body.token_hash)) || !same_client {
            return Ok(None);
        }
        let Some(user) = self.inner.store.user(id).await? else {
            return Ok(None);
        };
        Ok(Some((user, body)))
    }

    /// Checks a code under the account's second-factor throttle; a right
    /// one is used up (a TOTP step, a recovery code, a key's counter).
    /// Answers what it adds to `amr` if it passed.
    async fn check_proof(
        &self,
        user: &UserRecord,
        proof: &Proof,
        client: &ClientInfo,
    ) -> Result<Option<Vec<Amr>>, AuthError> {
        let id = user.user_id();
        let store = &self.inner.store;
        let account = super::throttle_key(id);
        let check = async {
            match proof {
                Proof::Totp(code) => {
                    let Some(totp) = &user.factors.totp else {
                        return Ok(None);
                    };
                    let Some(secret) = self.inner.factor_keys.open(id, &totp.sealed_secret) else {
                        tracing::warn!(user = %id, "a TOTP secret does not open with any configured secret");
                        return Ok(None);
                    };
                    let Some(step) = codes::totp_step(&secret, code, now_ms() / 1000) else {
                        return Ok(None);
                    };
                    let accepted = store.accept_totp_step(id, step, now_ms()).await?;
                    Ok(accepted.then(|| vec![Amr::Otp]))
                }
                Proof::Recovery(code) => {
                    let code = codes::normalise_recovery(code);
                    for mac in self.inner.factor_keys.recovery_macs(id, &code) {
                        if store.use_recovery_code(id, &mac).await?.is_some() {
                            return Ok(Some(vec![Amr::Otp]));
                        }
                    }
                    Ok(None)
                }
                Proof::Key(credential) => self.check_key_step(user, credential).await,
            }
        };
        let mut added = None;
        let counted = async {
            added = check.await?;
            Ok(added.is_some())
        };
        let passed = self
            .guarded(Guard::SecondFactor, &account, client, counted)
            .await;
        match passed {
            Err(AuthError::Throttled(wait)) => {
                self.inner
                    .mfa_counts
                    .throttled
                    .fetch_add(1, Ordering::Relaxed);
                Err(AuthError::Throttled(wait))
            }
            other => other.map(|_| added),
        }
    }

    fn mfa_failed(&self) -> AuthError {
        self.inner
            .mfa_counts
            .failure
            .fetch_add(1, Ordering::Relaxed);
        AuthError::MfaFailed
    }

    /// A fresh proof for the current session: the password (throttled as
    /// a login) or a TOTP code (throttled as a second step). Good for
    /// `auth.reauth_window`.
    pub async fn reauth(
        &self,
        current: &CurrentSession,
        password: Option<&Password>,
        code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = &current.user;
        let passed = match (password, code) {
            (Some(p), _) if user.has_password() => {
                let account = super::throttle_key(user.user_id());
                let stored = Some(user.password_hash.as_str());
                self.check_password(&account, Some(user.user_id()), client, p, stored)
                    .await?;
                true
            }
            (_, Some(code)) => self
                .check_proof(user, &Proof::Totp(code.to_owned()), client)
                .await?
                .is_some(),
            _ => false,
        };
        if !passed {
            return Err(AuthError::InvalidCredentials);
        }
        let key = TicketKey::Id(TicketKind::Reauth, *current.hash.as_bytes());
        let window = self.inner.auth.reauth_window;
        self.put_ticket(&key, &EnrolBody { sealed: Vec::new() }, window)
            .await
    }

    /// Refuses with `ReauthRequired` unless the session proved something
    /// within `auth.reauth_window`: its sign-in, or a `reauth`.
    pub(in crate::auth) async fn require_fresh(
        &self,
        current: &CurrentSession,
    ) -> Result<(), AuthError> {
        let window = millis(self.inner.auth.reauth_window);
        if now_ms().saturating_sub(current.session.created_at_ms) < window {
            return Ok(());
        }
        let key = TicketKey::Id(TicketKind::Reauth, *current.hash.as_bytes());
        match self.inner.store.ticket(&key).await? {
            Some(_) => Ok(()),
            None => Err(AuthError::ReauthRequired),
        }
    }

    /// Whether this session's user must enrol a second factor before
    /// reaching anything but enrolment (`auth.require_mfa`).
    pub fn must_enrol(&self, current: &CurrentSession) -> bool {
        self.inner.auth.require_mfa.applies_to(current.user.role) && !current.user.factors.any()
    }

    /// Starts a TOTP enrolment: a new secret, shown once, waiting for a
    /// code from it. `FactorExists` if the user has TOTP already.
    pub async fn totp_enrol(&self, current: &CurrentSession) -> Result<TotpEnrolment, AuthError> {
        self.require_fresh(current).await?;
        let user = &current.user;
        if user.factors.totp.is_some() {
            return Err(AuthError::FactorExists);
        }
        let secret = codes::new_secret();
        let body = EnrolBody {
            sealed: self.inner.factor_keys.seal(user.user_id(), &secret),
        };
        let key = TicketKey::User(TicketKind::TotpEnrol, user.user_id());
        self.put_ticket(&key, &body, ENROL_TTL).await?;
        let (secret, otpauth_uri, qr_svg) =
            codes::enrolment(&secret, &user.username, &self.inner.issuer)
                .ok_or_else(|| AuthError::Unexpected("cannot build a TOTP URI".into()))?;
        Ok(TotpEnrolment {
            secret,
            otpauth_uri,
            qr_svg,
        })
    }

    /// Confirms a TOTP enrolment with a code from the new secret; the
    /// code's step counts as used.
    pub async fn totp_confirm(
        &self,
        current: &CurrentSession,
        code: &str,
    ) -> Result<FactorInfo, AuthError> {
        self.require_fresh(current).await?;
        let id = current.user.user_id();
        let key = TicketKey::User(TicketKind::TotpEnrol, id);
        let body: EnrolBody = self
            .inner
            .store
            .ticket(&key)
            .await?
            .and_then(|t| decode_body(&t))
            .ok_or(AuthError::NoEnrolment)?;
        let secret = self
            .inner
            .factor_keys
            .open(id, &body.sealed)
            .ok_or(AuthError::NoEnrolment)?;
        let now = now_ms();
        let step = codes::totp_step(&secret, code, now / 1000).ok_or(AuthError::WrongCode)?;
        let factor = TotpFactor {
            id: new_factor_id(),
            sealed_secret: body.sealed,
            created_at_ms: now,
            last_used_at_ms: now,
            last_step: step,
        };
        let entries = [By::user(current)
            .entry(AuditKind::MfaAdded, id)
            .detail("totp")];
        let added = self
            .inner
            .store
            .change_factors(id, &entries, |f| {
                if f.totp.is_some() {
                    return None;
                }
                f.totp = Some(factor.clone());
                Some(())
            })
            .await?;
        if added.is_none() {
            return Err(AuthError::FactorExists);
        }
        self.inner.store.take_ticket(&key).await?;
        self.inner.store.commit_durably().await?;
        Ok(list_factors(&Factors {
            totp: Some(factor),
            ..Factors::default()
        })
        .remove(0))
    }

    /// A new batch of recovery codes, shown once; the old batch is void.
    /// Only for a user with a factor to recover.
    pub async fn new_recovery_codes(
        &self,
        current: &CurrentSession,
    ) -> Result<Vec<String>, AuthError> {
        self.require_fresh(current).await?;
        let id = current.user.user_id();
        let plain = codes::new_recovery_codes();
        let macs: Vec<[u8; 32]> = plain
            .iter()
            .map(|c| {
                self.inner
                    .factor_keys
                    .recovery_macs(id, &codes::normalise_recovery(c))[0]
            })
            .collect();
        let now = now_ms();
        let entries = [By::user(current)
            .entry(AuditKind::MfaAdded, id)
            .detail("recovery codes")];
        let made = self
            .inner
            .store
            .change_factors(id, &entries, |f| {
                if !f.any() {
                    return None;
                }
                f.recovery = macs.clone();
                f.recovery_created_at_ms = now;
                Some(())
            })
            .await?;
        if made.is_none() {
            return Err(AuthError::NoFactor);
        }
        self.inner.store.commit_durably().await?;
        Ok(plain)
    }

    /// Removes one of the caller's factors and ends every other session of
    /// theirs; with the last factor go the recovery codes. `false` if
    /// they have no factor with that id.
    pub async fn remove_factor(
        &self,
        current: &CurrentSession,
        factor: &str,
    ) -> Result<bool, AuthError> {
        self.require_fresh(current).await?;
        let id = current.user.user_id();
        let known = &current.user.factors;
        let what = match known.keys.iter().find(|k| k.id == factor) {
            Some(key) => format!("webauthn: {}", key.name),
            None => "totp".to_owned(),
        };
        let by = By::user(current);
        let entries = [by.entry(AuditKind::MfaRemoved, id).detail(what)];
        let removed = self
            .inner
            .store
            .change_factors(id, &entries, |f| {
                let before = f.keys.len() + usize::from(f.totp.is_some());
                if f.totp.as_ref().is_some_and(|t| t.id == factor) {
                    f.totp = None;
                }
                f.keys.retain(|k| k.id != factor);
                if before == f.keys.len() + usize::from(f.totp.is_some()) {
                    return None;
                }
                if !f.any() {
                    f.recovery.clear();
                }
                Some(())
            })
            .await?;
        if removed.is_none() {
            return Ok(false);
        }
        let revoked = by
            .entry(AuditKind::SessionsRevoked, id)
            .detail("mfa_removed");
        self.end_sessions_logged(id, Some(&current.hash), revoked)
            .await?;
        self.inner.store.commit_durably().await?;
        Ok(true)
    }

    /// Removes every factor of a user and ends their sessions (an admin's
    /// reset, `by`, for a user who lost every factor).
    pub async fn reset_factors(&self, id: UserId, by: &By) -> Result<usize, AuthError> {
        reset_factors(&self.inner.store, id, by).await
    }

    pub(in crate::auth) async fn put_ticket<T: crate::store::codec::Record>(
        &self,
        key: &TicketKey,
        body: &T,
        ttl: Duration,
    ) -> Result<(), AuthError> {
        let record = TicketRecord {
            deadline_ms: now_ms().saturating_add(millis(ttl)),
            body: crate::store::codec::encode(body),
        };
        Ok(self.inner.store.put_ticket(key, &record).await?)
    }
}

/// Removes every factor of a user and ends all their sessions, answered
/// once durable; returns how many sessions ended. Needs no keys, so the
/// offline CLI can use it.
pub async fn reset_factors(store: &Store, id: UserId, by: &By) -> Result<usize, AuthError> {
    let removed = [by.entry(AuditKind::MfaRemoved, id).detail("all")];
    store
        .change_factors(id, &removed, |f| {
            if *f == Factors::default() {
                return None;
            }
            *f = Factors::default();
            Some(())
        })
        .await?;
    let revoked = [by
        .entry(AuditKind::SessionsRevoked, id)
        .detail("mfa_removed")];
    let ended = store.end_sessions_of(id, None, &revoked).await?.len();
    store.commit_durably().await?;
    Ok(ended)
}

fn decode_body<T: crate::store::codec::Record>(ticket: &TicketRecord) -> Option<T> {
    crate::store::codec::decode(&ticket.body).ok()
}

/// `<16 hex user id>.<64 hex>` into its parts.
fn parse_pending(token: &str) -> Option<(UserId, [u8; 32])> {
    let (id, secret) = token.split_once('.')?;
    let id = UserId::parse(id)?;
    let mut bytes = [0u8; 32];
    let decoded = base16ct::lower::decode(secret, &mut bytes).ok()?;
    (decoded.len() == 32).then_some((id, bytes))
}

/// A factor's public id: 8 random bytes in hex.
fn new_factor_id() -> String {
    let mut bytes = [0u8; 8];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}
