//! The provider's signing keys: one RS256 key (what every relying party
//! accepts) and one ES256 key, generated on first start and kept in the
//! store, so every instance on a Redis signs alike. Private keys are
//! sealed under a key derived from the server secret. A rotation makes a
//! new pair current and keeps the old one published until every token it
//! signed has expired.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::OidcError;
use crate::auth::mfa::FactorKeys;
use crate::config::SigningAlg;
use crate::domain::UserId;
use crate::store::{now_ms, Store, TicketKey, TicketKind, TicketRecord};

/// Where the key set is kept.
const KEYS: TicketKey = TicketKey::Id(TicketKind::OidcKeys, [0; 32]);
/// The key set's record lives as long as the store.
const FOREVER_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;
/// How long an instance signs with what it read before reading again, so
/// a rotation on one instance reaches the others.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// The sealing key's AAD: keys belong to no user.
const NOBODY: UserId = UserId::from_u64(0);

/// One signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KeyRecord {
    /// `kid`: random, so relying parties' caches tell keys apart.
    pub kid: String,
    /// RS256 or ES256.
    pub es256: bool,
    /// The private key's DER (PKCS#1 for RSA, PKCS#8 for P-256), sealed.
    pub sealed_der: Vec<u8>,
    /// Unix millis.
    pub created_ms: u64,
    /// Unix millis it stopped signing (0: current). Published until every
    /// token it signed has expired.
    pub retired_ms: u64,
}

impl KeyRecord {
    /// Whether it is still published at `now`: current, or retired less
    /// than `keep` ago.
    fn published(&self, now: u64, keep: u64) -> bool {
        self.retired_ms == 0 || self.retired_ms.saturating_add(keep) > now
    }
}

/// Every key published, current ones included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KeySetRecord {
    pub keys: Vec<KeyRecord>,
}

impl crate::store::codec::Record for KeySetRecord {}

/// A key ready to sign or check.
pub(super) struct LiveKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub jwk: Jwk,
    pub current: bool,
}

/// The keys as this instance last read them.
pub(super) struct Keys {
    store: Store,
    seal: FactorKeys,
    /// How long after its retirement a key is still published: the
    /// longest any token lives.
    keep_retired: Duration,
    cached: Mutex<Option<(Instant, std::sync::Arc<Vec<LiveKey>>)>>,
}

impl Keys {
    /// Reads the key set, making one if the store has none (of two
    /// instances starting at once, one's set is kept by both).
    pub async fn load(
        store: Store,
        seal: FactorKeys,
        keep_retired: Duration,
    ) -> Result<Self, OidcError> {
        let keys = Self {
            store,
            seal,
            keep_retired,
            cached: Mutex::new(None),
        };
        keys.fresh().await?;
        Ok(keys)
    }

    /// The keys to sign and check with, read again once `FRESH_FOR` has
    /// passed.
    pub async fn live(&self) -> Result<std::sync::Arc<Vec<LiveKey>>, OidcError> {
        if let Some((at, keys)) = &*self.lock() {
            if at.elapsed() < FRESH_FOR {
                return Ok(keys.clone());
            }
        }
        self.fresh().await
    }

    /// The keys as the store has them now (JWKS answers with these).
    pub async fn fresh(&self) -> Result<std::sync::Arc<Vec<LiveKey>>, OidcError> {
        let record = match self.store.ticket(&KEYS).await? {
            Some(t) => decode(&t)?,
            None => {
                let set = KeySetRecord {
                    keys: self.new_pair()?,
                };
                let made = ticket(&set);
                if !self.store.swap_ticket(&KEYS, None, Some(&made)).await? {
                    // Another instance made its pair first: use that.
                    let theirs = self.store.ticket(&KEYS).await?;
                    decode(theirs.as_ref().ok_or_else(|| {
                        OidcError::Unexpected("the signing keys vanished".into())
                    })?)?
                } else {
                    // Durable before anything is signed with it.
                    self.store.commit_durably().await?;
                    set
                }
            }
        };
        let live = std::sync::Arc::new(self.open(&record)?);
        *self.lock() = Some((Instant::now(), live.clone()));
        Ok(live)
    }

