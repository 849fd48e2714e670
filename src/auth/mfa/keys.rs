//! Passkeys and security keys (WebAuthn Level 2), with webauthn-rs: the
//! registration, the second step after a password, and the passwordless
//! sign-in with a discoverable credential.
//!
//! Every ceremony's state is a ticket in the store (single use, 5
//! minutes, taken before it is checked), never a cookie: two instances
//! share it and a replayed answer finds nothing. Every key is registered
//! as webauthn-rs's `SecurityKey` (user verification preferred, a
//! discoverable credential preferred): with user verification it also
//! signs in alone, since the discoverable ceremony requires it; without,
//! it is a second factor only. The signature counter only rises, checked
//! by webauthn-rs against the stored credential and again by the store's
//! compare-and-write (`Store::accept_key_use`), so two instances cannot
//! both accept one assertion.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration,
    Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use super::{decode_body, list_factors, new_factor_id, FactorInfo};
use crate::auth::{Auth, AuthError, By, ClientInfo, CurrentSession, NewSession};
use crate::config::RelyingParty;
use crate::domain::{Amr, UserId};
use crate::store::{now_ms, AuditKind, Factors, KeyFactor, TicketKey, TicketKind, UserRecord};

/// How long a ceremony waits for the authenticator.
const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);
/// The high half of every user handle: the low half is the user id.
const HANDLE_MARK: u64 = u64::from_be_bytes(*b"sessiond");
/// Longest name a key may be given.
const MAX_NAME_CHARS: usize = 64;

/// The relying party, built once from `[webauthn]`.
pub(crate) struct Keys {
    webauthn: Webauthn,
}

impl Keys {
    /// `Config` error text when webauthn-rs refuses the relying party.
    pub(crate) fn new(rp: &RelyingParty) -> Result<Self, String> {
        let refused = |e| format!("webauthn: the relying party {:?} is refused ({e})", rp.id);
        let mut builder = WebauthnBuilder::new(&rp.id, &rp.origins[0])
            .map_err(refused)?
            .rp_name(&rp.name);
        for origin in &rp.origins[1..] {
            builder = builder.append_allowed_origin(origin);
        }
        Ok(Self {
            webauthn: builder.build().map_err(refused)?,
        })
    }
}

/// A ceremony's state as a ticket holds it: webauthn-rs's own JSON, and,
/// for a registration, the name the key is to get.
#[derive(Serialize, Deserialize)]
struct CeremonyBody {
    state: Vec<u8>,
    name: String,
}
impl crate::store::codec::Record for CeremonyBody {}

/// The WebAuthn user handle of a user: stable, and naming the user back.
fn user_handle(id: UserId) -> Uuid {
    Uuid::from_u64_pair(HANDLE_MARK, id.as_u64())
}

fn user_of_handle(handle: Uuid) -> Option<UserId> {
    let (mark, id) = handle.as_u64_pair();
    (mark == HANDLE_MARK).then(|| UserId::from_u64(id))
}

/// The challenge a browser's answer carries (base64url, as sent), hashed
/// into the id its ceremony's ticket is kept under.
fn challenge_id(challenge: &str) -> [u8; 32] {
    Sha256::digest(challenge.as_bytes()).into()
}

/// The challenge of the options we send, as the browser will echo it.
fn sent_challenge(options: &impl Serialize) -> Option<String> {
    let value = serde_json::to_value(options).ok()?;
    value["publicKey"]["challenge"].as_str().map(str::to_owned)
}

/// The challenge a browser's answer says it signed.
fn answered_challenge(credential: &PublicKeyCredential) -> Option<String> {
    #[derive(Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(&credential.response.client_data_json).ok()?;
    Some(data.challenge)
}

