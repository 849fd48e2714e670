//! What is answered before any route runs, from the route table: an
//! unknown path (404 naming it), a known path with a method it does not
//! take (405 with `Allow`) and a CORS preflight; and the CORS headers
//! every answer to an origin in `server.allowed_origins` carries.

use warp::filters::path::FullPath;
use warp::http::{header, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::filters::origin_listed;
use super::route_table::{self, Route};
use super::State;

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// Answers what the route table decides alone; rejects (as "not found",
/// the rejection every other filter outranks) to let the routes run.
pub fn early(state: State) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("origin"))
        .and_then(
            move |method: Method, path: FullPath, origin: Option<String>| {
                let state = state.clone();
                async move {
                    let Some(route) = route_table::find(path.as_str()) else {
                        return Ok(ApiError::no_route(path.as_str()).into_response());
                    };
                    if method == Method::OPTIONS {
                        let cors = origin.is_some_and(|o| allowed(&state, &o));
                        return Ok(preflight(route, cors));
                    }
                    if !route.allows(&method) {
                        let mut res = ApiError::method_not_allowed(route).into_response();
                        insert(&mut res, header::ALLOW, &route.allow_header());
                        return Ok(res);
                    }
                    Err(warp::reject::not_found())
                }
            },
        )
}

/// 204 with `Allow`, and for an allowed origin the methods and headers a
/// browser may use (its origin headers are added with every answer's).
fn preflight(route: &Route, cors: bool) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let allow = route.allow_header();
    insert(&mut res, header::ALLOW, &allow);
    if cors {
        insert(&mut res, header::ACCESS_CONTROL_ALLOW_METHODS, &allow);
        insert(
            &mut res,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Content-Type",
        );
        insert(
            &mut res,
            header::ACCESS_CONTROL_MAX_AGE,
            &PREFLIGHT_MAX_AGE_SECS.to_string(),
        );
    }
    res
}

/// Adds the CORS headers to an answer when the request's `Origin` is one
/// of `server.allowed_origins`; other origins get none, so a browser
/// keeps the answer from their scripts.
pub fn add_cors(state: &State, origin: Option<&str>, res: &mut Response) {
    let Some(origin) = origin.filter(|o| allowed(state, o)) else {
        return;
    };
    insert(res, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    insert(res, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    insert(res, header::ACCESS_CONTROL_EXPOSE_HEADERS, "Retry-After");
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
}

fn allowed(state: &State, origin: &str) -> bool {
    origin_listed(origin, &state.config.server.allowed_origins)
}

fn insert(res: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, value);
    }
}