    /// Makes a new pair current and retires the old one; drops keys
    /// retired longer ago than any token lives. Answers the new `kid`s.
    pub async fn rotate(&self) -> Result<Vec<String>, OidcError> {
        loop {
            let old = self.store.ticket(&KEYS).await?;
            let mut set = match &old {
                Some(t) => decode(t)?,
                None => KeySetRecord::default(),
            };
            let now = now_ms();
            let keep = crate::auth::millis(self.keep_retired);
            // Keys past their time, and keys no secret here opens (they
            // cannot sign, and nobody can check what they signed).
            set.keys.retain(|k| {
                k.published(now, keep) && self.seal.open(NOBODY, &k.sealed_der).is_some()
            });
            for k in &mut set.keys {
                if k.retired_ms == 0 {
                    k.retired_ms = now;
                }
            }
            let pair = self.new_pair()?;
            let kids = pair.iter().map(|k| k.kid.clone()).collect();
            set.keys.splice(0..0, pair);
            let new = ticket(&set);
            if self
                .store
                .swap_ticket(&KEYS, old.as_ref(), Some(&new))
                .await?
            {
                self.store.commit_durably().await?;
                *self.lock() = None;
                return Ok(kids);
            }
        }
    }

    fn new_pair(&self) -> Result<Vec<KeyRecord>, OidcError> {
        use p256_keys::pkcs8::EncodePrivateKey;
        use rsa_keys::pkcs1::EncodeRsaPrivateKey;
        let mut rng = rand_core::OsRng;
        let rsa = rsa_keys::RsaPrivateKey::new(&mut rng, 2048)
            .map_err(|e| OidcError::Unexpected(format!("making an RSA key failed: {e}")))?;
        let rsa_der = rsa
            .to_pkcs1_der()
            .map_err(|e| OidcError::Unexpected(format!("encoding the RSA key failed: {e}")))?;
        let ec = p256_keys::ecdsa::SigningKey::random(&mut rng);
        let ec_der = ec
            .to_pkcs8_der()
            .map_err(|e| OidcError::Unexpected(format!("encoding the P-256 key failed: {e}")))?;
        let now = now_ms();
        Ok([(false, rsa_der.as_bytes()), (true, ec_der.as_bytes())]
            .into_iter()
            .map(|(es256, der)| KeyRecord {
                kid: super::b64(&super::random::<12>()),
                es256,
                sealed_der: self.seal.seal(NOBODY, der),
                created_ms: now,
                retired_ms: 0,
            })
            .collect())
    }

    /// The keys that open and parse; one that does not (sealed under a
    /// secret this server no longer has) is left out with a warning, so
    /// `rotate-key` can still replace it.
    fn open(&self, set: &KeySetRecord) -> Result<Vec<LiveKey>, OidcError> {
        let now = now_ms();
        let keep = crate::auth::millis(self.keep_retired);
        let mut live = Vec::new();
        for k in set.keys.iter().filter(|k| k.published(now, keep)) {
            let Some(der) = self.seal.open(NOBODY, &k.sealed_der) else {
                tracing::warn!(kid = %k.kid, "an OIDC signing key does not open with this server secret");
                continue;
            };
            let (alg, encoding) = if k.es256 {
                (Algorithm::ES256, EncodingKey::from_ec_der(&der))
            } else {
                (Algorithm::RS256, EncodingKey::from_rsa_der(&der))
            };
            let mut jwk = Jwk::from_encoding_key(&encoding, alg)
                .map_err(|e| OidcError::Unexpected(format!("a stored key is damaged: {e}")))?;
            jwk.common.key_id = Some(k.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(if k.es256 {
                KeyAlgorithm::ES256
            } else {
                KeyAlgorithm::RS256
            });
            let decoding = DecodingKey::from_jwk(&jwk)
                .map_err(|e| OidcError::Unexpected(format!("a stored key is damaged: {e}")))?;
            live.push(LiveKey {
                kid: k.kid.clone(),
                alg,
                encoding,
                decoding,
                jwk,
                current: k.retired_ms == 0,
            });
        }
        Ok(live)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, std::sync::Arc<Vec<LiveKey>>)>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The current key of `alg` among `keys`.
pub(super) fn signing(keys: &[LiveKey], alg: SigningAlg) -> Option<&LiveKey> {
    let want = match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::ES256 => Algorithm::ES256,
    };
    keys.iter().find(|k| k.current && k.alg == want)
}

/// The JWKS document.
pub(super) fn jwks(keys: &[LiveKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    }
}

fn ticket(set: &KeySetRecord) -> TicketRecord {
    TicketRecord {
        deadline_ms: now_ms().saturating_add(FOREVER_MS),
        body: crate::store::codec::encode(set),
    }
}

fn decode(t: &TicketRecord) -> Result<KeySetRecord, OidcError> {
    crate::store::codec::decode(&t.body)
        .map_err(|e| OidcError::Unexpected(format!("the signing keys' record is damaged: {e}")))
}
