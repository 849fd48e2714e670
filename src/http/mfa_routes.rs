//! `/api/auth/mfa*` and `/api/auth/reauth`: the second step of a sign-in,
//! and a user's own second factors (each change needs a fresh proof).

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth_routes::signed_in;
use super::error::ApiError;
use super::filters::{
    check_origin, client_info, get_or_head, json_body, optional_json_body, session_token,
    with_session, with_state,
};
use super::views::{json, FactorView};
use super::State;
use crate::auth::mfa::list_factors;
use crate::auth::{AuthError, ClientInfo, CurrentSession, Proof, SessionToken, SignIn};
use crate::domain::Password;
use crate::store::UserRecord;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = state.config.server.max_body_bytes;
    let totp_step = warp::path!("api" / "auth" / "mfa" / "totp")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(json_body(limit))
        .and_then(|state, client, previous, body: StepBody| {
            second_step(
                state,
                client,
                previous,
                Proof::Totp(body.code),
                body.pending,
            )
        });
    // The same path is the second step (with `pending`) and, for a
    // signed-in user, a new batch of codes (no body).
    let recovery = warp::path!("api" / "auth" / "mfa" / "recovery")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(optional_json_body(limit))
        .and_then(recovery);
    let reauth = warp::path!("api" / "auth" / "reauth")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(client_info(state.clone()))
        .and(json_body(limit))
        .and_then(reauth);
    let list = warp::path!("api" / "auth" / "mfa")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .map(|state: State, current: CurrentSession| factors(&state, &current.user));
    let enrol = warp::path!("api" / "auth" / "mfa" / "totp" / "enrol")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(totp_enrol);
    let confirm = warp::path!("api" / "auth" / "mfa" / "totp" / "confirm")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(json_body(limit))
        .and_then(totp_confirm);
    let remove = warp::path!("api" / "auth" / "mfa" / String)
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(remove);
    let key_step_start = warp::path!("api" / "auth" / "mfa" / "webauthn" / "start")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(json_body(limit))
        .and_then(key_step_start);
    let key_step_finish = warp::path!("api" / "auth" / "mfa" / "webauthn" / "finish")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(json_body(limit))
        .and_then(|state, client, previous, body: KeyStepBody| async move {
            let Ok(credential) = serde_json::from_value(body.credential) else {
                return Err(ApiError::from(AuthError::MfaFailed).into());
            };
            second_step(
                state,
                client,
                previous,
                Proof::Key(Box::new(credential)),
                body.pending,
            )
            .await
        });
    let register_start = warp::path!("api" / "auth" / "mfa" / "webauthn" / "register" / "start")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(optional_json_body(limit))
        .and_then(register_start);
    let register_finish = warp::path!("api" / "auth" / "mfa" / "webauthn" / "register" / "finish")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(json_body(limit))
        .and_then(register_finish);
    let passkey_start = warp::path!("api" / "auth" / "passkey" / "start")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and_then(passkey_start);
    let passkey_finish = warp::path!("api" / "auth" / "passkey" / "finish")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(json_body(limit))
        .and_then(passkey_finish);
    let keys = key_step_start
        .or(key_step_finish)
        .unify()
        .or(register_start)
        .unify()
        .or(register_finish)
        .unify()
        .or(passkey_start)
        .unify()
        .or(passkey_finish)
        .unify();
    totp_step
        .or(keys)
        .unify()
        .or(recovery)
        .unify()
        .or(reauth)
        .unify()
        .or(list)
        .unify()
        .or(enrol)
        .unify()
        .or(confirm)
        .unify()
        .or(remove)
        .unify()
        .boxed()
}

#[derive(Deserialize)]
struct StepBody {
    pending: String,
    code: String,
}

#[derive(Deserialize)]
struct PendingBody {
    pending: String,
}

/// A key's answer is taken as any JSON and read afterwards, so one that
/// is not an answer at all fails as a wrong one does (401), not as a
/// malformed request.
#[derive(Deserialize)]
struct KeyStepBody {
    pending: String,
    credential: serde_json::Value,
}

#[derive(Deserialize)]
struct RegisterBody {
    #[serde(default = "passkey")]
    name: String,
}

fn passkey() -> String {
    "Passkey".into()
}

#[derive(Deserialize)]
struct RegisterFinishBody {
    credential: Box<RegisterPublicKeyCredential>,
}

#[derive(Deserialize)]
struct PasskeyBody {
    credential: serde_json::Value,
    #[serde(default = "yes")]
    remember: bool,
}

fn yes() -> bool {
    true
}

