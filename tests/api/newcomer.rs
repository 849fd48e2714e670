//! The small things a newcomer hits first: every answer says what to do,
//! every route answers `HEAD` and `OPTIONS`, a wrong method names the
//! right ones, and a front end on another port can call the API.

use reqwest::header::{ALLOW, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiond::http::route_table::ROUTES;

use crate::helpers::*;

/// A concrete path for a route template.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "0000000000000001")
        .replace("{room}", "general")
}

#[tokio::test]
async fn an_unknown_route_is_a_404_that_names_the_path() {
    let app = spawn_app().await;
    let res = app.get("/api/auth/whoami", None).await;
    let message = expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    assert!(message.contains("/api/auth/whoami"), "{message}");
}

#[tokio::test]
async fn a_user_id_that_is_a_name_gets_a_404_showing_what_ids_look_like() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    let res = app
        .send(
            Method::PATCH,
            "/api/admin/users/alice",
            &admin,
            Some(json!({"role": "admin"})),
        )
        .await;
    let message = expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    assert!(
        message.to_lowercase().contains("no user with id alice"),
        "{message}"
    );
    assert!(message.contains("0000000000000001"), "{message}");
    let res = app
        .send(
            Method::DELETE,
            "/api/admin/users/00000000000000ff",
            &admin,
            None,
        )
        .await;
    let message = expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    assert!(message.contains("00000000000000ff"), "{message}");
}

#[tokio::test]
async fn bad_origin_names_the_origin_and_the_setting() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .header(ORIGIN, "http://evil.example")
        .json(&json!({"username": "x", "email": "x@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let message = expect_error(res, StatusCode::FORBIDDEN, "bad_origin").await;
    assert!(message.contains("http://evil.example"), "{message}");
    assert!(message.contains("server.allowed_origins"), "{message}");
}

#[tokio::test]
async fn a_413_names_the_limit_and_the_setting() {
    let app = spawn_app_with(|c| c.server.max_body_bytes = 100).await;
    let res = app
        .post_raw("/api/auth/login", Some("application/json"), vec![b' '; 101])
        .await;
    let message = expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(message.contains("100 bytes"), "{message}");
    assert!(message.contains("server.max_body_bytes"), "{message}");
}

#[tokio::test]
async fn a_429_says_in_how_many_seconds_as_its_header_does() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_account = 1).await;
    app.register("alice").await;
    app.login("alice", "wrong password, wrong").await;
    let res = app.login("alice", PASSWORD).await;
    let retry = res.headers()["retry-after"].to_str().unwrap().to_owned();
    let message = expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert!(
        message.contains(&format!("in {retry} seconds")),
        "{message} (Retry-After {retry})"
    );
}

#[tokio::test]
async fn a_400_names_the_field_and_never_shows_serde_internals() {
    let app = spawn_app().await;
    let cases: [(&[u8], &str); 4] = [
        (b"[]", "must be a JSON object"),
        (b"{\"username\": \"a\"", "not valid JSON (line 1, column"),
        (
            b"{\"username\": 5, \"password\": \"x\"}",
            "username: expected a string",
        ),
        (b"{\"username\": \"a\"}", "password: required"),
    ];
    for (body, wanted) in cases {
        let res = app
            .post_raw("/api/auth/login", Some("application/json"), body.to_vec())
            .await;
        let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(message.contains(wanted), "{message} for {body:?}");
        for internal in ["LoginBody", "struct", "invalid length", "expected ident"] {
            assert!(!message.contains(internal), "{message} for {body:?}");
        }
    }
}

#[tokio::test]
async fn every_get_route_answers_head_with_the_same_status_and_no_body() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    for route in ROUTES.iter().filter(|r| r.methods.contains(&Method::GET)) {
        let path = concrete(route.path);
        let get = app.send(Method::GET, &path, &admin, None).await.status();
        let head = app.send(Method::HEAD, &path, &admin, None).await;
        assert_eq!(head.status(), get, "HEAD {path}");
        assert_ne!(head.status(), StatusCode::METHOD_NOT_ALLOWED, "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }
    let health = app.client.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_method_is_a_405_with_allow_naming_the_right_ones() {
    let app = spawn_app().await;
    let res = app.get("/api/auth/login", None).await;
    assert_eq!(res.headers()[ALLOW], "POST, OPTIONS");
    let message = expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert!(message.contains("POST"), "{message}");
    let res = app
        .client
        .put(app.url("/api/auth/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[ALLOW], "GET, HEAD, DELETE, OPTIONS");
}

#[tokio::test]
async fn the_route_table_is_what_the_server_serves() {
    let app = spawn_app().await;
    let (admin, _) = app.admin().await;
    for route in ROUTES {
        let path = concrete(route.path);
        for method in route.methods {
            let res = app.send(method.clone(), &path, &admin, None).await;
            assert_ne!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            let body = res.text().await.unwrap();
            assert!(
                !body.contains("There is no route"),
                "{method} {path}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_headers_and_a_preflight() {
    let front = "http://localhost:5173";
    let app = spawn_app_with(|c| c.server.allowed_origins = vec![front.into()]).await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/api/auth/login"))
        .header(ORIGIN, front)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], front);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("content-type"));
    assert_eq!(h["vary"], "Origin");

    app.register("alice").await;
    let login = app
        .client
        .post(app.url("/api/auth/login"))
        .header(ORIGIN, front)
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["access-control-allow-origin"], front);
    assert_eq!(login.headers()["access-control-allow-credentials"], "true");
    assert_eq!(login.headers()["vary"], "Origin");
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let app =
        spawn_app_with(|c| c.server.allowed_origins = vec!["http://app.example".into()]).await;
    for method in [Method::OPTIONS, Method::GET] {
        let res = app
            .client
            .request(method.clone(), app.url("/api/auth/me"))
            .header(ORIGIN, "http://evil.example")
            .send()
            .await
            .unwrap();
        if method == Method::OPTIONS {
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
        }
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-allow-methods",
        ] {
            assert!(res.headers().get(name).is_none(), "{method} carries {name}");
        }
    }
    let unknown = app
        .client
        .request(Method::OPTIONS, app.url("/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_unlocks_a_throttled_account() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_account = 2).await;
    app.register("alice").await;
    for _ in 0..2 {
        app.login("alice", "wrong password, wrong").await;
    }
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let (admin, _) = app.admin().await;
    let alice_id = app.listed_user(&admin, "alice").await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = app.register_and_login("bob").await;
    let refused = app
        .send(
            Method::POST,
            &format!("/api/admin/users/{alice_id}/unlock"),
            &bob,
            None,
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let res = app
        .send(
            Method::POST,
            &format!("/api/admin/users/{alice_id}/unlock"),
            &admin,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    let nobody = app
        .send(
            Method::POST,
            "/api/admin/users/00000000000000ff/unlock",
            &admin,
            None,
        )
        .await;
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn user_ids_are_dense_in_registration_order() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let body: Value = app.register(name).await.json().await.unwrap();
        ids.push(body["user"]["id"].as_str().unwrap().to_owned());
    }
    // root, the admin every test app starts with, is user 1.
    assert_eq!(
        ids,
        ["0000000000000002", "0000000000000003", "0000000000000004"]
    );
}
