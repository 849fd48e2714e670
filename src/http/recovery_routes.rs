//! `/api/auth/recovery*`: a forgotten password, by a mailed code or an
//! operator's link; `/api/auth/email*`: proving an address is the user's,
//! and moving to a new one.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth_routes::signed_in;
use super::error::ApiError;
use super::filters::{
    check_origin, client_info, json_body, optional_json_body, session_token, with_session,
    with_state,
};
use super::views::{json, UserView};
use super::State;
use crate::auth::{ClientInfo, CurrentSession, RecoveryProof, SessionToken};
use crate::domain::{Email, Password};

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = state.config.server.max_body_bytes;
    let request = warp::path!("api" / "auth" / "recovery")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(json_body(limit))
        .and_then(request);
    let verify = warp::path!("api" / "auth" / "recovery" / "verify")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(json_body(limit))
        .and_then(verify);
    let email_verify = warp::path!("api" / "auth" / "email" / "verify")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(session_token(state.clone()))
        .and(json_body(limit))
        .and_then(email_verify);
    let email_resend = warp::path!("api" / "auth" / "email" / "resend")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(optional_json_body(limit))
        .and_then(email_resend);
    let email_change = warp::path!("api" / "auth" / "email")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(with_session(state.clone()))
        .and(json_body(limit))
        .and_then(email_change);
    request
        .or(verify)
        .unify()
        .or(email_verify)
        .unify()
        .or(email_resend)
        .unify()
        .or(email_change)
        .unify()
        .boxed()
}

/// The signed-in user, if the request has a live session.
async fn signed_in_user(
    state: &State,
    token: Option<SessionToken>,
) -> Result<Option<crate::store::UserRecord>, Rejection> {
    let Some(token) = token else { return Ok(None) };
    Ok(state.auth.authenticate(&token).await?.map(|c| c.user))
}

#[derive(Deserialize)]
struct EmailVerifyBody {
    code: String,
    /// Who, without a session (a user refused sign-in until verified).
    login: Option<String>,
}

/// The code mailed to the address: 200 `{user}` with `emailVerified`.
async fn email_verify(
    state: State,
    token: Option<SessionToken>,
    body: EmailVerifyBody,
) -> Result<Response, Rejection> {
    let user = match (signed_in_user(&state, token).await?, body.login) {
        (Some(user), _) => state.auth.verify_email(&user, &body.code).await?,
        (None, Some(login)) => state.auth.verify_email_of(&login, &body.code).await?,
        // Neither a session nor a name: nobody to verify for.
        (None, None) => return Err(ApiError::unauthorized().into()),
    };
    Ok(json(
        StatusCode::OK,
        &json!({ "user": UserView::from(&user) }),
    ))
}

#[derive(Deserialize)]
struct ResendBody {
    /// Who, without a session.
    login: Option<String>,
}

/// A new code: for the signed-in user, or (no session) for whoever
/// `{login}` names, answered as a recovery request is.
async fn email_resend(
    state: State,
    client: ClientInfo,
    token: Option<SessionToken>,
    body: Option<ResendBody>,
) -> Result<Response, Rejection> {
    if let Some(user) = signed_in_user(&state, token).await? {
        state.auth.resend_verification(&user, &client).await?;
    } else {
        let Some(login) = body.and_then(|b| b.login) else {
            return Err(ApiError::unauthorized().into());
        };
        state.auth.resend_verification_to(&login, &client).await?;
    }
    Ok(json(StatusCode::ACCEPTED, &json!({ "status": "sent" })))
}

#[derive(Deserialize)]
struct EmailChangeBody {
    email: String,
    /// Required of a user who has one.
    password: Option<String>,
}

/// 202 once a code is on its way to the new address; the account keeps
/// the old one until the code comes back to `/api/auth/email/verify`.
async fn email_change(
    state: State,
    client: ClientInfo,
    current: CurrentSession,
    body: EmailChangeBody,
) -> Result<Response, Rejection> {
    let email = Email::parse(&body.email)?;
    let password = body.password.map(Password::unchecked);
    if password.is_none() && current.user.has_password() {
        return Err(ApiError::invalid_request("password: required.").into());
    }
    let auth = &state.auth;
    auth.request_email_change(&current, password.as_ref(), &email, &client)
        .await?;
    Ok(json(StatusCode::ACCEPTED, &json!({ "status": "sent" })))
}

#[derive(Deserialize)]
struct RequestBody {
    login: String,
}

/// 202 whatever `login` names: the same body, no sooner for an account
/// that does not exist.
async fn request(
    state: State,
    client: ClientInfo,
    body: RequestBody,
) -> Result<Response, Rejection> {
    state.auth.request_recovery(&body.login, &client).await?;
    Ok(json(StatusCode::ACCEPTED, &json!({ "status": "sent" })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyBody {
    login: Option<String>,
    code: Option<String>,
    token: Option<String>,
    new_password: String,
}

async fn verify(
    state: State,
    client: ClientInfo,
    previous: Option<SessionToken>,
    body: VerifyBody,
) -> Result<Response, Rejection> {
    let proof = match (body.token, body.login, body.code) {
        (Some(token), _, _) => RecoveryProof::Link(token),
        (None, Some(login), Some(code)) => RecoveryProof::Code { login, code },
        (None, None, _) => {
            return Err(ApiError::invalid_request("login: required with code (or token).").into())
        }
        (None, Some(_), None) => return Err(ApiError::invalid_request("code: required.").into()),
    };
    // The password rules first, so a weak one does not use the code up.
    let password = state.auth.new_password(body.new_password, "newPassword")?;
    let signed = state.auth.recover(proof, &password, &client).await?;
    // A session the client came with goes, as at any sign-in, once the
    // proof held: a wrong code loses nothing.
    if let Some(previous) = previous {
        state.auth.end_replaced(&previous).await?;
    }
    signed_in(&state, None, &signed).await
}
