//! Logout both ways: RP-initiated (the app sends the browser here with
//! an `id_token_hint`) and back-channel (OpenID Back-Channel Logout 1.0:
//! a signed logout token POSTed to each client with a
//! `backchannel_logout_uri` when a session it has tokens of ends).
//!
//! Logout tokens go out from tasks of their own that hold no lock and no
//! store transaction: mod_auth_openidc calls the revocation endpoint
//! before it answers, and would wait on us waiting on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{OidcError, Provider};
use crate::auth::CurrentSession;
use crate::config::ClientConfig;
use crate::domain::UserId;
use crate::store::{Store, StoreEvent};

/// Waits between tries of one logout token; after the last, it is given up.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// Sends logout tokens.
pub(super) struct Sender {
    http: reqwest::Client,
}

impl Sender {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { http }
    }
}

/// What RP-initiated logout does.
#[derive(Debug)]
pub enum LogoutOutcome {
    /// The session ended: go to the client's `post_logout_redirect_uri`
    /// (with its `state`), or show "signed out" (`None`).
    Done {
        /// Where to, if the client named a registered URI.
        redirect: Option<String>,
        /// Whether the browser's own session was the one ended (its
        /// cookie is cleared).
        own_session: bool,
    },
    /// The request cannot be trusted (no valid hint, or a redirect URI not
    /// registered): shown, never redirected.
    Refused {
        /// A sentence for the user.
        message: String,
    },
}

impl Provider {
    /// Answers `GET /api/oidc/logout`.
    pub async fn rp_logout(
        &self,
        query: &HashMap<String, String>,
        current: Option<&CurrentSession>,
    ) -> Result<LogoutOutcome, OidcError> {
        let refused = |message: &str| {
            Ok(LogoutOutcome::Refused {
                message: message.to_owned(),
            })
        };
        let Some(hint) = query.get("id_token_hint").filter(|h| !h.is_empty()) else {
            return refused("The application did not say who is signing out (no id_token_hint); nothing was changed.");
        };
        let Some(claims) = self.check_id_token_hint(hint).await else {
            return refused("The sign-out request could not be verified; nothing was changed.");
        };
        let Some(client) = claims.aud.single().and_then(|id| self.client(id)) else {
            return refused("The sign-out request names no application registered here.");
        };
        if query
            .get("client_id")
            .is_some_and(|c| !c.is_empty() && *c != client.id)
        {
            return refused("client_id does not match the id_token_hint.");
        }
        let redirect = match query.get("post_logout_redirect_uri").filter(|u| !u.is_empty()) {
            None => None,
            Some(uri) if client.post_logout_redirect_uris.iter().any(|r| r == uri) => {
                let mut url = url::Url::parse(uri)
                    .map_err(|e| OidcError::Unexpected(format!("a registered URI: {e}")))?;
                if let Some(state) = query.get("state").filter(|s| !s.is_empty()) {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(String::from(url))
            }
            Some(_) => {
                return refused("That post_logout_redirect_uri is not registered for the application; nothing was changed.")
            }
        };
        let Some(user) = UserId::parse(&claims.sub) else {
            return refused("The sign-out request could not be verified; nothing was changed.");
        };
        // The hint's session, if it still lives; without a `sid`, the
        // browser's own session if it is the same user's.
        let mut own_session = false;
        let target = match &claims.sid {
            Some(sid) => self
                .auth()
                .live_sessions_of(user)
                .await?
                .into_iter()
                .find(|(hash, _)| hash.public_id() == *sid)
                .map(|(hash, _)| hash),
            None => current.filter(|c| c.user.user_id() == user).map(|c| c.hash),
        };
        if let Some(hash) = target {
            own_session = current.is_some_and(|c| c.hash == hash);
            self.auth().logout_because(&hash, "rp_logout").await?;
        }
        Ok(LogoutOutcome::Done {
            redirect,
            own_session,
        })
    }

    /// Sends `client` a logout token for the session `sid` of `user`, from
    /// a task of its own, retried; does nothing for a client without a
    /// back-channel URI.
    pub(super) async fn send_backchannel_logout(
        &self,
        client: &ClientConfig,
        user: UserId,
        sid: &str,
    ) {
        if client.backchannel_logout_uri.is_empty() {
            return;
        }
        let token = match self.logout_token(client, user, sid).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(client = %client.id, error = %e, "cannot sign a logout token");
                return;
            }
        };
        let http = self.logout.http.clone();
        let (uri, client_id) = (client.backchannel_logout_uri.clone(), client.id.clone());
        tokio::spawn(async move {
            for (attempt, wait) in std::iter::once(Duration::ZERO).chain(RETRIES).enumerate() {
                tokio::time::sleep(wait).await;
                let sent = http
                    .post(&uri)
                    .form(&[("logout_token", token.as_str())])
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status().is_success() => {
                        tracing::info!(client = %client_id, "back-channel logout delivered");
                        return;
                    }
                    Ok(res) => {
                        tracing::warn!(client = %client_id, status = res.status().as_u16(), attempt, "back-channel logout refused")
                    }
                    Err(e) => {
                        tracing::warn!(client = %client_id, error = %e, attempt, "back-channel logout not delivered")
                    }
                }
            }
            tracing::error!(client = %client_id, "back-channel logout given up");
        });
    }

    /// Follows the store's endings: each session that ends takes its
    /// grants with it (and tells the clients), on whichever instance ended it.
    pub fn follow_store(self: &Arc<Self>, store: &Store) -> JoinHandle<()> {
        let mut events = store.subscribe();
        let provider = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let StoreEvent::Ended(hash) = event {
                    if let Err(e) = provider.session_ended(&hash).await {
                        tracing::warn!(error = %e, "ending a session's OIDC grants failed");
                    }
                }
            }
        })
    }
}
