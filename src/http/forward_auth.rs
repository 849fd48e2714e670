//! `GET /api/auth/verify`: the question a reverse proxy (nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`) asks before
//! it lets a request through to the app behind it. It answers from the
//! same session lookup as `/me`, without a body: 204 with identity headers,
//! 401, 403 for `?role=` above the user's, or, for a browser navigation,
//! a 302 to the sign-in page carrying where it was going.

use std::collections::HashMap;
use std::sync::Arc;

use url::Url;
use warp::http::{header, HeaderName, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::filters::{get_or_head, session_token, with_state};
use super::State;
use crate::auth::{AuthError, SessionToken};
use crate::domain::{Amr, Role};

/// The identity headers' names, parsed once (validated at start-up).
type Names = Arc<[HeaderName; 5]>;

/// The route, path filters first.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let n = &state.config.forward_auth.headers;
    let parse = |name: &str| {
        HeaderName::from_bytes(name.as_bytes()).unwrap_or(HeaderName::from_static("x-auth-invalid"))
    };
    let names: Names = Arc::new([
        parse(&n.user_id),
        parse(&n.user),
        parse(&n.email),
        parse(&n.role),
        parse(&n.session_id),
    ]);
    warp::path!("api" / "auth" / "verify")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .and(warp::any().map(move || names.clone()))
        .and(session_token(state))
        .and(warp::query::<HashMap<String, String>>())
        .and(forwarded())
        .and_then(verify)
        .boxed()
}

/// What the proxy says about the request it is checking.
struct Forwarded {
    accept_html: bool,
    host: Option<String>,
    fwd_proto: Option<String>,
    fwd_host: Option<String>,
    fwd_uri: Option<String>,
}

fn forwarded() -> impl Filter<Extract = (Forwarded,), Error = Rejection> + Clone {
    let h = |name: &'static str| warp::header::optional::<String>(name);
    h("accept")
        .and(h("host"))
        .and(h("x-forwarded-proto"))
        .and(h("x-forwarded-host"))
        .and(h("x-forwarded-uri"))
        .map(
            |accept: Option<String>, host, fwd_proto, fwd_host, fwd_uri| Forwarded {
                accept_html: accept.is_some_and(|a| a.contains("text/html")),
                host,
                fwd_proto,
                fwd_host,
                fwd_uri,
            },
        )
}

async fn verify(
    state: State,
    names: Names,
    token: Option<SessionToken>,
    query: HashMap<String, String>,
    fwd: Forwarded,
) -> Result<Response, Rejection> {
    let required = match query.get("role") {
        Some(raw) => Role::parse(raw)?,
        None => Role::User,
    };
    let want_mfa = match query.get("mfa").map(String::as_str) {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(ApiError::invalid_request("mfa is 1, true, 0 or false").into()),
    };
    let current = match token {
        Some(token) => state.auth.authenticate(&token).await?,
        None => None,
    };
    let Some(current) = current else {
        return Ok(signed_out(
            &state,
            query.get("rd").map(String::as_str),
            &fwd,
        ));
    };
    if !current.user.role.includes(required) {
        return Err(ApiError::forbidden().into());
    }
    if state.auth.must_enrol(&current) {
        return Err(ApiError::from(AuthError::EnrolmentRequired).into());
    }
    let amr = &current.session.amr;
    if want_mfa && !Amr::is_multi_factor(amr) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mfa_required",
            "This needs a session made with a second factor: sign out and sign in with one.",
        )
        .into());
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    let user = &current.user;
    let values = [
        HeaderValue::from_str(&user.user_id().to_string()),
        HeaderValue::from_bytes(user.username.as_bytes()),
        HeaderValue::from_bytes(user.email.as_bytes()),
        Ok(HeaderValue::from_static(user.role.as_str())),
        HeaderValue::from_str(&current.hash.public_id()),
    ];
    let headers = res.headers_mut();
    headers.reserve(values.len());
    for (name, value) in names.iter().zip(values) {
        // Values are ASCII or UTF-8 bytes, which HTTP carries as they are.
        if let Ok(value) = value {
            headers.insert(name.clone(), value);
        }
    }
    let amr: Vec<&str> = amr.iter().map(|a| a.as_str()).collect();
    if let Ok(value) = HeaderValue::from_str(&amr.join(",")) {
        headers.insert(HeaderName::from_static("x-auth-amr"), value);
    }
    Ok(res)
}

