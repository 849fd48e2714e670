//! ID tokens (Firebase, any OIDC provider), verified here, locally: the
//! provider's signing keys are fetched from its JWKS and cached, and every
//! token is checked against them with `jsonwebtoken` (its RustCrypto
//! backend: pure Rust, no C toolchain beyond what the build has).
//!
//! Only RS256 and ES256 are taken, and only with a key of the matching
//! type (RFC 8725): the algorithm is never the token's own choice, so
//! `none`, HMAC with a public key as its secret, and friends are refused
//! before any key is looked at. Every refusal is the same `Invalid`, so a
//! caller learns nothing about which check failed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::ProviderConfig;

/// Longer tokens are refused unread (Firebase's are about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// An unknown `kid` refetches the keys at most this often per provider.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// Keys are kept this long when the JWKS answer gives no `max-age`.
const DEFAULT_KEY_LIFETIME: Duration = Duration::from_secs(300);

/// Longest a JWKS fetch may take; the sign-ins waiting on it then get 503.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why a token was not taken.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// Any failed check: one answer for all of them.
    #[error("the ID token is not valid")]
    Invalid,
    /// The provider's keys could not be fetched and none are cached.
    #[error("the provider's keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// Who a valid token says the user is.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The provider's configured name.
    pub provider: String,
    /// `iss`.
    pub issuer: String,
    /// `sub`: with the issuer, the identity.
    pub subject: String,
    /// `email`, if the token has one and does not call it unverified.
    pub email: Option<String>,
    /// `name`, if any.
    pub name: Option<String>,
    /// Whether a first sign-in may create a user.
    pub auto_register: bool,
}

/// The configured providers and their key caches.
pub struct IdTokens {
    providers: Vec<Provider>,
    http: reqwest::Client,
}

struct Provider {
    config: ProviderConfig,
    keys: Mutex<KeyCache>,
    /// Held while fetching, so concurrent sign-ins share one fetch.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyCache {
    keys: Vec<Key>,
    /// When the keys stop being trusted (the answer's `max-age`).
    fresh_until: Option<Instant>,
    /// When a fetch was last tried, whatever came of it.
    tried_at: Option<Instant>,
    /// Whether that fetch failed (stale keys then serve until a retry).
    failed: bool,
    /// When a fetch last came back without the `kid` it was made for:
    /// unknown kids refetch no sooner than 30 s after that.
    kid_missed_at: Option<Instant>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// What is read from a token before its signature is checked: only
/// which provider to ask.
#[derive(Deserialize)]
struct Issuer {
    iss: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    auth_time: Option<u64>,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
}

impl IdTokens {
    /// The providers from the configuration (none: every token is invalid).
    pub fn new(providers: &[ProviderConfig]) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client for JWKS: {e}"))?;
        Ok(Self {
            providers: providers
                .iter()
                .map(|config| Provider {
                    config: config.clone(),
                    keys: Mutex::new(KeyCache::default()),
                    fetching: tokio::sync::Mutex::new(()),
                })
                .collect(),
            http,
        })
    }

    /// Checks a token: signature by a key of its issuer's JWKS, `iss`,
    /// `aud`, `exp`, `iat` and `auth_time` within the clock skew, a
    /// non-empty `sub`.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, IdTokenError> {
        use IdTokenError::Invalid;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(Invalid);
        }
        let Issuer { iss } = jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(token)
            .map_err(|_| Invalid)?;
        let provider = self
            .providers
            .iter()
            .find(|p| p.config.issuer == iss)
            .ok_or(Invalid)?;
        let key = provider
            .key(&self.http, header.kid.as_deref(), header.alg)
            .await?;
        let cfg = &provider.config;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = cfg.clock_skew.as_secs();
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| Invalid)?
            .claims;
        let latest = now_secs().saturating_add(cfg.clock_skew.as_secs());
        if claims.iat > latest
            || claims.auth_time.is_some_and(|t| t > latest)
            || claims.sub.is_empty()
            || claims.sub.len() > 255
        {
            return Err(Invalid);
        }
        Ok(VerifiedToken {
            provider: cfg.name.clone(),
            issuer: cfg.issuer.clone(),
            subject: claims.sub,
            email: claims
                .email
                .filter(|_| claims.email_verified != Some(false)),
            name: claims.name,
            auto_register: cfg.auto_register,
        })
    }
}

