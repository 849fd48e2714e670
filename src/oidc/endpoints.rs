//! The endpoints a client or an API calls directly: token, userinfo,
//! revocation (RFC 7009) and introspection (RFC 7662).

use std::collections::HashMap;
use std::net::IpAddr;

use super::tokens::{userinfo, Introspection, TokenResponse};
use super::{ClientAuth, OidcError, Provider};
use crate::domain::UserId;

impl Provider {
    /// `POST /api/oidc/token`.
    pub async fn token(
        &self,
        presented: &ClientAuth,
        form: &HashMap<String, String>,
        ip: IpAddr,
    ) -> Result<TokenResponse, OidcError> {
        let grant_type = form
            .get("grant_type")
            .filter(|g| !g.is_empty())
            .ok_or_else(|| OidcError::InvalidRequest("grant_type is required.".into()))?;
        if !matches!(grant_type.as_str(), "authorization_code" | "refresh_token") {
            return Err(OidcError::UnsupportedGrantType(format!(
                "grant_type {grant_type:?} is not supported (authorization_code, refresh_token)."
            )));
        }
        let client = self.authenticate_client(presented, ip, false).await?;
        let answer = match grant_type.as_str() {
            "authorization_code" => self.exchange_code(client, form).await,
            _ => {
                let token = form
                    .get("refresh_token")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        OidcError::InvalidRequest("refresh_token is required.".into())
                    })?;
                self.refresh(client, token).await
            }
        };
        // A refresh token given out must survive a crash (so must a
        // family ended for reuse): on disk before the answer, as a login.
        self.auth().store().commit_durably().await?;
        answer
    }

    /// `GET|POST /api/oidc/userinfo`: the claims the access token's scopes
    /// open, for a user who still exists.
    pub async fn userinfo(&self, access_token: &str) -> Result<serde_json::Value, OidcError> {
        let claims = self.check_access_token(access_token).await?;
        let gone = || OidcError::InvalidToken("The access token's user is gone.".into());
        let id = UserId::parse(&claims.sub).ok_or_else(gone)?;
        let user = self.auth().store().user(id).await?.ok_or_else(gone)?;
        let scopes: Vec<String> = claims.scope.split(' ').map(str::to_owned).collect();
        Ok(userinfo(&scopes, &user))
    }

    /// `POST /api/oidc/introspect`, for confidential clients.
    pub async fn introspect(
        &self,
        presented: &ClientAuth,
        form: &HashMap<String, String>,
        ip: IpAddr,
    ) -> Result<Introspection, OidcError> {
        self.authenticate_client(presented, ip, true).await?;
        let token = form
            .get("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OidcError::InvalidRequest("token is required.".into()))?;
        let access = match self.check_access_token(token).await {
            Ok(claims) => Some(claims),
            Err(OidcError::InvalidToken(_)) => None,
            Err(other) => return Err(other),
        };
        if let Some(claims) = access {
            return Ok(Introspection {
                active: true,
                scope: Some(claims.scope),
                client_id: Some(claims.client_id),
                sub: Some(claims.sub),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                iss: Some(claims.iss),
                token_type: Some("access_token"),
                sid: Some(claims.sid),
            });
        }
        if let Some((_, stored, grant)) = self.grant_of(token).await? {
            return Ok(Introspection {
                active: true,
                scope: Some(grant.scopes.join(" ")),
                client_id: Some(grant.client_id),
                sub: Some(super::tokens::subject(UserId::from_u64(grant.user_id))),
                exp: Some(stored.deadline_ms / 1000),
                iat: Some(grant.created_ms / 1000),
                iss: Some(self.issuer.clone()),
                token_type: Some("refresh_token"),
                sid: Some(grant.sid),
            });
        }
        Ok(Introspection::default())
    }

    /// `POST /api/oidc/revoke`: a refresh token's grant ends; anything
    /// else (an access token, which lives minutes, or a token unknown) is
    /// answered the same, as RFC 7009 2.2 asks.
    pub async fn revoke(
        &self,
        presented: &ClientAuth,
        form: &HashMap<String, String>,
        ip: IpAddr,
    ) -> Result<(), OidcError> {
        let client = self.authenticate_client(presented, ip, false).await?;
        let token = form
            .get("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OidcError::InvalidRequest("token is required.".into()))?;
        self.revoke_refresh_token(client, token).await?;
        Ok(self.auth().store().commit_durably().await?)
    }
}
