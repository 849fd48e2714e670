//! The authorization code flow: the request checked (an unknown client or
//! redirect URI is shown, never redirected to), the user sent through the
//! page's sign-in (and second factor) and consent when needed, and a
//! single-use code of 60 s back to the client; then the code traded for
//! tokens, with PKCE (S256) where the request carried a challenge, as a
//! public client's must.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::grants::decode;
use super::tokens::TokenResponse;
use super::{b64, random, sha256, OidcError, Provider};
use crate::auth::CurrentSession;
use crate::config::{ClientConfig, KNOWN_SCOPES};
use crate::domain::{Amr, TokenHash, UserId};
use crate::store::{codec, now_ms, TicketKey, TicketKind, TicketRecord};

/// Codes live this long (milliseconds).
const CODE_MS: u64 = 60_000;
/// A used code is remembered this long, to end what it made if it comes back.
const USED_CODE_MS: u64 = 10 * 60_000;
/// A request waits this long for its user to sign in or consent.
const REQUEST_MS: u64 = 15 * 60_000;
/// Longest `state` or `nonce` kept.
const MAX_ECHO: usize = 2048;

/// The query of `GET /api/oidc/authorize`.
pub type AuthorizeParams = HashMap<String, String>;

/// Where an authorization request goes next.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// A redirect: to the client (a code, or an error it can show), or to
    /// the page (sign in, consent).
    Redirect(String),
    /// A page for the user: the request cannot be answered to any client
    /// (an unknown client, a redirect URI not registered, an expired
    /// request).
    Refused {
        /// A sentence for the user.
        message: String,
    },
}

/// A request waiting in the store, by its id (the page carries it).
#[derive(Debug, Clone, Copy)]
pub struct PendingId(pub [u8; 32]);

impl PendingId {
    /// Reads the id the page sent back.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        let decoded = base16ct::lower::decode(raw, &mut bytes).ok()?;
        (decoded.len() == 32).then_some(Self(bytes))
    }
}

impl std::fmt::Display for PendingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::domain::hex(&self.0))
    }
}

/// An authorization request as checked and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RequestBody {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    /// `prompt=login`, or `max_age` passed: only a sign-in after the
    /// request counts.
    fresh_login: bool,
    /// `prompt=consent`: ask even if consent was given.
    ask_consent: bool,
    /// `prompt=none`: never show a page.
    silent: bool,
    /// `max_age`, seconds.
    max_age: Option<u64>,
    created_ms: u64,
}

impl codec::Record for RequestBody {}

/// An authorization code as stored (by its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CodeBody {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub session: [u8; 32],
    pub user_id: u64,
    pub auth_time_ms: u64,
    pub amr: Vec<Amr>,
}

impl codec::Record for CodeBody {}

/// A used code: the grant it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UsedCode {
    grant: [u8; 32],
}

impl codec::Record for UsedCode {}

/// What the consent screen shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentView {
    /// `client_id`.
    pub client_id: String,
    /// Its display name.
    pub name: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
}

impl Provider {
    /// Answers `GET /api/oidc/authorize`: a new request (its query), or
    /// one resumed after the page's sign-in (`resume=ID`).
    pub async fn authorize(
        &self,
        query: &AuthorizeParams,
        session: Option<CurrentSession>,
    ) -> Result<AuthorizeOutcome, OidcError> {
        let (id, request) = match query.get("resume") {
            Some(raw) => match self.pending(raw).await? {
                Some(found) => found,
                None => return Ok(expired()),
            },
            None => match self.check_request(query)? {
                Ok(request) => (None, request),
                Err(outcome) => return Ok(outcome),
            },
        };
        let Some(client) = self.client(&request.client_id) else {
            return Ok(expired());
        };
        // The config may have changed while the request waited.
        if !client.redirect_uris.contains(&request.redirect_uri) {
            return Ok(expired());
        }
        let session = session.filter(|s| !self.auth().must_enrol(s));
        let signed_in = session.filter(|s| fresh_enough(&request, s));
        let Some(current) = signed_in else {
            if request.silent {
                return Ok(to_client_error(&request, "login_required", self.issuer()));
            }
            let id = self.keep(id, &request).await?;
            return Ok(AuthorizeOutcome::Redirect(format!(
                "{}/?oidc={id}&login=1",
                self.page_url
            )));
        };
        let consented = !request.ask_consent
            && self
                .has_consent(client, current.user.user_id(), &request.scopes)
                .await?;
        if !consented {
            if request.silent {
                return Ok(to_client_error(&request, "consent_required", self.issuer()));
            }
            let id = self.keep(id, &request).await?;
            return Ok(AuthorizeOutcome::Redirect(format!(
                "{}/?oidc={id}&consent=1",
                self.page_url
            )));
        }
        if let Some(id) = id {
            self.auth()
                .store()
                .take_ticket(&TicketKey::Id(TicketKind::OidcRequest, id.0))
                .await?;
        }
        self.code_for(&request, &current).await
    }

