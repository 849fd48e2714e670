//! Filters every route composes: the session, the JSON body, the Origin
//! check and the client's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::filters::path::FullPath;
use warp::{Buf, Filter, Rejection};

use super::error::{payload_too_large, unsupported_media_type, ApiError};
use super::State;
use crate::auth::{AuthError, ClientInfo, CurrentSession, SessionToken};
use crate::domain::Role;
use crate::listener::ClientAddr;

/// Hands the shared state to a handler.
pub fn with_state(
    state: State,
) -> impl Filter<Extract = (State,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// `GET`, or `HEAD` for the same route: hyper sends a `HEAD` answer's
/// headers without its body, so uptime checkers can probe any `GET` route.
pub fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// The token of a correctly signed session cookie, if the request has one.
/// Forged or altered cookies are dropped here, before the database.
pub fn session_token(
    state: State,
) -> impl Filter<Extract = (Option<SessionToken>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("cookie").map(move |header: Option<String>| {
        header.and_then(|h| state.auth.cookies().token_from_header(&h))
    })
}

/// The request's live session, or 401. Put it after the path filters, or
/// unknown paths would answer 401.
pub fn with_session(
    state: State,
) -> impl Filter<Extract = (CurrentSession,), Error = Rejection> + Clone {
    warp::path::full()
        .and(session_token(state.clone()))
        .and_then(move |path: FullPath, token: Option<SessionToken>| {
            let state = state.clone();
            async move {
                let token = token.ok_or_else(ApiError::unauthorized)?;
                let Some(current) = state.auth.authenticate(&token).await? else {
                    return Err(ApiError::unauthorized().into());
                };
                // `auth.require_mfa`: enrolment, and nothing else, first.
                if state.auth.must_enrol(&current) && !reachable_before_enrolment(path.as_str()) {
                    return Err(ApiError::from(AuthError::EnrolmentRequired).into());
                }
                Ok::<_, Rejection>(current)
            }
        })
}

/// What a session that must enrol a second factor may still reach: who
/// it is, the factors, and a fresh proof for enrolling one.
fn reachable_before_enrolment(path: &str) -> bool {
    path == "/api/auth/me" || path == "/api/auth/reauth" || path.starts_with("/api/auth/mfa")
}

pub fn require_admin(
    state: State,
) -> impl Filter<Extract = (CurrentSession,), Error = Rejection> + Clone {
    with_session(state).and_then(|current: CurrentSession| async move {
        if current.user.role == Role::Admin {
            Ok(current)
        } else {
            Err(Rejection::from(ApiError::forbidden()))
        }
    })
}

/// A JSON body of at most `max_body_bytes`, counted as it arrives (the
/// `Content-Length` header alone proves nothing).
pub fn json_body<T: DeserializeOwned + Send>(
    limit: usize,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    optional_json_body(limit).and_then(|body: Option<T>| async move {
        body.ok_or_else(|| Rejection::from(ApiError::invalid_request("A JSON body is required.")))
    })
}

/// `json_body`, where no body at all is also an answer (`None`): a route
/// whose body is optional.
pub fn optional_json_body<T: DeserializeOwned + Send>(
    limit: usize,
) -> impl Filter<Extract = (Option<T>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(
            move |content_type: Option<String>, length: Option<u64>, body| async move {
                if length.is_some_and(|n| n > limit as u64) {
                    return Err(Rejection::from(payload_too_large(limit)));
                }
                if content_type.as_deref().is_some_and(|t| !is_json(t)) {
                    return Err(unsupported_media_type().into());
                }
                let bytes = read_limited(body, limit).await?;
                if bytes.is_empty() {
                    return Ok(None);
                }
                if content_type.is_none() {
                    return Err(unsupported_media_type().into());
                }
                parse_json(&bytes).map(Some).map_err(Rejection::from)
            },
        )
}

/// The body's bytes, at most `limit` of them, whatever the content type:
/// for routes that parse forms (the OIDC token endpoint).
pub fn raw_body(limit: usize) -> impl Filter<Extract = (Vec<u8>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |length: Option<u64>, body| async move {
            if length.is_some_and(|n| n > limit as u64) {
                return Err(Rejection::from(payload_too_large(limit)));
            }
            read_limited(body, limit).await
        })
}

async fn read_limited<S, B>(body: S, limit: usize) -> Result<Vec<u8>, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|_| ApiError::invalid_request("The request body could not be read."))?;
        if out.len() + chunk.remaining() > limit {
            return Err(payload_too_large(limit).into());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Parses JSON, naming the field at fault in the error.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object: serde would also read a struct from an
    // array of its fields in order, which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid_request(
            "The body must be a JSON object, not an array.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid_request(describe_json_error("The body", &path, e.inner()))
    })?;
    de.end().map_err(|_| {
        ApiError::invalid_request("The body is not valid JSON: it goes on after the object ends.")
    })?;
    Ok(value)
}

/// A listing's `limit` query parameter: `default` when absent, else a
/// whole number from 1 to `max` (400 naming the range otherwise).
pub fn page_limit(
    query: &std::collections::HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, Rejection> {
    match query.get("limit") {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_request(format!(
                "limit: must be a whole number from 1 to {max}."
            ))
            .into()),
        },
    }
}