impl Provider {
    /// The key for `kid` and `alg`, fetching the JWKS when there are no
    /// keys yet, when they are past their `max-age`, or when the `kid` is
    /// unknown and the last fetch is 30 s old. A fetch that fails leaves
    /// cached keys in use, and is retried no sooner than 30 s later.
    async fn key(
        &self,
        http: &reqwest::Client,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, IdTokenError> {
        if let Some(key) = self.cached(kid, alg, true) {
            return Ok(key);
        }
        if !self.should_fetch() {
            return self.cached(kid, alg, false).ok_or(IdTokenError::Invalid);
        }
        let _fetching = self.fetching.lock().await;
        // Someone else may have fetched while this one waited.
        if let Some(key) = self.cached(kid, alg, true) {
            return Ok(key);
        }
        if self.should_fetch() {
            let fetched = fetch(http, &self.config.jwks_url).await;
            let mut cache = self.lock();
            cache.tried_at = Some(Instant::now());
            cache.failed = fetched.is_err();
            match fetched {
                Ok((keys, lifetime)) => {
                    cache.keys = keys;
                    cache.fresh_until = Some(Instant::now() + lifetime);
                    if find(&cache.keys, kid, alg).is_none() {
                        cache.kid_missed_at = cache.tried_at;
                    }
                }
                Err(e) => {
                    tracing::warn!(provider = %self.config.name, error = %e, "JWKS fetch failed");
                    if cache.keys.is_empty() {
                        return Err(IdTokenError::Unavailable(e));
                    }
                }
            }
        }
        self.cached(kid, alg, false).ok_or(IdTokenError::Invalid)
    }

    /// A matching key; with `fresh_only`, only from keys within their
    /// lifetime (stale keys serve while the JWKS cannot be reached).
    fn cached(&self, kid: Option<&str>, alg: Algorithm, fresh_only: bool) -> Option<DecodingKey> {
        let cache = self.lock();
        let fresh = cache.fresh_until.is_some_and(|t| Instant::now() < t);
        if fresh_only && !fresh {
            return None;
        }
        find(&cache.keys, kid, alg)
    }

    /// Called when no fresh key matched: with no keys, always; with
    /// stale keys, unless the last try failed under 30 s ago (they serve
    /// meanwhile); with fresh keys and an unknown `kid` (a rotation, or a
    /// forgery), unless a fetch missed a `kid` under 30 s ago.
    fn should_fetch(&self) -> bool {
        let cache = self.lock();
        let fresh = cache.fresh_until.is_some_and(|t| Instant::now() < t);
        let long_ago =
            |at: Option<Instant>| at.is_none_or(|t| t.elapsed() >= REFETCH_AT_MOST_EVERY);
        if cache.keys.is_empty() {
            true
        } else if !fresh {
            !cache.failed || long_ago(cache.tried_at)
        } else {
            long_ago(cache.kid_missed_at)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// GETs a JWKS and keeps the keys this module may use: RSA keys for
/// RS256, P-256 keys for ES256 (a key's own `alg`, if it names another,
/// rules it out). Returns them with how long to trust them.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<(Vec<Key>, Duration), String> {
    let mut res = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("HTTP {}", res.status()));
    }
    let lifetime = res
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age)
        .unwrap_or(DEFAULT_KEY_LIFETIME);
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err("the JWKS is larger than 256 KiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys = set
        .keys
        .iter()
        .filter_map(|jwk| {
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => return None,
            };
            let named = jwk.common.key_algorithm;
            let allowed = match alg {
                Algorithm::RS256 => KeyAlgorithm::RS256,
                _ => KeyAlgorithm::ES256,
            };
            if named.is_some_and(|a| a != allowed) {
                return None;
            }
            Some(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key: DecodingKey::from_jwk(jwk).ok()?,
            })
        })
        .collect();
    Ok((
        keys,
        lifetime.clamp(Duration::from_secs(1), Duration::from_secs(86_400)),
    ))
}

/// The key a token names (by `kid`, or any of its algorithm without one).
fn find(keys: &[Key], kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    keys.iter()
        .find(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
        .map(|k| k.key.clone())
}

/// `max-age` from a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|part| {
        let secs = part.trim().strip_prefix("max-age=")?;
        secs.trim().parse().ok().map(Duration::from_secs)
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=19765, must-revalidate"),
            Some(Duration::from_secs(19765))
        );
        assert_eq!(max_age("no-cache"), None);
    }
}