    /// What the consent screen shows for a waiting request.
    pub async fn consent_view(&self, raw_id: &str) -> Result<Option<ConsentView>, OidcError> {
        let Some((_, request)) = self.pending(raw_id).await? else {
            return Ok(None);
        };
        let Some(client) = self.client(&request.client_id) else {
            return Ok(None);
        };
        Ok(Some(ConsentView {
            client_id: client.id.clone(),
            name: client.display_name().to_owned(),
            scopes: request.scopes,
        }))
    }

    /// The user's answer on the consent screen: where the browser goes
    /// next (the client, with a code or `access_denied`). `None` if the
    /// request is gone, or the session is not one it can be answered by.
    pub async fn consent(
        &self,
        raw_id: &str,
        approve: bool,
        current: &CurrentSession,
    ) -> Result<Option<String>, OidcError> {
        let Some(id) = PendingId::parse(raw_id) else {
            return Ok(None);
        };
        let key = TicketKey::Id(TicketKind::OidcRequest, id.0);
        let store = self.auth().store();
        let Some(ticket) = store.ticket(&key).await? else {
            return Ok(None);
        };
        let request: RequestBody = decode(&ticket)?;
        let Some(client) = self.client(&request.client_id) else {
            return Ok(None);
        };
        // Checked before it is used up: a session too old for it leaves it
        // waiting for a fresh sign-in.
        if !client.redirect_uris.contains(&request.redirect_uri)
            || !fresh_enough(&request, current)
            || self.auth().must_enrol(current)
        {
            return Ok(None);
        }
        // Single use: of two answers racing, one goes on.
        if store.take_ticket(&key).await?.is_none() {
            return Ok(None);
        }
        if !approve {
            return match to_client_error(&request, "access_denied", self.issuer()) {
                AuthorizeOutcome::Redirect(to) => Ok(Some(to)),
                AuthorizeOutcome::Refused { .. } => Ok(None),
            };
        }
        self.remember_consent(client, current, &request.scopes)
            .await?;
        self.auth().store().commit_durably().await?;
        match self.code_for(&request, current).await? {
            AuthorizeOutcome::Redirect(to) => Ok(Some(to)),
            AuthorizeOutcome::Refused { .. } => Ok(None),
        }
    }

