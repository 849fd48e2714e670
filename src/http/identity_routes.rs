//! Sign in with an ID token (Firebase, any OIDC provider), and the
//! identities linked to the signed-in user.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth_routes::{remembered, signed_in};
use super::error::ApiError;
use super::filters::{
    check_origin, client_info, get_or_head, json_body, session_token, with_session, with_state,
};
use super::views::IdentityView;
use super::State;
use crate::auth::{ClientInfo, CurrentSession, SessionToken};

/// Bodies these routes read: the larger of `max_body_bytes` and this, so
/// an oversized token is refused as what it is (401 `invalid_token`)
/// rather than as a body (413).
const MIN_TOKEN_BODY: usize = 256 * 1024;

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = state.config.server.max_body_bytes.max(MIN_TOKEN_BODY);
    let sign_in = warp::path!("api" / "auth" / "idtoken")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(client_info(state.clone()))
        .and(session_token(state.clone()))
        .and(json_body(limit))
        .and_then(sign_in);
    let list = warp::path!("api" / "auth" / "identities")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and_then(list);
    let link = warp::path!("api" / "auth" / "identities")
        .and(warp::post())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(json_body(limit))
        .and_then(link);
    let unlink = warp::path!("api" / "auth" / "identities" / String)
        .and(warp::delete())
        .and(check_origin(state.clone()))
        .and(with_state(state.clone()))
        .and(with_session(state))
        .and_then(unlink);
    sign_in
        .or(list)
        .unify()
        .or(link)
        .unify()
        .or(unlink)
        .unify()
        .boxed()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInBody {
    id_token: String,
    #[serde(default = "remembered")]
    remember: bool,
}

async fn sign_in(
    state: State,
    client: ClientInfo,
    previous: Option<SessionToken>,
    body: SignInBody,
) -> Result<Response, Rejection> {
    let new = state
        .auth
        .sign_in_with_idtoken(&body.id_token, &client, previous.as_ref(), body.remember)
        .await?;
    signed_in(&state, previous.as_ref(), &new).await
}

async fn list(state: State, current: CurrentSession) -> Result<Response, Rejection> {
    let identities = state.auth.identities_of(current.user.user_id()).await?;
    let views: Vec<_> = identities.iter().map(IdentityView::from).collect();
    Ok(super::views::json(
        StatusCode::OK,
        &json!({ "identities": views }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkBody {
    id_token: String,
}

async fn link(
    state: State,
    current: CurrentSession,
    body: LinkBody,
) -> Result<Response, Rejection> {
    let identity = state.auth.link_identity(&current, &body.id_token).await?;
    Ok(super::views::json(
        StatusCode::CREATED,
        &json!({ "identity": IdentityView::from(&identity) }),
    ))
}

async fn unlink(id: String, state: State, current: CurrentSession) -> Result<Response, Rejection> {
    match state.auth.unlink_identity(&current, &id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(crate::auth::AuthError::NotFound) => Err(ApiError::not_found(
            "You have no linked identity with that id (see GET /api/auth/identities).",
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}
