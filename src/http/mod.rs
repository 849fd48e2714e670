//! warp filters and handlers; the only layer that speaks HTTP, and the only
//! one that turns errors into JSON answers (`error::handle_rejection`).

mod admin_routes;
mod auth_routes;
mod error;
mod filters;
mod ops;
mod session_routes;
pub mod views;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use warp::filters::path::FullPath;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use error::ApiError;
pub use filters::{check_origin, with_session, with_state};

use crate::auth::Auth;
use crate::config::Config;

/// What every handler may reach: a cheap `Clone`.
#[derive(Clone)]
pub struct State {
    /// The session service (and through it, the store).
    pub auth: Auth,
    /// Settings, read-only.
    pub config: Arc<Config>,
    /// Open WebSocket connections, kept by the chat hub.
    pub ws_connections: Arc<AtomicU64>,
}

/// The whole HTTP surface (`chat` being the WebSocket layer's routes):
/// every route, the JSON error mapping, the
/// `Cache-Control: no-store` rule and one log line per request.
pub fn routes(
    state: State,
    chat: BoxedFilter<(Response,)>,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
    let api = auth_routes::routes(state.clone())
        .or(session_routes::routes(state.clone()))
        .unify()
        .or(admin_routes::routes(state.clone()))
        .unify()
        .or(chat)
        .unify()
        .or(ops::routes(state))
        .unify()
        .recover(error::handle_rejection)
        .unify();
    warp::path::full()
        .and(api)
        .map(|path: FullPath, mut res: Response| {
            let p = path.as_str();
            if p.starts_with("/api/auth/") || p.starts_with("/api/admin/") {
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            res
        })
        .with(warp::log::custom(|info| {
            tracing::info!(
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                latency_ms = %format_args!("{:.3}", info.elapsed().as_secs_f64() * 1000.0),
                "request"
            );
        }))
        .map(Reply::into_response)
}
