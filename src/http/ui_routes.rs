//! The page at `/`: static files embedded in the binary (no build step,
//! no third-party assets, works offline), served with a CSP that allows
//! nothing but this origin, so no inline script or style can run.
//! `[server] ui = false` turns them off (404).

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::filters::get_or_head;
use super::State;

/// The contract's policy: this origin only, and never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("ui/index.html"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/app.css"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/app.js"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("ui/favicon.svg"),
    },
    Asset {
        path: "sessiond.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/sessiond.js"),
    },
];

/// `/` and the files it loads, when `server.ui` is on.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let enabled = state.config.server.ui;
    let index = warp::path::end().map(|| "index.html".to_owned());
    let file = warp::path::param::<String>().and(warp::path::end());
    index
        .or(file)
        .unify()
        .and(get_or_head())
        .and_then(move |name: String| async move {
            match ASSETS.iter().find(|a| a.path == name) {
                Some(asset) if enabled => Ok(serve(asset)),
                _ => Err(warp::reject::not_found()),
            }
        })
        .boxed()
}

fn serve(asset: &Asset) -> Response {
    let mut res = Response::new(asset.body.into());
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: revalidate, never serve stale.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