    /// Trades a code for tokens (`grant_type=authorization_code`).
    pub(super) async fn exchange_code(
        &self,
        client: &ClientConfig,
        form: &HashMap<String, String>,
    ) -> Result<TokenResponse, OidcError> {
        let invalid = |why: &str| OidcError::InvalidGrant(why.into());
        let code = form
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OidcError::InvalidRequest("code is required.".into()))?;
        let hash = sha256(code.as_bytes());
        let store = self.auth().store();
        let Some(ticket) = store
            .take_ticket(&TicketKey::Id(TicketKind::OidcCode, hash))
            .await?
        else {
            let used = store
                .take_ticket(&TicketKey::Id(TicketKind::OidcCodeUsed, hash))
                .await?;
            if let Some(used) = used {
                let used: UsedCode = decode(&used)?;
                self.end_grant_of_reused_code(used.grant).await?;
                return Err(invalid(
                    "The code was used already; what it issued is revoked.",
                ));
            }
            return Err(invalid("The code is not valid (unknown, used or expired)."));
        };
        let body: CodeBody = decode(&ticket)?;
        if body.client_id != client.id {
            return Err(invalid("The code was issued to another client."));
        }
        if form.get("redirect_uri") != Some(&body.redirect_uri) {
            return Err(invalid(
                "redirect_uri does not match the authorization request.",
            ));
        }
        match (&body.code_challenge, form.get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                if !valid_verifier(verifier)
                    || !bool::from(
                        b64(&sha256(verifier.as_bytes()))
                            .as_bytes()
                            .ct_eq(challenge.as_bytes()),
                    )
                {
                    return Err(invalid("code_verifier does not match the code_challenge."));
                }
            }
            (Some(_), None) => return Err(invalid("code_verifier is required (PKCE).")),
            (None, Some(_)) => {
                return Err(invalid(
                    "code_verifier given, but the request had no code_challenge.",
                ))
            }
            (None, None) => {}
        }
        let session_hash = TokenHash::from_bytes(body.session);
        let now = now_ms();
        let session = store
            .session(&session_hash)
            .await?
            .filter(|s| s.deadline_ms() > now && s.user_id == body.user_id)
            .ok_or_else(|| invalid("The sessiond session behind the code has ended."))?;
        let user = store
            .user(UserId::from_u64(body.user_id))
            .await?
            .ok_or_else(|| invalid("The user is gone."))?;
        // The grant's id is known before it exists: a second exchange racing
        // this one already finds what to end.
        let grant_id = random::<32>();
        let used = TicketRecord {
            deadline_ms: now.saturating_add(USED_CODE_MS),
            body: codec::encode(&UsedCode { grant: grant_id }),
        };
        store
            .put_ticket(&TicketKey::Id(TicketKind::OidcCodeUsed, hash), &used)
            .await?;
        let (grant, refresh) = self.create_grant(grant_id, &body, &session).await?;
        self.issue(client, &grant, &grant_id, &user, refresh).await
    }

    async fn code_for(
        &self,
        request: &RequestBody,
        current: &CurrentSession,
    ) -> Result<AuthorizeOutcome, OidcError> {
        let code = b64(&random::<32>());
        let body = CodeBody {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scopes: request.scopes.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            session: *current.hash.as_bytes(),
            user_id: current.user.id,
            auth_time_ms: current.session.created_at_ms,
            amr: current.session.amr.clone(),
        };
        let ticket = TicketRecord {
            deadline_ms: now_ms().saturating_add(CODE_MS),
            body: codec::encode(&body),
        };
        self.auth()
            .store()
            .put_ticket(
                &TicketKey::Id(TicketKind::OidcCode, sha256(code.as_bytes())),
                &ticket,
            )
            .await?;
        Ok(AuthorizeOutcome::Redirect(with_params(
            &request.redirect_uri,
            &[
                ("code", Some(code.as_str())),
                ("state", request.state.as_deref()),
                ("iss", Some(self.issuer())),
            ],
        )))
    }

    async fn pending(
        &self,
        raw: &str,
    ) -> Result<Option<(Option<PendingId>, RequestBody)>, OidcError> {
        let Some(id) = PendingId::parse(raw) else {
            return Ok(None);
        };
        let key = TicketKey::Id(TicketKind::OidcRequest, id.0);
        match self.auth().store().ticket(&key).await? {
            None => Ok(None),
            Some(t) => Ok(Some((Some(id), decode(&t)?))),
        }
    }

    async fn keep(
        &self,
        id: Option<PendingId>,
        request: &RequestBody,
    ) -> Result<PendingId, OidcError> {
        if let Some(id) = id {
            return Ok(id);
        }
        let id = PendingId(random::<32>());
        let ticket = TicketRecord {
            deadline_ms: now_ms().saturating_add(REQUEST_MS),
            body: codec::encode(request),
        };
        self.auth()
            .store()
            .put_ticket(&TicketKey::Id(TicketKind::OidcRequest, id.0), &ticket)
            .await?;
        Ok(id)
    }

    /// A new request, checked: `Err` is what to answer instead (a page
    /// for what cannot go back to the client, else the client's error).
    fn check_request(
        &self,
        q: &AuthorizeParams,
    ) -> Result<Result<RequestBody, AuthorizeOutcome>, OidcError> {
        let refused = |message: String| Ok(Err(AuthorizeOutcome::Refused { message }));
        let Some(client_id) = q.get("client_id").filter(|c| !c.is_empty()) else {
            return refused("The request names no application (client_id is missing).".into());
        };
        let Some(client) = self.client(client_id) else {
            return refused(format!("No application {client_id:?} is registered here."));
        };
        let Some(redirect_uri) = q.get("redirect_uri").filter(|r| !r.is_empty()) else {
            return refused("The request has no redirect_uri.".into());
        };
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            return refused(format!(
                "{redirect_uri:?} is not a redirect URI registered for {}.",
                client.display_name()
            ));
        }
        let state = q.get("state").filter(|s| !s.is_empty()).cloned();
        let back = |error: &str, description: &str| {
            Ok(Err(AuthorizeOutcome::Redirect(with_params(
                redirect_uri,
                &[
                    ("error", Some(error)),
                    ("error_description", Some(description)),
                    ("state", state.as_deref()),
                    ("iss", Some(self.issuer())),
                ],
            ))))
        };
        if state.as_ref().is_some_and(|s| s.len() > MAX_ECHO) {
            return back("invalid_request", "state is too long");
        }
        if q.contains_key("request") || q.contains_key("request_uri") {
            return back("request_not_supported", "request objects are not supported");
        }
        match q.get("response_type").map(String::as_str) {
            Some("code") => {}
            None | Some("") => return back("invalid_request", "response_type is required (code)"),
            Some(_) => {
                return back(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                )
            }
        }
        let asked: Vec<&str> = q
            .get("scope")
            .map_or(vec![], |s| s.split(' ').filter(|s| !s.is_empty()).collect());
        if !asked.contains(&"openid") {
            return back("invalid_scope", "scope must include openid");
        }
        if let Some(s) = asked
            .iter()
            .find(|s| KNOWN_SCOPES.contains(s) && !client.scopes.iter().any(|c| c == *s))
        {
            return back(
                "invalid_scope",
                &format!("this application may not ask for {s}"),
            );
        }
        // Scopes nobody here knows are left out, as Core 3.1.2.1 lets us.
        let mut scopes: Vec<String> = Vec::new();
        for s in asked.iter().filter(|s| KNOWN_SCOPES.contains(s)) {
            if !scopes.iter().any(|x| x == s) {
                scopes.push((*s).to_owned());
            }
        }
        let code_challenge = q.get("code_challenge").filter(|c| !c.is_empty()).cloned();
        match (
            &code_challenge,
            q.get("code_challenge_method").map(String::as_str),
        ) {
            (None, _) if client.is_public() => {
                return back(
                    "invalid_request",
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                )
            }
            (Some(_), Some("S256")) => {}
            (Some(_), _) => return back("invalid_request", "code_challenge_method must be S256"),
            (None, _) => {}
        }
        if code_challenge.as_ref().is_some_and(|c| !valid_challenge(c)) {
            return back(
                "invalid_request",
                "code_challenge must be 43 base64url characters (S256)",
            );
        }
        let nonce = q.get("nonce").filter(|n| !n.is_empty()).cloned();
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_ECHO) {
            return back("invalid_request", "nonce is too long");
        }
        let prompt: Vec<&str> = q
            .get("prompt")
            .map_or(vec![], |p| p.split(' ').filter(|s| !s.is_empty()).collect());
        let silent = prompt.contains(&"none");
        if silent && prompt.len() > 1 {
            return back(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            );
        }
        let max_age = match q.get("max_age").filter(|m| !m.is_empty()) {
            None => None,
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => return back("invalid_request", "max_age must be a number of seconds"),
            },
        };
        Ok(Ok(RequestBody {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.clone(),
            scopes,
            state,
            nonce,
            code_challenge,
            fresh_login: prompt.contains(&"login"),
            ask_consent: prompt.contains(&"consent"),
            silent,
            max_age,
            created_ms: now_ms(),
        }))
    }
}