/// 401, or a 302 to the sign-in page when a browser was navigating to an
/// address we may send it back to.
fn signed_out(state: &State, rd: Option<&str>, fwd: &Forwarded) -> Response {
    let unauthorized = || ApiError::unauthorized().into_response();
    if !fwd.accept_html {
        return unauthorized();
    }
    let wanted = match (rd, &fwd.fwd_host, &fwd.fwd_uri) {
        (Some(rd), _, _) => rd.to_owned(),
        (None, host, uri) if host.is_some() || uri.is_some() => {
            let proto = fwd.fwd_proto.as_deref().unwrap_or("http");
            let host = host.as_deref().or(fwd.host.as_deref()).unwrap_or_default();
            format!("{proto}://{host}{}", uri.as_deref().unwrap_or("/"))
        }
        _ => return unauthorized(),
    };
    let config = &state.config.forward_auth;
    let Some(target) = safe_redirect(&wanted, fwd.host.as_deref(), &config.allowed_redirect_hosts)
    else {
        return unauthorized();
    };
    let rd: String = url::form_urlencoded::byte_serialize(target.as_str().as_bytes()).collect();
    let location = format!("{}?rd={rd}", config.sign_in_url);
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, value);
        res
    } else {
        unauthorized()
    }
}

/// `wanted` as a URL we may redirect a browser to after sign-in, or `None`:
/// an absolute `http(s)` URL without user info whose host and port are the
/// request's own `Host` or listed in `allowed`. Parsed as a browser parses
/// it (WHATWG), so `//evil.example`, `/\evil.example` and
/// `https://good@evil.example` name the host a browser would go to.
pub fn safe_redirect(wanted: &str, own_host: Option<&str>, allowed: &[String]) -> Option<Url> {
    let url = Url::parse(wanted).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    // An entry is a host with an optional port, read the way the URL's
    // own authority was read, so case, IPv6 brackets and default ports
    // compare alike.
    let same = |entry: &str| -> bool {
        Url::parse(&format!("{}://{}/", url.scheme(), entry.trim())).is_ok_and(|e| {
            e.host_str() == Some(host)
                && e.port_or_known_default() == Some(port)
                && e.path() == "/"
                && e.username().is_empty()
                && e.password().is_none()
        })
    };
    let ok = own_host.is_some_and(same) || allowed.iter().any(|a| same(a));
    ok.then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(wanted: &str) -> bool {
        safe_redirect(
            wanted,
            Some("app.example"),
            &["other.example".into(), "wiki.example:8443".into()],
        )
        .is_some()
    }

    #[test]
    fn own_and_listed_hosts_are_allowed() {
        assert!(allowed("https://app.example/page?x=1"));
        assert!(allowed("http://app.example/"));
        assert!(allowed("https://other.example/a"));
        assert!(allowed("https://wiki.example:8443/a"));
        assert!(allowed("https://APP.example/"));
    }

    #[test]
    fn open_redirects_are_refused() {
        for evil in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/dashboard",
            "https://app.example@evil.example/",
            "https://user:pw@app.example/",
            "https://evil.example\\@app.example/",
            "https://app.example.evil.example/",
            "javascript:alert(1)",
            "https://app.example:8080/",
            "https://wiki.example/",
            "https://other.example:444/",
            "",
        ] {
            assert!(!allowed(evil), "{evil} was allowed");
        }
    }

    #[test]
    fn the_requests_own_host_counts_with_its_port() {
        assert!(safe_redirect("http://127.0.0.1:9000/x", Some("127.0.0.1:9000"), &[]).is_some());
        assert!(safe_redirect("http://127.0.0.1:9001/x", Some("127.0.0.1:9000"), &[]).is_none());
        assert!(safe_redirect("http://127.0.0.1:9000/x", None, &[]).is_none());
        assert!(safe_redirect("http://[::1]:9000/x", Some("[::1]:9000"), &[]).is_some());
    }
}