/// The recovery route's body: a second step's, or none.
#[derive(Deserialize)]
struct RecoveryBody {
    pending: Option<String>,
    code: Option<String>,
}

async fn second_step(
    state: State,
    client: ClientInfo,
    previous: Option<SessionToken>,
    proof: Proof,
    pending: String,
) -> Result<Response, Rejection> {
    let new = state.auth.second_step(&pending, &proof, &client).await?;
    signed_in(&state, previous.as_ref(), &SignIn::Session(Box::new(new))).await
}

async fn key_step_start(
    state: State,
    client: ClientInfo,
    body: PendingBody,
) -> Result<Response, Rejection> {
    let options = state.auth.key_step_start(&body.pending, &client).await?;
    Ok(json(StatusCode::OK, &options))
}

async fn register_start(
    state: State,
    current: CurrentSession,
    body: Option<RegisterBody>,
) -> Result<Response, Rejection> {
    let name = body.map_or_else(passkey, |b| b.name);
    let options = state.auth.key_register_start(&current, &name).await?;
    Ok(json(StatusCode::OK, &options))
}

async fn register_finish(
    state: State,
    current: CurrentSession,
    body: RegisterFinishBody,
) -> Result<Response, Rejection> {
    let factor = state
        .auth
        .key_register_finish(&current, &body.credential)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "factor": FactorView::from(&factor) }),
    ))
}

async fn passkey_start(state: State) -> Result<Response, Rejection> {
    let options = state.auth.passkey_start().await?;
    Ok(json(StatusCode::OK, &options))
}

async fn passkey_finish(
    state: State,
    client: ClientInfo,
    previous: Option<SessionToken>,
    body: PasskeyBody,
) -> Result<Response, Rejection> {
    let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(body.credential) else {
        return Err(ApiError::from(AuthError::InvalidCredentials).into());
    };
    let new = state
        .auth
        .passkey_finish(&credential, &client, body.remember)
        .await?;
    signed_in(&state, previous.as_ref(), &SignIn::Session(Box::new(new))).await
}

async fn recovery(
    state: State,
    client: ClientInfo,
    token: Option<SessionToken>,
    body: Option<RecoveryBody>,
) -> Result<Response, Rejection> {
    if let Some(RecoveryBody {
        pending: Some(pending),
        code,
    }) = body
    {
        let code = code.ok_or_else(|| ApiError::invalid_request("code: required."))?;
        return second_step(state, client, token, Proof::Recovery(code), pending).await;
    }
    let token = token.ok_or_else(ApiError::unauthorized)?;
    let current = state
        .auth
        .authenticate(&token)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let codes = state.auth.new_recovery_codes(&current).await?;
    Ok(json(StatusCode::OK, &json!({ "codes": codes })))
}

#[derive(Deserialize)]
struct ReauthBody {
    password: Option<String>,
    code: Option<String>,
}

async fn reauth(
    state: State,
    current: CurrentSession,
    client: ClientInfo,
    body: ReauthBody,
) -> Result<Response, Rejection> {
    if body.password.is_none() && body.code.is_none() {
        return Err(ApiError::invalid_request("password: required (or code).").into());
    }
    let password = body.password.map(Password::unchecked);
    state
        .auth
        .reauth(&current, password.as_ref(), body.code.as_deref(), &client)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{factors, recoveryCodesLeft, required}`: also what the admin route
/// shows of a user.
pub(super) fn factors(state: &State, user: &UserRecord) -> Response {
    let list = list_factors(&user.factors);
    let views: Vec<FactorView> = list.iter().map(FactorView::from).collect();
    let required = state.config.auth.require_mfa.applies_to(user.role);
    json(
        StatusCode::OK,
        &json!({
            "factors": views,
            "recoveryCodesLeft": user.factors.recovery.len(),
            "required": required,
        }),
    )
}

async fn totp_enrol(state: State, current: CurrentSession) -> Result<Response, Rejection> {
    let enrolment = state.auth.totp_enrol(&current).await?;
    Ok(json(StatusCode::OK, &enrolment))
}

#[derive(Deserialize)]
struct ConfirmBody {
    code: String,
}

async fn totp_confirm(
    state: State,
    current: CurrentSession,
    body: ConfirmBody,
) -> Result<Response, Rejection> {
    let factor = state.auth.totp_confirm(&current, &body.code).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "factor": FactorView::from(&factor) }),
    ))
}

async fn remove(id: String, state: State, current: CurrentSession) -> Result<Response, Rejection> {
    if !state.auth.remove_factor(&current, &id).await? {
        return Err(ApiError::not_found(
            "You have no second factor with that id (see GET /api/auth/mfa).",
        )
        .into());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
