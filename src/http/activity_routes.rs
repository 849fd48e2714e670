//! `/api/auth/activity` and `/api/admin/activity`: the security log, a
//! user's own and, for admins, everyone's.

use std::collections::HashMap;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::filters::{get_or_head, page_limit, require_admin, with_session, with_state};
use super::views::{json, ActivityView};
use super::State;
use crate::auth::{ActivityPage, CurrentSession};
use crate::store::{AuditId, AuditKind, AuditQuery};

/// Largest page of entries.
const MAX_PAGE: usize = 200;
/// Page size when `limit` is not given.
const DEFAULT_PAGE: usize = 50;

/// Every route of this area, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let own = warp::path!("api" / "auth" / "activity")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(with_session(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(own);
    let all = warp::path!("api" / "admin" / "activity")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(require_admin(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(everyone);
    own.or(all).unify().boxed()
}

async fn own(
    state: State,
    current: CurrentSession,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let mut wanted = page(&query)?;
    wanted.user = Some(current.user.user_id());
    Ok(answer(state.auth.activity(wanted).await?))
}

async fn everyone(
    state: State,
    _admin: CurrentSession,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let mut wanted = page(&query)?;
    if let Some(raw) = query.get("kind").filter(|k| !k.is_empty()) {
        wanted.kind = Some(AuditKind::parse(raw).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "kind: {raw:?} is not a kind of entry (login, login_failed, logout, ...; see the README's security log)."
            ))
        })?);
    }
    if let Some(raw) = query.get("user").filter(|u| !u.is_empty()) {
        let owner = crate::auth::log_owner(state.auth.store(), raw).await?;
        wanted.user = Some(owner.ok_or_else(|| {
            ApiError::not_found(format!(
                "No user is named {raw:?} or has that id (see GET /api/admin/users)."
            ))
        })?);
    }
    Ok(answer(state.auth.activity(wanted).await?))
}

/// `before` and `limit`, checked.
fn page(query: &HashMap<String, String>) -> Result<AuditQuery, Rejection> {
    let limit = page_limit(query, DEFAULT_PAGE, MAX_PAGE)?;
    let before = match query.get("before").filter(|b| !b.is_empty()) {
        None => None,
        Some(raw) => Some(AuditId::parse(raw).ok_or_else(|| {
            ApiError::invalid_request("before: not a cursor from an earlier page (its next).")
        })?),
    };
    Ok(AuditQuery {
        before,
        limit,
        ..AuditQuery::default()
    })
}

fn answer((entries, next): ActivityPage) -> Response {
    let entries: Vec<_> = entries
        .iter()
        .map(|(id, e)| ActivityView::new(*id, e))
        .collect();
    json(
        StatusCode::OK,
        &json!({ "entries": entries, "next": next.map(|id| id.to_string()) }),
    )
}