fn key_amr(backup_eligible: bool) -> Amr {
    // A key that may be synced elsewhere is software; one bound to its
    // device, hardware (RFC 8176's `swk` and `hwk`).
    if backup_eligible {
        Amr::Swk
    } else {
        Amr::Hwk
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, AuthError> {
    serde_json::to_vec(value).map_err(|e| AuthError::Unexpected(format!("webauthn state: {e}")))
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

impl Auth {
    fn webauthn(&self) -> &Webauthn {
        &self.inner.keys.webauthn
    }

    /// Starts registering a key for the caller (a fresh proof needed):
    /// the options for `navigator.credentials.create`.
    pub async fn key_register_start(
        &self,
        current: &CurrentSession,
        name: &str,
    ) -> Result<serde_json::Value, AuthError> {
        self.require_fresh(current).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(crate::domain::InvalidField {
                field: "name",
                reason: format!("1 to {MAX_NAME_CHARS} characters, such as \"Laptop\""),
            }
            .into());
        }
        let user = &current.user;
        let id = user.user_id();
        let exclude = user
            .factors
            .keys
            .iter()
            .map(|k| k.credential_id.clone())
            .collect();
        let (options, state) = self
            .webauthn()
            .start_securitykey_registration(
                user_handle(id),
                &user.username,
                &user.username,
                Some(exclude),
                None,
                None,
            )
            .map_err(|e| AuthError::Unexpected(format!("webauthn registration: {e}")))?;
        // A discoverable credential where the authenticator can make one,
        // so the key can also sign in without a name; any authenticator,
        // not only a security key. (webauthn-rs does not check either.)
        let mut options = serde_json::to_value(&options)
            .map_err(|e| AuthError::Unexpected(format!("webauthn options: {e}")))?;
        // Without credProtect: Chromium refuses its "user verification
        // required" beside a discoverable credential that is only
        // preferred; user verification is checked at each sign-in anyway.
        let p = &mut options["publicKey"];
        if let Some(p) = p.as_object_mut() {
            p.remove("hints");
        }
        if let Some(ext) = p["extensions"].as_object_mut() {
            ext.remove("credentialProtectionPolicy");
            ext.remove("enforceCredentialProtectionPolicy");
        }
        p["authenticatorSelection"]["residentKey"] = "preferred".into();
        let body = CeremonyBody {
            state: to_json(&state)?,
            name: name.to_owned(),
        };
        let key = TicketKey::User(TicketKind::KeyRegister, id);
        self.put_ticket(&key, &body, CEREMONY_TTL).await?;
        Ok(options)
    }

    /// Finishes a registration with the browser's answer; the key is the
    /// user's from now on.
    pub async fn key_register_finish(
        &self,
        current: &CurrentSession,
        credential: &RegisterPublicKeyCredential,
    ) -> Result<FactorInfo, AuthError> {
        self.require_fresh(current).await?;
        let id = current.user.user_id();
        let ticket = TicketKey::User(TicketKind::KeyRegister, id);
        let taken = self.inner.store.take_ticket(&ticket).await?;
        let body: CeremonyBody = taken
            .and_then(|t| decode_body(&t))
            .ok_or(AuthError::NoEnrolment)?;
        let state: SecurityKeyRegistration =
            from_json(&body.state).ok_or(AuthError::NoEnrolment)?;
        let passkey = self
            .webauthn()
            .finish_securitykey_registration(credential, &state)
            .map_err(|e| {
                tracing::info!(user = %id, error = %e, "a key's registration was refused");
                AuthError::KeyRefused
            })?;
        let now = now_ms();
        let factor = KeyFactor {
            id: new_factor_id(),
            name: body.name,
            credential_id: passkey.cred_id().to_vec(),
            credential: to_json(&passkey)?,
            counter: 0,
            created_at_ms: now,
            last_used_at_ms: 0,
        };
        let entries = [By::user(current)
            .entry(AuditKind::MfaAdded, id)
            .detail(format!("webauthn: {}", factor.name))];
        let added = self
            .inner
            .store
            .change_factors(id, &entries, |f| {
                if f.keys
                    .iter()
                    .any(|k| k.credential_id == factor.credential_id)
                {
                    return None;
                }
                f.keys.push(factor.clone());
                Some(())
            })
            .await?;
        if added.is_none() {
            return Err(AuthError::FactorExists);
        }
        self.inner.store.commit_durably().await?;
        Ok(list_factors(&Factors {
            keys: vec![factor],
            ..Factors::default()
        })
        .remove(0))
    }

    /// Starts the second step with a key: the options for
    /// `navigator.credentials.get`, naming the user's keys.
    pub async fn key_step_start(
        &self,
        pending: &str,
        client: &ClientInfo,
    ) -> Result<RequestChallengeResponse, AuthError> {
        let Some((user, _)) = self.pending(pending, client).await? else {
            return Err(self.mfa_failed());
        };
        let keys: Vec<SecurityKey> = user
            .factors
            .keys
            .iter()
            .filter_map(|k| from_json(&k.credential))
            .collect();
        if keys.is_empty() {
            return Err(self.mfa_failed());
        }
        let (options, state) = self
            .webauthn()
            .start_securitykey_authentication(&keys)
            .map_err(|e| AuthError::Unexpected(format!("webauthn authentication: {e}")))?;
        let body = CeremonyBody {
            state: to_json(&state)?,
            name: String::new(),
        };
        let key = TicketKey::User(TicketKind::KeyStep, user.user_id());
        self.put_ticket(&key, &body, CEREMONY_TTL).await?;
        Ok(options)
    }

    /// Checks a second step's assertion against the ceremony started for
    /// it (used up either way); the `amr` it adds if it passed.
    pub(super) async fn check_key_step(
        &self,
        user: &UserRecord,
        credential: &PublicKeyCredential,
    ) -> Result<Option<Vec<Amr>>, AuthError> {
        let id = user.user_id();
        let ticket = TicketKey::User(TicketKind::KeyStep, id);
        let taken = self.inner.store.take_ticket(&ticket).await?;
        let Some(state) = taken
            .and_then(|t| decode_body::<CeremonyBody>(&t))
            .and_then(|b| from_json::<SecurityKeyAuthentication>(&b.state))
        else {
            return Ok(None);
        };
        let result = match self
            .webauthn()
            .finish_securitykey_authentication(credential, &state)
        {
            Ok(result) => result,
            Err(e) => {
                tracing::info!(user = %id, error = %e, "a key's assertion was refused");
                return Ok(None);
            }
        };
        let used = self
            .record_key_use(user, result.cred_id().as_ref(), &result)
            .await?;
        Ok(used.then(|| vec![key_amr(result.backup_eligible())]))
    }

    /// Starts a passwordless sign-in: a challenge any of this site's
    /// discoverable credentials can answer.
    pub async fn passkey_start(&self) -> Result<RequestChallengeResponse, AuthError> {
        let (mut options, state) = self
            .webauthn()
            .start_discoverable_authentication()
            .map_err(|e| AuthError::Unexpected(format!("webauthn authentication: {e}")))?;
        // The page chooses: a button's modal prompt, or autofill.
        options.mediation = None;
        let challenge = sent_challenge(&options)
            .ok_or_else(|| AuthError::Unexpected("a challenge without its text".into()))?;
        let body = CeremonyBody {
            state: to_json(&state)?,
            name: String::new(),
        };
        let key = TicketKey::Id(TicketKind::Passkey, challenge_id(&challenge));
        self.put_ticket(&key, &body, CEREMONY_TTL).await?;
        Ok(options)
    }

    /// Finishes a passwordless sign-in: the ceremony its challenge
    /// started (used up either way), the user its handle names, one of
    /// their keys, verified by the user (PIN or biometrics): a session
    /// made with two factors. Every failure is `InvalidCredentials`.
    pub async fn passkey_finish(
        &self,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
        remember: bool,
    ) -> Result<NewSession, AuthError> {
        let refused = || {
            self.inner.logins.failure.fetch_add(1, Ordering::Relaxed);
            AuthError::InvalidCredentials
        };
        let Some(challenge) = answered_challenge(credential) else {
            return Err(refused());
        };
        let ticket = TicketKey::Id(TicketKind::Passkey, challenge_id(&challenge));
        let taken = self.inner.store.take_ticket(&ticket).await?;
        let Some(state) = taken
            .and_then(|t| decode_body::<CeremonyBody>(&t))
            .and_then(|b| from_json::<DiscoverableAuthentication>(&b.state))
        else {
            return Err(refused());
        };
        let Ok((handle, cred_id)) = self
            .webauthn()
            .identify_discoverable_authentication(credential)
        else {
            return Err(refused());
        };
        let Some(id) = user_of_handle(handle) else {
            return Err(refused());
        };
        let Some(user) = self.inner.store.user(id).await? else {
            return Err(refused());
        };
        let Some(key) = user
            .factors
            .keys
            .iter()
            .find(|k| k.credential_id == cred_id)
            .and_then(|k| from_json::<SecurityKey>(&k.credential))
        else {
            return Err(refused());
        };
        let result = match self
            .webauthn()
            .finish_discoverable_authentication_v2(credential, state, &key)
        {
            Ok(result) if result.user_verified() => result,
            Ok(_) => return Err(refused()),
            Err(e) => {
                tracing::info!(user = %id, error = %e, "a passkey sign-in was refused");
                return Err(refused());
            }
        };
        if !self.record_key_use(&user, cred_id, &result).await? {
            return Err(refused());
        }
        let amr = vec![key_amr(result.backup_eligible()), Amr::User];
        let new = self
            .open_session(user, client, remember, amr, Vec::new())
            .await?;
        self.inner.logins.success.fetch_add(1, Ordering::Relaxed);
        self.inner
            .mfa_counts
            .success
            .fetch_add(1, Ordering::Relaxed);
        Ok(new)
    }

    /// Stores a passed assertion's counter and updated credential, if the
    /// counter rose (or a synced passkey's stayed 0); `false` otherwise.
    async fn record_key_use(
        &self,
        user: &UserRecord,
        cred_id: &[u8],
        result: &webauthn_rs::prelude::AuthenticationResult,
    ) -> Result<bool, AuthError> {
        let Some(stored) = user
            .factors
            .keys
            .iter()
            .find(|k| k.credential_id == cred_id)
        else {
            return Ok(false);
        };
        let Some(mut key) = from_json::<SecurityKey>(&stored.credential) else {
            return Ok(false);
        };
        key.update_credential(result);
        let accepted = self
            .inner
            .store
            .accept_key_use(
                user.user_id(),
                &stored.id,
                result.counter(),
                &to_json(&key)?,
                now_ms(),
            )
            .await?;
        if !accepted {
            tracing::warn!(user = %user.user_id(), key = %stored.id, "a key's counter did not rise: a cloned key, or an assertion replayed");
        }
        Ok(accepted)
    }
}