/// A sentence for a person about why a JSON document (`what`: "The body",
/// "A frame") was refused: where (`field` is serde's path, `.` for the
/// whole document) and what was
/// expected, in place of serde's wording ("invalid length 0, expected
/// struct LoginBody with 3 elements", "expected ident at line 1 column 2").
pub fn describe_json_error(what: &str, field: &str, e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    if matches!(
        e.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return format!(
            "{what} is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        );
    }
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    if let Some(name) = text
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("{}: required.", join_path(field, name));
    }
    if let Some((got, expected)) = text
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        let got = got.replace('`', "");
        return if field == "." {
            format!("{what} must be a JSON object, not {got}.")
        } else {
            format!("{field}: expected {}, got {got}.", plain(expected))
        };
    }
    if field == "." {
        // serde reads an array as a struct's fields in order: "invalid
        // length 0, expected struct LoginBody with 2 elements".
        return if text.starts_with("invalid length") {
            format!("{what} must be a JSON object, not an array.")
        } else {
            format!("{what} must be a JSON object with the fields it takes.")
        };
    }
    format!("{field}: {}.", plain(text))
}

fn join_path(parent: &str, name: &str) -> String {
    if parent == "." {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// serde's words for a type, as a person would say them.
fn plain(expected: &str) -> String {
    if expected.starts_with("struct ") || expected.starts_with("internally tagged") {
        return "an object".into();
    }
    expected.replace('`', "")
}

/// 403 `bad_origin` for a request whose `Origin` is neither this server's
/// own host nor listed in `allowed_origins`. Requests without `Origin`
/// (curl, server-to-server) pass: browsers always send it cross-site.
pub fn check_origin(state: State) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and_then(
            move |origin: Option<String>, host: Option<String>, proto: Option<String>| {
                let state = state.clone();
                async move {
                    let Some(origin) = origin else { return Ok(()) };
                    let server = &state.config.server;
                    let proto = proto.filter(|_| server.trust_proxy);
                    if origin_allowed(
                        &origin,
                        host.as_deref(),
                        proto.as_deref(),
                        &server.allowed_origins,
                    ) {
                        Ok(())
                    } else {
                        Err(Rejection::from(ApiError::bad_origin(&origin)))
                    }
                }
            },
        )
        .untuple_one()
}

/// Whether `origin` is one of `server.allowed_origins` (a trailing slash
/// and case aside): the Origin check and CORS ask the same question.
pub(super) fn origin_listed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim();
    allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

fn origin_allowed(
    origin: &str,
    host: Option<&str>,
    proto: Option<&str>,
    allowed: &[String],
) -> bool {
    let origin = origin.trim();
    if origin_listed(origin, allowed) {
        return true;
    }
    let (Some((scheme, authority)), Some(host)) = (origin.split_once("://"), host) else {
        return false;
    };
    if !authority.eq_ignore_ascii_case(host.trim()) {
        return false;
    }
    match proto {
        Some(p) => scheme.eq_ignore_ascii_case(p.split(',').next().unwrap_or("").trim()),
        None => scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"),
    }
}

/// Who is asking: the peer address (or, behind a trusted proxy, the first
/// `X-Forwarded-For` entry) and the `User-Agent`.
pub fn client_info(
    state: State,
) -> impl Filter<Extract = (ClientInfo,), Error = Rejection> + Clone {
    warp::ext::optional::<ClientAddr>()
        .map(|addr: Option<ClientAddr>| addr.map(|a| a.0))
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .and(warp::header::optional::<String>("user-agent"))
        .map(
            move |peer: Option<SocketAddr>, forwarded: Option<String>, user_agent| {
                let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
                let ip = forwarded
                    .filter(|_| state.config.server.trust_proxy)
                    .and_then(|f| f.split(',').next()?.trim().parse().ok())
                    .unwrap_or(peer_ip);
                ClientInfo { ip, user_agent }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_host_is_allowed_others_are_not() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(
            "http://localhost:8080",
            Some("localhost:8080"),
            None,
            &none
        ));
        assert!(!origin_allowed(
            "http://evil.example",
            Some("localhost:8080"),
            None,
            &none
        ));
        assert!(!origin_allowed("null", Some("localhost:8080"), None, &none));
        assert!(!origin_allowed("http://localhost:8080", None, None, &none));
    }

    #[test]
    fn listed_origins_are_allowed() {
        let allowed = vec!["https://app.example/".to_owned()];
        assert!(origin_allowed(
            "https://app.example",
            Some("api.example"),
            None,
            &allowed
        ));
    }

    #[test]
    fn forwarded_proto_must_match_when_trusted() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(
            "https://a.example",
            Some("a.example"),
            Some("https"),
            &none
        ));
        assert!(!origin_allowed(
            "http://a.example",
            Some("a.example"),
            Some("https"),
            &none
        ));
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            #[allow(dead_code)]
            username: String,
        }
        let e = parse_json::<B>(br#"{"username": 5}"#).unwrap_err();
        assert!(format!("{e:?}").contains("username"));
        let e = parse_json::<B>(b"{}").unwrap_err();
        assert!(format!("{e:?}").contains("username: required"));
        assert!(parse_json::<B>(b"{nope").is_err());
    }

    #[test]
    fn json_errors_never_show_serde_internals() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct LoginBody {
            username: String,
            password: String,
        }
        let message = |body: &[u8]| format!("{:?}", parse_json::<LoginBody>(body).unwrap_err());
        let array = message(b"[]");
        assert!(array.contains("must be a JSON object, not"), "{array}");
        assert!(!array.contains("LoginBody"), "{array}");
        let syntax = message(b"{nope");
        assert!(
            syntax.contains("not valid JSON (line 1, column 2)"),
            "{syntax}"
        );
        let typed = message(br#"{"username": 5, "password": "x"}"#);
        assert!(
            typed.contains("username: expected a string, got integer 5"),
            "{typed}"
        );
    }
}
