//! Who is calling the token, revocation and introspection endpoints: a
//! confidential client by its secret (HTTP Basic or the form), a public
//! one by its id alone. Secrets are checked against their argon2 hash
//! once; the SHA-256 of a secret that passed is kept in memory and later
//! ones are compared with it in constant time, so a busy token endpoint
//! does not hash at argon2's cost per request. Failures are throttled per
//! client (and per address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use super::{sha256, OidcError, Provider};
use crate::auth::Throttle;
use crate::config::ClientConfig;

/// Bad secrets one client may see within the throttle's window.
const PER_CLIENT: u32 = 20;
/// Bad secrets from one address.
const PER_IP: u32 = 50;

/// What a request to the token endpoint presented.
#[derive(Debug, Default, Clone)]
pub struct ClientAuth {
    /// From Basic, or the form's `client_id`.
    pub id: Option<String>,
    /// From Basic, or the form's `client_secret`.
    pub secret: Option<String>,
    /// Whether it came in an `Authorization: Basic` header (a 401 then
    /// carries `WWW-Authenticate`).
    pub basic: bool,
}

impl ClientAuth {
    /// Reads `Authorization: Basic` (RFC 6749 2.3.1: each part
    /// form-url-encoded) and the form's `client_id` / `client_secret`.
    pub fn from_request(
        authorization: Option<&str>,
        form: &HashMap<String, String>,
    ) -> Result<Self, OidcError> {
        let form_id = form.get("client_id").filter(|s| !s.is_empty()).cloned();
        let form_secret = form.get("client_secret").filter(|s| !s.is_empty()).cloned();
        let Some(header) = authorization else {
            return Ok(Self {
                id: form_id,
                secret: form_secret,
                basic: false,
            });
        };
        let bad = || {
            OidcError::InvalidClient(
                "The Authorization header is not HTTP Basic with client_id:client_secret.".into(),
            )
        };
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(bad)?;
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (id, secret) = (decode(id), decode(secret));
        if form_id.as_ref().is_some_and(|f| *f != id) || form_secret.is_some() {
            return Err(OidcError::InvalidRequest(
                "Use one way of client authentication: HTTP Basic or the form, not both.".into(),
            ));
        }
        Ok(Self {
            id: Some(id),
            secret: Some(secret),
            basic: true,
        })
    }
}

/// The configured clients' secrets as last verified.
pub(super) struct Clients {
    /// client id -> SHA-256 of the secret that last passed argon2.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    throttle: Throttle,
}

impl Clients {
    pub fn new() -> Self {
        Self {
            verified: Mutex::new(HashMap::new()),
            throttle: Throttle::new(PER_CLIENT, PER_IP),
        }
    }
}

impl Provider {
    /// The client `presented` proves to be. A confidential client must
    /// present its secret; a public one presents none (`require_secret`
    /// refuses public clients outright: introspection is for
    /// confidential ones).
    pub async fn authenticate_client(
        &self,
        presented: &ClientAuth,
        ip: IpAddr,
        require_secret: bool,
    ) -> Result<&ClientConfig, OidcError> {
        let unknown = || OidcError::InvalidClient("Client authentication failed.".into());
        let id = presented.id.as_deref().ok_or_else(|| {
            OidcError::InvalidClient(
                "No client_id: authenticate with HTTP Basic or client_id in the form.".into(),
            )
        })?;
        let Some(client) = self.client(id) else {
            // Client ids are not secret (every authorize URL carries one);
            // a guess still counts against its address.
            if presented.secret.is_some() {
                let attempt = self.clients.throttle.begin(id, ip).await;
                if let Ok(attempt) = attempt {
                    attempt.failed();
                }
            }
            return Err(unknown());
        };
        if client.is_public() {
            if require_secret {
                return Err(OidcError::InvalidClient(
                    "Public clients cannot use this endpoint.".into(),
                ));
            }
            return Ok(client);
        }
        let secret = presented.secret.as_deref().ok_or_else(|| {
            OidcError::InvalidClient("This client is confidential: present its secret.".into())
        })?;
        let digest = sha256(secret.as_bytes());
        // The secret that passed before: no argon2, and no throttle, so a
        // client keeps working while someone guesses at its secret.
        if self
            .verified(&client.id)
            .is_some_and(|known| bool::from(known.ct_eq(&digest)))
        {
            return Ok(client);
        }
        let attempt = self
            .clients
            .throttle
            .begin(&client.id, ip)
            .await
            .map_err(OidcError::Throttled)?;
        let (owned, hash) = (secret.as_bytes().to_vec(), client.secret_hash.clone());
        let ok = tokio::task::spawn_blocking(move || crate::auth::verify_blocking(&owned, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            attempt.failed();
            return Err(unknown());
        }
        attempt.succeeded();
        self.clients
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client.id.clone(), digest);
        Ok(client)
    }

    fn verified(&self, id: &str) -> Option<[u8; 32]> {
        self.clients
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
    }
}
