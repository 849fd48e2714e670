//! `[oidc_provider]`: "sign in with sessiond", an OpenID Connect provider
//! for the apps an operator lists as clients.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, ConfigError};

/// The provider and its clients; off unless `enabled`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Whether the provider's routes answer (404 otherwise).
    pub enabled: bool,
    /// What tokens name as `iss`; empty: `server.public_url` (or the
    /// listening address). Must be https in production: relying parties
    /// fetch keys from it.
    pub issuer: String,
    /// How long an access token lets an API in without asking.
    #[serde(deserialize_with = "duration")]
    pub access_token_ttl: Duration,
    /// How long a refresh token lives, never past its session.
    #[serde(deserialize_with = "duration")]
    pub refresh_token_ttl: Duration,
    /// The relying parties.
    pub clients: Vec<ClientConfig>,
}

impl Default for OidcProviderConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            issuer: String::new(),
            access_token_ttl: Duration::from_secs(5 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            clients: Vec::new(),
        }
    }
}

/// One relying party, as `sessiond oidc client add` prints it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `client_id`.
    pub id: String,
    /// What the consent screen and "apps with access" call it; empty: the id.
    #[serde(default)]
    pub name: String,
    /// argon2id PHC string of the secret; empty: a public client, which
    /// must use PKCE and has no secret to present.
    #[serde(default)]
    pub secret_hash: String,
    /// Where codes may be sent: matched exactly, no prefix, no wildcard.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes it may ask for.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// When the user is asked.
    #[serde(default)]
    pub consent: Consent,
    /// OpenID Back-Channel Logout 1.0: where logout tokens are POSTed
    /// when a session it has tokens of ends; empty: none.
    #[serde(default)]
    pub backchannel_logout_uri: String,
    /// How its ID tokens are signed: "RS256" (what every relying party
    /// accepts) or "ES256".
    #[serde(default)]
    pub id_token_signed_response_alg: SigningAlg,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email", "groups"]
        .map(String::from)
        .to_vec()
}

impl ClientConfig {
    /// Whether it has no secret (and must prove PKCE instead).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_empty()
    }

    /// The name a person sees.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

/// When a user is asked before a client gets their identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    /// Never: a first-party app the operator vouches for.
    Implicit,
    /// The first time; remembered until the user revokes it.
    #[default]
    Once,
    /// Every sign-in.
    Always,
}

/// A signing algorithm the provider offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256: the one OIDC requires of everyone.
    #[default]
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

/// The scopes the provider knows.
pub const KNOWN_SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];

impl OidcProviderConfig {
    /// One line naming the key when a client cannot work.
    pub(super) fn validate(&self, production: bool) -> Result<(), ConfigError> {
        let bad = |key: String, message: String| {
            Err(ConfigError::Invalid {
                origin: "config".into(),
                key,
                message,
            })
        };
        if !self.enabled {
            return Ok(());
        }
        if !self.issuer.is_empty() {
            match url::Url::parse(&self.issuer) {
                Err(e) => return bad("oidc_provider.issuer".into(), format!("not a URL ({e})")),
                Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                    return bad(
                        "oidc_provider.issuer".into(),
                        "must have no query or fragment".into(),
                    )
                }
                Ok(u) if production && u.scheme() != "https" => return bad(
                    "oidc_provider.issuer".into(),
                    "must be an https URL in production (relying parties fetch the keys from it)"
                        .into(),
                ),
                Ok(_) => {}
            }
        }
        if self.access_token_ttl < Duration::from_secs(1) {
            return bad(
                "oidc_provider.access_token_ttl".into(),
                "must be at least a second".into(),
            );
        }
        if self.refresh_token_ttl < Duration::from_secs(1) {
            return bad(
                "oidc_provider.refresh_token_ttl".into(),
                "must be at least a second".into(),
            );
        }
        for (i, c) in self.clients.iter().enumerate() {
            let key = |k: &str| format!("oidc_provider.clients[{i}].{k}");
            if c.id.is_empty() || !c.id.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(key("id"), "must be non-empty printable ASCII".into());
            }
            if self.clients[..i].iter().any(|e| e.id == c.id) {
                return bad(key("id"), format!("{:?} is listed twice", c.id));
            }
            if !c.secret_hash.is_empty() && argon2_rust::decode_phc(&c.secret_hash).is_err() {
                return bad(
                    key("secret_hash"),
                    "is not a PHC string; paste what `sessiond oidc client add` printed".into(),
                );
            }
            if c.redirect_uris.is_empty() {
                return bad(key("redirect_uris"), "must list at least one URI".into());
            }
            for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
                if let Err(why) = check_redirect(uri) {
                    return bad(key("redirect_uris"), format!("{uri:?}: {why}"));
                }
            }
            if let Some(s) = c
                .scopes
                .iter()
                .find(|s| !KNOWN_SCOPES.contains(&s.as_str()))
            {
                return bad(
                    key("scopes"),
                    format!(
                        "{s:?} is not a scope sessiond offers ({})",
                        KNOWN_SCOPES.join(", ")
                    ),
                );
            }
            if !c.scopes.iter().any(|s| s == "openid") {
                return bad(key("scopes"), "must include \"openid\"".into());
            }
            if !c.backchannel_logout_uri.is_empty() {
                if let Err(why) = check_redirect(&c.backchannel_logout_uri) {
                    return bad(key("backchannel_logout_uri"), why);
                }
            }
        }
        Ok(())
    }

    /// The client with this id.
    pub fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.id == id)
    }
}

/// A redirect target: an absolute http(s) URL without a fragment (RFC
/// 6749 3.1.2).
fn check_redirect(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.fragment().is_some() {
        return Err("must have no fragment".into());
    }
    Ok(())
}

impl super::Config {
    /// The provider's `iss`: `oidc_provider.issuer`, else the page's URL.
    pub fn oidc_issuer(&self) -> String {
        match self.oidc_provider.issuer.trim_end_matches('/') {
            "" => self.page_url(),
            issuer => issuer.to_owned(),
        }
    }
}
