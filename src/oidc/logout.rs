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
    /// No ID token says who is signing out: the user is asked (RP-Initiated
    /// Logout 1.0, section 2), with a form that posts `fields` back to the
    /// confirmation endpoint.
    Confirm {
        /// The asking app's name, when it gave its `client_id`.
        app: Option<String>,
        /// Hidden fields: what the request asked, and the session shown.
        fields: Vec<(&'static str, String)>,
    },
    /// The request cannot be trusted (no valid hint, or a redirect URI not
    /// registered): shown, never redirected.
    Refused {
        /// A sentence for the user.
        message: String,
    },
}

/// A request's app (named by `client_id`, if it was) and where to go
/// after signing out.
type WayBack<'a> = (Option<&'a ClientConfig>, Option<String>);

fn refused(message: &str) -> Result<LogoutOutcome, OidcError> {
    Ok(LogoutOutcome::Refused {
        message: message.to_owned(),
    })
}

impl Provider {
    /// Answers `GET|POST /api/oidc/logout`: with a valid `id_token_hint`
    /// the hint's session ends at once; without one, a signed-in user is
    /// asked first.
    pub async fn rp_logout(
        &self,
        params: &HashMap<String, String>,
        current: Option<&CurrentSession>,
    ) -> Result<LogoutOutcome, OidcError> {
        let Some(hint) = params.get("id_token_hint").filter(|h| !h.is_empty()) else {
            return self.ask_before_logout(params, current);
        };
        let Some(claims) = self.check_id_token_hint(hint).await else {
            return refused("The sign-out request could not be verified; nothing was changed.");
        };
        let Some(client) = claims.aud.single().and_then(|id| self.client(id)) else {
            return refused("The sign-out request names no application registered here.");
        };
        if params
            .get("client_id")
            .is_some_and(|c| !c.is_empty() && *c != client.id)
        {
            return refused("client_id does not match the id_token_hint.");
        }
        let redirect = match logout_redirect(Some(client), params)? {
            Ok(r) => r,
            Err(message) => return refused(message),
        };
        let Some(user) = UserId::parse(&claims.sub) else {
            return refused("The sign-out request could not be verified; nothing was changed.");
        };
        // The hint's session, if it still lives; without a `sid`, the
        // browser's own if it is the same user's.
        let target = match &claims.sid {
            Some(sid) => self.session_known_as(user, sid).await?,
            None => current.filter(|c| c.user.user_id() == user).map(|c| c.hash),
        };
        let mut own_session = false;
        if let Some(hash) = target {
            own_session = current.is_some_and(|c| c.hash == hash);
            self.auth().logout_because(&hash, "rp_logout").await?;
        }
        Ok(LogoutOutcome::Done {
            redirect,
            own_session,
        })
    }

    /// No hint: a signed-in browser is asked; one signed in to nothing
    /// goes straight back (there is nothing to end).
    fn ask_before_logout(
        &self,
        params: &HashMap<String, String>,
        current: Option<&CurrentSession>,
    ) -> Result<LogoutOutcome, OidcError> {
        let (client, redirect) = match self.way_back(params)? {
            Ok(found) => found,
            Err(message) => return refused(message),
        };
        let Some(current) = current else {
            return Ok(LogoutOutcome::Done {
                redirect,
                own_session: false,
            });
        };
        let mut fields = vec![("sid", current.hash.public_id())];
        for name in ["client_id", "post_logout_redirect_uri", "state"] {
            if let Some(value) = params.get(name).filter(|v| !v.is_empty()) {
                fields.push((name, value.clone()));
            }
        }
        Ok(LogoutOutcome::Confirm {
            app: client.map(|c| c.display_name().to_owned()),
            fields,
        })
    }

    /// Answers the confirmation form: ends the browser's session if it is
    /// the one the user was shown (`sid`; another is asked about again),
    /// then goes where the app asked.
    pub async fn confirm_logout(
        &self,
        params: &HashMap<String, String>,
        current: Option<&CurrentSession>,
    ) -> Result<LogoutOutcome, OidcError> {
        let (_, redirect) = match self.way_back(params)? {
            Ok(found) => found,
            Err(message) => return refused(message),
        };
        match current {
            // Signed in since the page was shown: asked again, about
            // this session.
            Some(c) if params.get("sid") != Some(&c.hash.public_id()) => {
                self.ask_before_logout(params, current)
            }
            Some(c) => {
                self.auth().logout_because(&c.hash, "rp_logout").await?;
                Ok(LogoutOutcome::Done {
                    redirect,
                    own_session: true,
                })
            }
            None => Ok(LogoutOutcome::Done {
                redirect,
                own_session: false,
            }),
        }
    }

    /// For a request without a hint: the client it names by `client_id`
    /// (if any) and where to go after, or why it is refused.
    fn way_back(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<Result<WayBack<'_>, &'static str>, OidcError> {
        let client = match params.get("client_id").filter(|c| !c.is_empty()) {
            None => None,
            Some(id) => match self.client(id) {
                Some(c) => Some(c),
                None => {
                    return Ok(Err(
                        "The sign-out request names no application registered here.",
                    ))
                }
            },
        };
        Ok(logout_redirect(client, params)?.map(|to| (client, to)))
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
    /// grants with it (and tells the clients), on whichever instance ended
    /// it. Endings no event told of are swept up at start and whenever
    /// events flow again after a gap.
    pub fn follow_store(self: &Arc<Self>, store: &Store) -> JoinHandle<()> {
        let mut events = store.subscribe();
        let provider = self.clone();
        tokio::spawn(async move {
            provider.sweep().await;
            while let Some(event) = events.recv().await {
                match event {
                    StoreEvent::Ended(hash) => {
                        if let Err(e) = provider.session_ended(&hash).await {
                            tracing::warn!(error = %e, "ending a session's OIDC grants failed");
                        }
                    }
                    StoreEvent::Restored => provider.sweep().await,
                    _ => {}
                }
            }
        })
    }

    async fn sweep(&self) {
        match self.sweep_ended_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sessions = n,
                "ended the OIDC grants of sessions that ended unseen"
            ),
            Err(e) => tracing::warn!(error = %e, "sweeping ended sessions' OIDC grants failed"),
        }
    }
}

/// Where to send the browser after a sign-out: `post_logout_redirect_uri`
/// (with `state`) when it is one of `client`'s, exactly; none without it.
/// A URI from no known client, or not one of its own, is refused (the
/// inner `Err`), never followed.
fn logout_redirect(
    client: Option<&ClientConfig>,
    params: &HashMap<String, String>,
) -> Result<Result<Option<String>, &'static str>, OidcError> {
    let Some(uri) = params
        .get("post_logout_redirect_uri")
        .filter(|u| !u.is_empty())
    else {
        return Ok(Ok(None));
    };
    let Some(client) = client else {
        return Ok(Err("A post_logout_redirect_uri needs the application named (client_id or id_token_hint); nothing was changed."));
    };
    if !client.post_logout_redirect_uris.iter().any(|r| r == uri) {
        return Ok(Err("That post_logout_redirect_uri is not registered for the application; nothing was changed."));
    }
    let mut url = url::Url::parse(uri)
        .map_err(|e| OidcError::Unexpected(format!("a registered URI: {e}")))?;
    if let Some(state) = params.get("state").filter(|s| !s.is_empty()) {
        url.query_pairs_mut().append_pair("state", state);
    }
    Ok(Ok(Some(String::from(url))))
}
