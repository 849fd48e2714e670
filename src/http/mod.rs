//! warp filters and handlers; the only layer that speaks HTTP, and the only
//! one that turns errors into JSON answers (`error::handle_rejection`).

mod activity_routes;
mod admin_routes;
mod auth_routes;
mod error;
mod filters;
mod forward_auth;
mod gate;
mod identity_routes;
mod mfa_routes;
mod oidc_routes;
mod ops;
mod recovery_routes;
pub mod route_table;
mod session_routes;
mod ui_routes;
pub mod views;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use warp::filters::path::FullPath;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use error::ApiError;
pub use filters::{
    check_origin, describe_json_error, get_or_head, page_limit, with_session, with_state,
};

use crate::auth::Auth;
use crate::config::Config;

/// What every handler may reach: one `Arc`, so the clones filters make on
/// every request cost one reference count, not one per part.
#[derive(Clone)]
pub struct State(Arc<Shared>);

/// The parts of `State`.
pub struct Shared {
    /// The session service (and through it, the store).
    pub auth: Auth,
    /// Settings, read-only.
    pub config: Config,
    /// Open WebSocket connections, kept by the chat hub.
    pub ws_connections: Arc<AtomicU64>,
    /// Backups on request and on schedule.
    pub backups: Arc<crate::backups::Backups>,
    /// The OpenID Connect provider, when `[oidc_provider]` is on.
    pub oidc: Option<Arc<crate::oidc::Provider>>,
}

impl State {
    /// Wraps the parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for State {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The whole HTTP surface (`chat` being the WebSocket layer's routes):
/// every route, the JSON error mapping, the
/// `Cache-Control: no-store` rule and one log line per request.
///
/// Boxed, because hyper clones the service for every request: a boxed
/// filter clones as one reference count.
pub fn routes(state: State, chat: BoxedFilter<(Response,)>) -> BoxedFilter<(Response,)> {
    let api = gate::early(state.clone())
        .or(auth_routes::routes(state.clone()))
        .unify()
        .or(session_routes::routes(state.clone()))
        .unify()
        .or(forward_auth::routes(state.clone()))
        .unify()
        .or(identity_routes::routes(state.clone()))
        .unify()
        .or(mfa_routes::routes(state.clone()))
        .unify()
        .or(recovery_routes::routes(state.clone()))
        .unify()
        .or(admin_routes::routes(state.clone()))
        .unify()
        .or(activity_routes::routes(state.clone()))
        .unify()
        .or(oidc_routes::routes(state.clone()))
        .unify()
        .or(chat)
        .unify()
        .or(ops::routes(state.clone()))
        .unify()
        .or(ui_routes::routes(state.clone()))
        .unify()
        .recover(error::handle_rejection)
        .unify();
    warp::path::full()
        .and(warp::header::optional::<String>("origin"))
        .and(api)
        .map(
            move |path: FullPath, origin: Option<String>, mut res: Response| {
                let p = path.as_str();
                if p.starts_with("/api/auth/") || p.starts_with("/api/admin/") {
                    res.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                gate::add_cors(&state, origin.as_deref(), &mut res);
                res
            },
        )
        .with(warp::log::custom(|info| {
            // Displayed, not quoted: `log_line` escapes control characters
            // in every value. Whole microseconds: a float cost more.
            tracing::info!(
                method = %info.method(),
                path = %info.path(),
                status = info.status().as_u16(),
                latency_us = info.elapsed().as_micros() as u64,
                "request"
            );
        }))
        .map(Reply::into_response)
        .boxed()
}
