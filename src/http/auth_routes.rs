//! `/api/auth/*`: register, login, logout, me.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::filters::get_or_head;
use super::filters::{
    check_origin, client_info, json_body, session_token, with_session, with_state,
};
use super::views::{json, set_cookie, SessionView, UserView};
use super::State;
use crate::auth::{ClientInfo, CurrentSession, LoginName, SessionToken, SignIn};
use crate::domain::{Email, Password, Username};

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = state.config.server.max_body_bytes;
    let register = warp::path!("api" / "auth" / "register")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(json_body(limit))
        .and_then(register);
    let login = warp::path!("api" / "auth" / "login")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(json_body(limit))
        .and_then(login);
    let logout = warp::path!("api" / "auth" / "logout")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(session_token(state.clone()))
        .and_then(logout);
    let me = warp::path!("api" / "auth" / "me")
        .and(get_or_head())
        .and(with_session(state.clone()))
        .map(me);
    register
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .boxed()
}

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
}

async fn register(
    state: State,
    client: ClientInfo,
    body: RegisterBody,
) -> Result<Response, Rejection> {
    let username = Username::parse(&body.username)?;
    let email = Email::parse(&body.email)?;
    let password = state.auth.new_password(body.password, "password")?;
    let user = state
        .auth
        .register(username, email, password, &client)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "user": UserView::from(&user) }),
    ))
}

/// Logins are remembered unless they say otherwise (the contract's
/// default, and express-session's persistent cookie).
pub(super) fn remembered() -> bool {
    true
}

#[derive(Deserialize)]
struct LoginBody {
    username: Option<String>,
    email: Option<String>,
    password: String,
    /// "Remember me"; false: the cookie ends with the browser.
    #[serde(default = "remembered")]
    remember: bool,
}

async fn login(
    state: State,
    client: ClientInfo,
    previous: Option<SessionToken>,
    body: LoginBody,
) -> Result<Response, Rejection> {
    let name = match (body.username, body.email) {
        (Some(u), _) => LoginName::Username(u),
        (None, Some(e)) => LoginName::Email(e),
        (None, None) => {
            return Err(ApiError::invalid_request("username: required (or email).").into())
        }
    };
    let password = Password::unchecked(body.password);
    let new = state
        .auth
        .login(&name, &password, &client, previous.as_ref(), body.remember)
        .await?;
    signed_in(&state, previous.as_ref(), &new).await
}

/// A first or second factor's answer, whatever the way in: 200 `{user}`
/// and the cookie, or, when a second step is due, 200
/// `{mfa: {pending, methods, expiresIn}}` and no cookie.
///
/// A session the client came with ends once the new one exists; when it
/// was the same user's (an app's `prompt=login`), its apps' grants move
/// to the new session first, so signing in again for one app does not
/// sign the user out of the others.
pub(super) async fn signed_in(
    state: &State,
    previous: Option<&SessionToken>,
    signed: &SignIn,
) -> Result<Response, Rejection> {
    if let (SignIn::Session(new), Some(previous)) = (signed, previous) {
        if let Some(provider) = &state.oidc {
            // The sign-in stands either way: grants not carried end with
            // the old session, as before there was carrying.
            let carried = provider
                .carry_grants(&previous.hash(), &new.token.hash(), &new.session)
                .await;
            if let Err(e) = carried {
                tracing::warn!(error = %e, "an old session's OIDC grants were not carried over");
            }
        }
        state.auth.end_replaced(previous).await?;
    }
    let new = match signed {
        SignIn::Session(new) => new,
        SignIn::SecondStep(p) => {
            return Ok(json(
                StatusCode::OK,
                &json!({ "mfa": {
                    "pending": p.token,
                    "methods": p.methods,
                    "expiresIn": p.expires_in,
                } }),
            ))
        }
    };
    let cookie = state
        .auth
        .cookies()
        .issue(&new.token, state.auth.cookie_max_age(&new.session));
    let mut res = json(
        StatusCode::OK,
        &json!({ "user": UserView::from(&new.user) }),
    );
    set_cookie(&mut res, &cookie);
    Ok(res)
}

async fn logout(state: State, token: Option<SessionToken>) -> Result<Response, Rejection> {
    if let Some(token) = token {
        state.auth.logout(&token.hash()).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut res, &state.auth.cookies().clear());
    Ok(res)
}

fn me(current: CurrentSession) -> Response {
    /// Serialised directly: `/me` is the hot path.
    #[derive(serde::Serialize)]
    struct Me<'a> {
        user: UserView<'a>,
        session: SessionView<'a>,
    }
    json(
        StatusCode::OK,
        &Me {
            user: UserView::from(&current.user),
            session: SessionView::new(&current.hash, &current.session, true),
        },
    )
}
