//! The OpenID Connect provider's routes: discovery, keys, the code flow
//! with its consent screen, the token, userinfo, revocation and
//! introspection endpoints, RP-initiated logout, and "apps with access" on
//! the account. Off (404) unless `[oidc_provider] enabled`.
//!
//! The endpoints a client calls answer errors as OAuth 2.0 does (`{"error",
//! "error_description"}`); the account's routes answer in the API's own
//! shape; what a browser is sent to answers a page or a redirect.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::filters::{
    check_origin, client_info, get_or_head, json_body, raw_body, session_token, with_session,
    with_state,
};
use super::views::json;
use super::State;
use crate::auth::{ClientInfo, CurrentSession, SessionToken};
use crate::oidc::{AuthorizeOutcome, ClientAuth, LogoutOutcome, OidcError, Provider};

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = state.config.server.max_body_bytes;
    let discovery = warp::path!(".well-known" / "openid-configuration")
        .and(get_or_head())
        .and(provider(state.clone()))
        .map(|p: Arc<Provider>| {
            with_cache(json(StatusCode::OK, &p.discovery()), "public, max-age=300")
        });
    let jwks = warp::path!("api" / "oidc" / "jwks")
        .and(get_or_head())
        .and(provider(state.clone()))
        .and_then(|p: Arc<Provider>| async move {
            Ok::<_, Rejection>(match p.jwks().await {
                Ok(set) => with_cache(json(StatusCode::OK, &set), "public, max-age=300"),
                Err(e) => oauth_error(&e, false),
            })
        });
    let authorize = warp::path!("api" / "oidc" / "authorize")
        .and(get_or_head())
        .and(provider(state.clone()))
        .and(with_state(state.clone()))
        .and(session_token(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(authorize);
    let consent_view = warp::path!("api" / "oidc" / "consent")
        .and(get_or_head())
        .and(provider(state.clone()))
        .and(with_session(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(consent_view);
    let consent = warp::path!("api" / "oidc" / "consent")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(provider(state.clone()))
        .and(with_session(state.clone()))
        .and(json_body::<ConsentBody>(limit))
        .and_then(consent);
    let token = warp::path!("api" / "oidc" / "token")
        .and(client_call(state.clone(), limit))
        .and_then(token);
    let userinfo = warp::path!("api" / "oidc" / "userinfo")
        .and(get_or_head().or(warp::post()).unify())
        .and(provider(state.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and(raw_body(limit))
        .and_then(userinfo);
    let revoke = warp::path!("api" / "oidc" / "revoke")
        .and(client_call(state.clone(), limit))
        .and_then(revoke);
    let introspect = warp::path!("api" / "oidc" / "introspect")
        .and(client_call(state.clone(), limit))
        .and_then(introspect);
    let logout = warp::path!("api" / "oidc" / "logout")
        .and(get_or_head())
        .and(provider(state.clone()))
        .and(with_state(state.clone()))
        .and(session_token(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|p, state, token, query| rp_logout(p, state, token, Ok(query), Step::Asked));
    // RP-Initiated Logout 1.0 lets an app post the same request (from its
    // own origin: no Origin check here, the hint is the proof).
    let logout_post = warp::path!("api" / "oidc" / "logout")
        .and(warp::post())
        .and(provider(state.clone()))
        .and(with_state(state.clone()))
        .and(session_token(state.clone()))
        .and(raw_body(limit))
        .and_then(|p, state, token, body: Vec<u8>| {
            rp_logout(p, state, token, parse_form(&body), Step::Posted)
        });
    // The user's answer to "sign out?": from the page this server showed.
    let logout_confirm = warp::path!("api" / "oidc" / "logout" / "confirm")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(provider(state.clone()))
        .and(with_state(state.clone()))
        .and(session_token(state.clone()))
        .and(raw_body(limit))
        .and_then(|p, state, token, body: Vec<u8>| {
            rp_logout(p, state, token, parse_form(&body), Step::Confirmed)
        });
    // The account's list answers with the provider off too (nothing has
    // access then), so the page can always ask.
    let apps = warp::path!("api" / "auth" / "apps")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(|state: State, current: CurrentSession| async move {
            let apps = match &state.oidc {
                Some(p) => p.apps(current.user.user_id()).await?,
                None => Vec::new(),
            };
            Ok::<_, Rejection>(json(StatusCode::OK, &json!({ "apps": apps })))
        });
    let revoke_app = warp::path!("api" / "auth" / "apps" / String)
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(
            |client: String, state: State, current: CurrentSession| async move {
                let revoked = match &state.oidc {
                    Some(p) => p.revoke_app(&current, &client).await?,
                    None => false,
                };
                if revoked {
                    Ok::<_, Rejection>(json(StatusCode::OK, &json!({ "revoked": client })))
                } else {
                    Err(ApiError::not_found(format!(
                        "No app {client:?} has access to your account (see GET /api/auth/apps)."
                    ))
                    .into())
                }
            },
        );
    discovery
        .or(jwks)
        .unify()
        .or(authorize)
        .unify()
        .or(consent_view)
        .unify()
        .or(consent)
        .unify()
        .or(token)
        .unify()
        .or(userinfo)
        .unify()
        .or(revoke)
        .unify()
        .or(introspect)
        .unify()
        .or(logout)
        .unify()
        .or(logout_post)
        .unify()
        .or(logout_confirm)
        .unify()
        .or(apps)
        .unify()
        .or(revoke_app)
        .unify()
        .boxed()
}

/// What a client's POST brings: the provider, the caller's address, its
/// `Authorization` header and the form, read whole up to `limit`.
fn client_call(
    state: State,
    limit: usize,
) -> impl Filter<Extract = (Arc<Provider>, ClientInfo, Option<String>, Vec<u8>), Error = Rejection> + Clone
{
    warp::post()
        .and(provider(state.clone()))
        .and(client_info(state))
        .and(warp::header::optional::<String>("authorization"))
        .and(raw_body(limit))
}

/// The provider, or 404 when it is off.
fn provider(state: State) -> impl Filter<Extract = (Arc<Provider>,), Error = Rejection> + Clone {
    warp::any().and_then(move || {
        let p = state.oidc.clone();
        async move {
            p.ok_or_else(|| {
                Rejection::from(ApiError::not_found(
                    "The OpenID Connect provider is off; set [oidc_provider] enabled = true.",
                ))
            })
        }
    })
}

async fn authorize(
    p: Arc<Provider>,
    state: State,
    token: Option<SessionToken>,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let current = current(&state, token.as_ref()).await?;
    Ok(match p.authorize(&query, current).await {
        Ok(AuthorizeOutcome::Redirect(to)) => redirect(&to),
        Ok(AuthorizeOutcome::Refused { message }) => {
            page(StatusCode::BAD_REQUEST, "Sign-in refused", &message)
        }
        Err(e) => {
            log_unexpected(&e);
            page(
                status_of(&e),
                "Sign-in failed",
                "Something went wrong on our side; go back to the application and try again.",
            )
        }
    })
}

async fn consent_view(
    p: Arc<Provider>,
    _current: CurrentSession,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let id = query.get("request").map(String::as_str).unwrap_or("");
    match p.consent_view(id).await? {
        Some(view) => Ok(json(StatusCode::OK, &view)),
        None => Err(gone_request().into()),
    }
}

/// The consent screen's answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    request: String,
    approve: bool,
}

async fn consent(
    p: Arc<Provider>,
    current: CurrentSession,
    body: ConsentBody,
) -> Result<Response, Rejection> {
    match p.consent(&body.request, body.approve, &current).await? {
        Some(to) => Ok(json(StatusCode::OK, &json!({ "redirect": to }))),
        None => Err(gone_request().into()),
    }
}

fn gone_request() -> ApiError {
    ApiError::not_found(
        "No such sign-in request waits for you (it expired, or was answered); start again from the application.",
    )
}

async fn token(
    p: Arc<Provider>,
    client: ClientInfo,
    authorization: Option<String>,
    body: Vec<u8>,
) -> Result<Response, Rejection> {
    let result = match client_form(authorization.as_deref(), &body) {
        Ok((form, presented)) => p.token(&presented, &form, client.ip).await,
        Err(e) => Err(e),
    };
    Ok(answer(result, authorization.is_some()))
}

async fn userinfo(
    p: Arc<Provider>,
    authorization: Option<String>,
    body: Vec<u8>,
) -> Result<Response, Rejection> {
    let found = async {
        let from_header = authorization
            .as_deref()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned());
        let token = match from_header {
            Some(t) => t,
            None => parse_form(&body)?.remove("access_token").ok_or_else(|| {
                OidcError::InvalidToken(
                    "An access token is required (Authorization: Bearer).".into(),
                )
            })?,
        };
        p.userinfo(&token).await
    };
    Ok(answer(found.await, false))
}

async fn revoke(
    p: Arc<Provider>,
    client: ClientInfo,
    authorization: Option<String>,
    body: Vec<u8>,
) -> Result<Response, Rejection> {
    let result = match client_form(authorization.as_deref(), &body) {
        Ok((form, presented)) => p
            .revoke(&presented, &form, client.ip)
            .await
            .map(|()| json!({})),
        Err(e) => Err(e),
    };
    Ok(answer(result, authorization.is_some()))
}

async fn introspect(
    p: Arc<Provider>,
    client: ClientInfo,
    authorization: Option<String>,
    body: Vec<u8>,
) -> Result<Response, Rejection> {
    let result = match client_form(authorization.as_deref(), &body) {
        Ok((form, presented)) => p.introspect(&presented, &form, client.ip).await,
        Err(e) => Err(e),
    };
    Ok(answer(result, authorization.is_some()))
}

/// What a client's call carries: its form, and how it authenticated.
fn client_form(
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(HashMap<String, String>, ClientAuth), OidcError> {
    let form = parse_form(body)?;
    let presented = ClientAuth::from_request(authorization, &form)?;
    Ok((form, presented))
}

/// A client endpoint's answer: 200 with `found`, never cached, or the
/// OAuth error (`basic`: the client tried HTTP Basic).
fn answer<T: serde::Serialize>(result: Result<T, OidcError>, basic: bool) -> Response {
    match result {
        Ok(found) => no_store(json(StatusCode::OK, &found)),
        Err(e) => oauth_error(&e, basic),
    }
}

/// Which request of RP-initiated logout this is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The app's, by GET.
    Asked,
    /// The app's, posted (cross-site, so without a `SameSite` cookie).
    Posted,
    /// The user's answer on the confirmation page.
    Confirmed,
}

async fn rp_logout(
    p: Arc<Provider>,
    state: State,
    token: Option<SessionToken>,
    params: Result<HashMap<String, String>, OidcError>,
    step: Step,
) -> Result<Response, Rejection> {
    let params = match params {
        Ok(params) => params,
        Err(e) => {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                "Sign-out refused",
                &e.to_string(),
            ))
        }
    };
    // Without a hint, only the browser's cookie says who is signing out,
    // and a cross-site post does not carry it: the same request again as
    // a GET, which does.
    if step == Step::Posted && params.get("id_token_hint").is_none_or(|h| h.is_empty()) {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let mut res = redirect(&format!("/api/oidc/logout?{query}"));
        *res.status_mut() = StatusCode::SEE_OTHER;
        return Ok(res);
    }
    let current = current(&state, token.as_ref()).await?;
    let outcome = match step {
        Step::Asked | Step::Posted => p.rp_logout(&params, current.as_ref()).await,
        Step::Confirmed => p.confirm_logout(&params, current.as_ref()).await,
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            log_unexpected(&e);
            return Ok(page(
                status_of(&e),
                "Sign-out failed",
                "Something went wrong on our side; try again.",
            ));
        }
    };
    Ok(match outcome {
        LogoutOutcome::Refused { message } => {
            page(StatusCode::BAD_REQUEST, "Sign-out refused", &message)
        }
        LogoutOutcome::Confirm { app, fields } => confirm_page(app.as_deref(), &fields),
        LogoutOutcome::Done {
            redirect: to,
            own_session,
        } => {
            let mut res = match to {
                Some(to) => redirect(&to),
                None => page(
                    StatusCode::OK,
                    "Signed out",
                    "You are signed out of sessiond.",
                ),
            };
            if own_session {
                if let Ok(v) = HeaderValue::from_str(&state.auth.cookies().clear()) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
    })
}

/// The browser's live session, if its cookie names one.
async fn current(
    state: &State,
    token: Option<&SessionToken>,
) -> Result<Option<CurrentSession>, Rejection> {
    match token {
        None => Ok(None),
        Some(token) => Ok(state
            .auth
            .authenticate(token)
            .await
            .map_err(ApiError::from)?),
    }
}

/// `application/x-www-form-urlencoded`, each parameter at most once
/// (RFC 6749 3.1).
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OidcError> {
    let mut form = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if form
            .insert(k.clone().into_owned(), v.into_owned())
            .is_some()
        {
            return Err(OidcError::InvalidRequest(format!("{k} is given twice.")));
        }
    }
    Ok(form)
}

fn status_of(e: &OidcError) -> StatusCode {
    match e {
        OidcError::InvalidClient(_) | OidcError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
        OidcError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        OidcError::Store(crate::store::StoreError::Unavailable(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        OidcError::Store(_) | OidcError::Auth(_) | OidcError::Unexpected(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The OAuth 2.0 error answer (RFC 6749 5.2; RFC 6750 3 for bearer tokens).
fn oauth_error(e: &OidcError, basic: bool) -> Response {
    log_unexpected(e);
    let status = status_of(e);
    let description = match status {
        StatusCode::INTERNAL_SERVER_ERROR => {
            "Something went wrong on our side; try again.".to_owned()
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            "Storage is unavailable right now; try again shortly.".to_owned()
        }
        _ => e.to_string(),
    };
    let mut res = no_store(json(
        status,
        &json!({ "error": e.code(), "error_description": description }),
    ));
    let h = res.headers_mut();
    match e {
        OidcError::InvalidClient(_) if basic => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sessiond\""),
            );
        }
        OidcError::InvalidToken(_) => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        OidcError::Throttled(wait) => {
            let secs = wait.as_secs().max(1);
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        _ => {}
    }
    res
}

fn log_unexpected(e: &OidcError) {
    if status_of(e).is_server_error() {
        tracing::error!(error = %e, "OIDC request failed");
    }
}

fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

fn with_cache(mut res: Response, policy: &'static str) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    res
}

fn redirect(to: &str) -> Response {
    let mut res = Response::new(Default::default());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    no_store(res)
}

/// A small page for the browser: what happened, and nothing to click that
/// could lead to an unregistered address.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!("<p>{}</p>", escape(message));
    html(status, title, &body)
}

/// "Sign out?": one button that posts the request back, confirmed, and a
/// way to stay signed in.
fn confirm_page(app: Option<&str>, fields: &[(&str, String)]) -> Response {
    let asks = match app {
        Some(app) => format!("{} asks to sign you out of sessiond.", escape(app)),
        None => "An application asks to sign you out of sessiond.".to_owned(),
    };
    let hidden: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            )
        })
        .collect();
    let body = format!(
        "<p>{asks}</p><form method=\"post\" action=\"/api/oidc/logout/confirm\">{hidden}\
         <button type=\"submit\">Sign out</button></form><p><a href=\"/\">Stay signed in</a></p>"
    );
    html(StatusCode::OK, "Sign out?", &body)
}

/// A page with the site's style and Content-Security-Policy, never cached.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - sessiond</title>\
         <link rel=\"stylesheet\" href=\"/app.css\"></head><body><main class=\"card\"><h1>{t}</h1>{body}\
         </main></body></html>",
        t = escape(title),
    );
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::ui_routes::CONTENT_SECURITY_POLICY),
    );
    no_store(res)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
