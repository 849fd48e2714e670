//! What the provider signs and checks: ID tokens (OpenID Connect Core 2),
//! access tokens as JWTs (RFC 9068, `typ: at+jwt`, so an API checks them
//! offline against the JWKS), logout tokens, and the claims each scope
//! opens.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::grants::GrantBody;
use super::keys::{signing, LiveKey};
use super::{b64, random, OidcError, Provider, ID_TOKEN_TTL};
use crate::config::{ClientConfig, SigningAlg};
use crate::domain::UserId;
use crate::store::{now_ms, UserRecord};

/// The token endpoint's answer (RFC 6749 5.1, OpenID Connect Core 3.1.3.3).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// An RFC 9068 JWT.
    pub access_token: String,
    /// Always "Bearer".
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// The next refresh token of the grant (rotated on each use).
    pub refresh_token: String,
    /// Signed RS256 unless the client asked for ES256.
    pub id_token: String,
    /// The scopes granted, space-separated.
    pub scope: String,
}

/// RFC 9068's claims, and the session the token hangs off.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub sid: String,
    pub auth_time: u64,
    /// The grant it was issued from (its id, which is no credential):
    /// userinfo and introspection answer for it only while the grant and
    /// its session live.
    pub gid: String,
}

/// What introspection says of a token (RFC 7662 2.2).
#[derive(Debug, Default, Serialize)]
pub struct Introspection {
    /// Whether the token is good now.
    pub active: bool,
    /// The rest only for an active token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sid: Option<String>,
}

/// `sub`: the user id as the API shows it, never reused.
pub(super) fn subject(user: UserId) -> String {
    user.to_string()
}

fn secs(ms: u64) -> u64 {
    ms / 1000
}