/// Whether `current`'s sign-in satisfies the request: after it, for
/// `prompt=login`; within `max_age`.
fn fresh_enough(request: &RequestBody, current: &CurrentSession) -> bool {
    let signed_in = current.session.created_at_ms;
    if request.fresh_login && signed_in < request.created_ms {
        return false;
    }
    match request.max_age {
        Some(max) => now_ms().saturating_sub(signed_in) <= max.saturating_mul(1000),
        None => true,
    }
}

fn expired() -> AuthorizeOutcome {
    AuthorizeOutcome::Refused {
        message: "This sign-in request has expired or is not valid; go back to the application and start again.".into(),
    }
}

fn to_client_error(request: &RequestBody, error: &str, issuer: &str) -> AuthorizeOutcome {
    AuthorizeOutcome::Redirect(with_params(
        &request.redirect_uri,
        &[
            ("error", Some(error)),
            ("state", request.state.as_deref()),
            ("iss", Some(issuer)),
        ],
    ))
}

/// `uri` with these query parameters added (the registered URI's own kept).
fn with_params(uri: &str, params: &[(&str, Option<&str>)]) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in params {
            if let Some(v) = v {
                pairs.append_pair(k, v);
            }
        }
    }
    url.into()
}

/// RFC 7636 4.1: 43 to 128 of `[A-Za-z0-9-._~]`.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An S256 challenge: SHA-256 in unpadded base64url, 43 characters.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}
