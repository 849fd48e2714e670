//! "Sign in with sessiond": an OpenID Connect provider. A layer of its own
//! above `auth` (which says who is signed in, and how) and below `http`:
//! codes, grants (refresh-token families) and consents are store records
//! that hang off a session or a user, so every way a session ends also
//! ends what it granted, and the back-channel logout of each client that
//! asked for one follows from the same ending event that closes sockets.
//!
//! The discovery document, the claims and the token shapes are a few
//! serde structs and `jsonwebtoken` calls. `openidconnect` is made for
//! the relying party's side: its signing keys cover RSA and HMAC but not
//! the ES256 clients may ask for, and its discovery type would need a
//! struct of ours for every field past Core (logout, RFC 9207,
//! revocation, introspection), so it is not used here.

mod clients;
mod endpoints;
mod flow;
mod grants;
mod keys;
mod logout;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use rand_core::RngCore;

pub use clients::ClientAuth;
pub use flow::{AuthorizeOutcome, AuthorizeParams, ConsentView, PendingId};
pub use grants::{check_grants, remove_client, AppView};
pub use logout::LogoutOutcome;
pub use tokens::{Introspection, TokenResponse};

use crate::auth::{Auth, AuthError};
use crate::config::{ClientConfig, Config, OidcProviderConfig};
use crate::store::StoreError;

/// How long an ID token is good for: what relying parties check at sign-in.
const ID_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// What the provider answers instead of tokens: each is an error code the
/// OAuth 2.0 and OpenID Connect specs name.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Missing or malformed parameter.
    #[error("{0}")]
    InvalidRequest(String),
    /// Unknown client, or its authentication failed.
    #[error("{0}")]
    InvalidClient(String),
    /// The code or refresh token is not valid (any cause).
    #[error("{0}")]
    InvalidGrant(String),
    /// A grant type the provider does not know.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// The access token is missing, malformed, expired or revoked.
    #[error("{0}")]
    InvalidToken(String),
    /// Too many bad client secrets: try again after this long.
    #[error("too many failed client authentications")]
    Throttled(Duration),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The auth layer failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Anything else; never shown to a client.
    #[error("{0}")]
    Unexpected(String),
}

impl OidcError {
    /// The spec's name for it (`error` in the JSON answer).
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::InvalidRequest(_) => "invalid_request",
            OidcError::InvalidClient(_) => "invalid_client",
            OidcError::InvalidGrant(_) => "invalid_grant",
            OidcError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OidcError::InvalidToken(_) => "invalid_token",
            OidcError::Throttled(_) => "temporarily_unavailable",
            OidcError::Store(StoreError::Unavailable(_)) => "temporarily_unavailable",
            OidcError::Store(_) | OidcError::Auth(_) | OidcError::Unexpected(_) => "server_error",
        }
    }
}

/// The provider: its keys, its clients and the session service it asks.
pub struct Provider {
    auth: Auth,
    config: OidcProviderConfig,
    issuer: String,
    /// The page, where a user signs in or consents.
    page_url: String,
    keys: keys::Keys,
    clients: clients::Clients,
    logout: logout::Sender,
}

impl Provider {
    /// The provider for `config`, or `None` when `[oidc_provider]` is off.
    /// Reads the signing keys, making them on first start.
    pub async fn new(config: &Config, auth: Auth) -> Result<Option<Arc<Self>>, OidcError> {
        if !config.oidc_provider.enabled {
            return Ok(None);
        }
        let p = &config.oidc_provider;
        let keep_retired = ID_TOKEN_TTL.max(p.access_token_ttl) + Duration::from_secs(60);
        let keys =
            keys::Keys::load(auth.store().clone(), auth.provider_key_seal(), keep_retired).await?;
        Ok(Some(Arc::new(Self {
            clients: clients::Clients::new(),
            logout: logout::Sender::new(),
            issuer: config.oidc_issuer(),
            page_url: config.page_url(),
            config: p.clone(),
            keys,
            auth,
        })))
    }

    fn auth(&self) -> &Auth {
        &self.auth
    }

    /// `iss` of everything this provider signs.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client with this id, if configured.
    pub fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.config.client(id)
    }

    /// The discovery document (OpenID Connect Discovery 1.0).
    pub fn discovery(&self) -> serde_json::Value {
        let at = |path: &str| format!("{}{path}", self.issuer);
        serde_json::json!({
            "issuer": self.issuer,
            "authorization_endpoint": at("/api/oidc/authorize"),
            "token_endpoint": at("/api/oidc/token"),
            "userinfo_endpoint": at("/api/oidc/userinfo"),
            "jwks_uri": at("/api/oidc/jwks"),
            "end_session_endpoint": at("/api/oidc/logout"),
            "revocation_endpoint": at("/api/oidc/revoke"),
            "introspection_endpoint": at("/api/oidc/introspect"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": crate::config::KNOWN_SCOPES,
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid",
                "preferred_username", "name", "email", "email_verified", "groups"
            ],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        })
    }

    /// The published keys (JWKS), read again at most every 30 s.
    pub async fn jwks(&self) -> Result<jsonwebtoken::jwk::JwkSet, OidcError> {
        Ok(keys::jwks(&self.keys.live().await?))
    }

    /// Refuses to serve without a current key pair that opens (the
    /// server secret changed without `SESSION_SECRET_OLD`): one line
    /// saying how to recover.
    pub async fn check_keys(&self) -> Result<(), OidcError> {
        let keys = self.keys.fresh().await?;
        let current = [
            crate::config::SigningAlg::RS256,
            crate::config::SigningAlg::ES256,
        ]
        .into_iter()
        .all(|alg| keys::signing(&keys, alg).is_some());
        if current {
            Ok(())
        } else {
            Err(OidcError::Unexpected(
                "the OIDC signing keys do not open with this server secret (was SESSION_SECRET changed without SESSION_SECRET_OLD?); run `sessiond oidc rotate-key` to make new ones".into(),
            ))
        }
    }

    /// Makes a new key pair current; the old one stays published until
    /// what it signed has expired. Answers the new `kid`s.
    pub async fn rotate_keys(&self) -> Result<Vec<String>, OidcError> {
        self.keys.rotate().await
    }
}

/// `N` bytes from the OS.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Unpadded base64url, as JOSE and PKCE write bytes.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256, how codes and refresh tokens are kept.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}
