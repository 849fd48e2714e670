//! What a careless or hostile client gets: clear 4xx answers in the JSON
//! error shape, never a 5xx.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_json() {
    let app = spawn_app().await;
    expect_error(
        app.get("/nope", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.get("/api/auth/nope", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let res = app.get("/api/auth/login", None).await;
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let res = app
        .client
        .delete(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let res = app.client.post(app.url("/healthz")).send().await.unwrap();
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whatever_its_header_says() {
    let app = spawn_app_with(|c| c.server.max_body_bytes = 1024).await;
    let big = format!(r#"{{"username":"{}","password":"x"}}"#, "a".repeat(2000));
    let res = app
        .post_raw(
            "/api/auth/login",
            Some("application/json"),
            big.clone().into_bytes(),
        )
        .await;
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Chunked: no Content-Length to trust.
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let res = app
        .post_raw("/api/auth/register", Some("text/plain"), b"hello".to_vec())
        .await;
    expect_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let res = app
        .post_raw("/api/auth/register", None, b"{}".to_vec())
        .await;
    expect_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in [
        &b"{"[..],
        b"{\"username\":",
        b"[]",
        b"null",
        b"{} trailing",
        b"\xff\xfe",
    ] {
        let res = app
            .post_raw("/api/auth/login", Some("application/json"), body.to_vec())
            .await;
        expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let res = app
        .post_raw("/api/auth/login", Some("application/json"), Vec::new())
        .await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_json_content_type_with_parameters_is_accepted() {
    let app = spawn_app().await;
    let body = json!({"username": "alice", "email": "a@example.com", "password": PASSWORD});
    let res = app
        .post_raw(
            "/api/auth/register",
            Some("application/json; charset=utf-8"),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_state_changing_routes() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("alice").await;
    let body = json!({"username": "alice", "password": PASSWORD});
    for path in ["/api/auth/login", "/api/auth/register", "/api/auth/logout"] {
        let res = app
            .client
            .post(app.url(path))
            .header("origin", "http://evil.example")
            .header("cookie", &cookie)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::FORBIDDEN, "bad_origin").await;
    }
    assert_eq!(
        app.me(&cookie).await.status(),
        StatusCode::OK,
        "logout was refused"
    );
}

#[tokio::test]
async fn the_own_origin_and_listed_origins_are_allowed() {
    let app =
        spawn_app_with(|c| c.server.allowed_origins = vec!["https://app.example".into()]).await;
    app.register("alice").await;
    let own = format!("http://{}", app.addr);
    for origin in [own.as_str(), "https://app.example"] {
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .header("origin", origin)
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "origin {origin}");
    }
}

#[tokio::test]
async fn reads_are_not_origin_checked() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("alice").await;
    let res = app
        .client
        .get(app.url("/api/auth/me"))
        .header("origin", "http://elsewhere.example")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "203.0.113.9")] {
        let app = spawn_app_with(|c| c.server.trust_proxy = trusted).await;
        app.register("alice").await;
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.1")
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let cookie = cookie_of(&res);
        let me: serde_json::Value = app.me(&cookie).await.json().await.unwrap();
        assert_eq!(me["session"]["ip"], expected, "trust_proxy = {trusted}");
    }
}

/// A path with a control character (an ANSI escape, a line break) never
/// reaches a route or the request log: hyper refuses it. (The log escapes
/// control characters anyway; this is the first of the two guards.)
#[tokio::test]
async fn a_path_with_a_control_character_is_refused_before_any_route() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let get = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    for path in ["/a\x1b[2Jb", "/a\x7fb", "/a\x01b", "/a\rb"] {
        let answer = get(path).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{path:?} got {answer:?}"
        );
    }
    // A control: the same request with a plain path reaches the routes.
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
}