impl Provider {
    /// The ID token, access token and answer for a grant just made or
    /// refreshed.
    pub(super) async fn issue(
        &self,
        client: &ClientConfig,
        grant: &GrantBody,
        grant_id: &[u8; 32],
        user: &UserRecord,
        refresh_token: String,
    ) -> Result<TokenResponse, OidcError> {
        let keys = self.keys.live().await?;
        let now = secs(now_ms());
        let ttl = self.config.access_token_ttl.as_secs().max(1);
        let scope = grant.scopes.join(" ");
        let access = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject(user.user_id()),
            aud: client.id.clone(),
            exp: now + ttl,
            iat: now,
            jti: b64(&random::<16>()),
            client_id: client.id.clone(),
            scope: scope.clone(),
            sid: grant.sid.clone(),
            auth_time: secs(grant.auth_time_ms),
            gid: b64(grant_id),
        };
        let access_token = sign(&keys, SigningAlg::RS256, "at+jwt", &access)?;
        let mut id = serde_json::json!({
            "iss": self.issuer,
            "sub": access.sub,
            "aud": client.id,
            "azp": client.id,
            "exp": now + ID_TOKEN_TTL.as_secs(),
            "iat": now,
            "auth_time": access.auth_time,
            "amr": grant.amr.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "sid": grant.sid,
        });
        if let Some(nonce) = &grant.nonce {
            id["nonce"] = nonce.clone().into();
        }
        add_scoped_claims(&mut id, &grant.scopes, user);
        let id_token = sign(&keys, client.id_token_signed_response_alg, "JWT", &id)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token,
            id_token,
            scope,
        })
    }

    /// The claims of a valid access token of this provider (signature,
    /// `typ`, `iss`, expiry) whose grant and session still live.
    pub(super) async fn check_access_token(&self, token: &str) -> Result<AccessClaims, OidcError> {
        let claims = self.check_access_token_offline(token).await?;
        if !self.grant_lives(&claims.gid).await? {
            return Err(OidcError::InvalidToken(
                "The access token was revoked (its session or grant ended).".into(),
            ));
        }
        Ok(claims)
    }

    /// What a resource server checks with the JWKS alone.
    async fn check_access_token_offline(&self, token: &str) -> Result<AccessClaims, OidcError> {
        let bad = || OidcError::InvalidToken("The access token is not valid.".into());
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad())?;
        if header
            .typ
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
            != Some("at+jwt")
        {
            return Err(bad());
        }
        let keys = self.keys_for(&header).await?;
        let key = find_key(&keys, &header).ok_or_else(bad)?;
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|_| bad())
    }

    /// The claims of an ID token this provider signed, expired or not (an
    /// `id_token_hint` may be old): `None` if it is not one.
    pub(super) async fn check_id_token_hint(&self, token: &str) -> Option<HintClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        // An ID token, not an access or logout token this provider signed
        // with the same keys and claims.
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return None;
        }
        let keys = self.keys_for(&header).await.ok()?;
        let key = find_key(&keys, &header)?;
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<HintClaims>(token, &key.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }

    /// The keys to check a token with: as last read, or read again when
    /// its `kid` is not among them (another instance rotated meanwhile).
    async fn keys_for(&self, header: &Header) -> Result<std::sync::Arc<Vec<LiveKey>>, OidcError> {
        let keys = self.keys.live().await?;
        if find_key(&keys, header).is_some() {
            return Ok(keys);
        }
        self.keys.fresh().await
    }

    /// A logout token (Back-Channel Logout 1.0, 2.4) for `client`.
    pub(super) async fn logout_token(
        &self,
        client: &ClientConfig,
        user: UserId,
        sid: &str,
    ) -> Result<String, OidcError> {
        let keys = self.keys.live().await?;
        let now = secs(now_ms());
        let claims = serde_json::json!({
            "iss": self.issuer,
            "sub": subject(user),
            "aud": client.id,
            "iat": now,
            "exp": now + 120,
            "jti": b64(&random::<16>()),
            "sid": sid,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        sign(
            &keys,
            client.id_token_signed_response_alg,
            "logout+jwt",
            &claims,
        )
    }
}

/// What RP-initiated logout reads from an `id_token_hint`.
#[derive(Debug, Deserialize)]
pub(super) struct HintClaims {
    pub sub: String,
    pub aud: Audience,
    #[serde(default)]
    pub sid: Option<String>,
}

/// `aud`: one client or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// The client it names, when it names exactly one.
    pub fn single(&self) -> Option<&str> {
        match self {
            Audience::One(a) => Some(a),
            Audience::Many(v) if v.len() == 1 => Some(&v[0]),
            Audience::Many(_) => None,
        }
    }
}

/// Userinfo's answer: `sub` and the claims the token's scopes open.
pub(super) fn userinfo(scopes: &[String], user: &UserRecord) -> serde_json::Value {
    let mut claims = serde_json::json!({ "sub": subject(user.user_id()) });
    add_scoped_claims(&mut claims, scopes, user);
    claims
}

fn add_scoped_claims(claims: &mut serde_json::Value, scopes: &[String], user: &UserRecord) {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        claims["preferred_username"] = user.username.clone().into();
        claims["name"] = user.username.clone().into();
    }
    if has("email") {
        claims["email"] = user.email.clone().into();
        claims["email_verified"] = user.email_verified.into();
    }
    if has("groups") {
        claims["groups"] = serde_json::json!([user.role.as_str()]);
    }
}

fn find_key<'k>(keys: &'k [LiveKey], header: &Header) -> Option<&'k LiveKey> {
    // Only what we sign with: `alg: none` and HMAC never match a key.
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return None;
    }
    let kid = header.kid.as_deref()?;
    keys.iter().find(|k| k.kid == kid && k.alg == header.alg)
}

fn sign<T: Serialize>(
    keys: &[LiveKey],
    alg: SigningAlg,
    typ: &str,
    claims: &T,
) -> Result<String, OidcError> {
    let key =
        signing(keys, alg).ok_or_else(|| OidcError::Unexpected("no current signing key".into()))?;
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some(typ.into());
    jsonwebtoken::encode(&header, claims, &key.encoding)
        .map_err(|e| OidcError::Unexpected(format!("signing failed: {e}")))
}
