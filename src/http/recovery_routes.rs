//! `/api/auth/recovery*`: a forgotten password, by a mailed code or an
//! operator's link.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth_routes::signed_in;
use super::error::ApiError;
use super::filters::{check_origin, client_info, json_body, session_token, with_state};
use super::views::json;
use super::State;
use crate::auth::{ClientInfo, RecoveryProof, SessionToken};

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
    request.or(verify).unify().boxed()
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
    // A session the client came with goes, as at any sign-in.
    if let Some(previous) = previous {
        state.auth.end(&previous.hash()).await?;
    }
    let signed = state.auth.recover(proof, &password, &client).await?;
    Ok(signed_in(&state, &signed))
}
