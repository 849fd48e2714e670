use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn registering_returns_the_user_and_no_session() {
    let app = spawn_app().await;
    let res = app.register("alice").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no session is made"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "user");
    assert!(user["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(user["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(user.get("passwordHash").is_none() && user.get("password_hash").is_none());
}

#[tokio::test]
async fn names_and_emails_are_taken_ignoring_case() {
    let app = spawn_app().await;
    app.register("alice").await;
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"username": "ALICE", "email": "new@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "username_taken").await;
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"username": "bob", "email": "Alice@Example.COM", "password": PASSWORD}),
            None,
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_registrations_of_one_name_make_one_user() {
    let app = spawn_app().await;
    let attempts = (0..8).map(|i| {
        let body = json!({"username": "racer", "email": format!("r{i}@example.com"), "password": PASSWORD});
        let req = app.client.post(app.url("/api/auth/register")).json(&body).send();
        async move { req.await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT));
}

#[tokio::test]
async fn invalid_fields_are_named() {
    let app = spawn_app().await;
    for (body, field) in [
        (
            json!({"username": "ab", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "bad name", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "abc", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "abc", "email": "a@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "abc", "email": "a@example.com", "password": "x".repeat(129)}),
            "password",
        ),
        (
            json!({"username": "abc", "email": "a@example.com"}),
            "password",
        ),
        (
            json!({"username": 7, "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
    ] {
        let res = app.post_json("/api/auth/register", &body, None).await;
        let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(message.contains(field), "{message:?} should name {field}");
    }
}

#[tokio::test]
async fn closed_registration_is_refused() {
    let app =
        spawn_app_with(|c| c.auth.registration = sessiond::config::Registration::Closed).await;
    let res = app.register("alice").await;
    expect_error(res, StatusCode::FORBIDDEN, "registration_closed").await;
}

/// A taken name or e-mail says which field is taken, and nothing about
/// the account that holds it.
#[tokio::test]
async fn a_conflict_reveals_nothing_but_which_field_is_taken() {
    let app = spawn_app().await;
    app.register("alice").await;
    for (body, code) in [
        (
            json!({"username": "alice", "email": "other@example.com", "password": PASSWORD}),
            "username_taken",
        ),
        (
            json!({"username": "other", "email": "alice@example.com", "password": PASSWORD}),
            "email_taken",
        ),
    ] {
        let res = app.post_json("/api/auth/register", &body, None).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        let got: Value = res.json().await.unwrap();
        let error = got["error"].as_object().unwrap();
        assert_eq!(got.as_object().unwrap().len(), 1, "{got}");
        assert_eq!(error.len(), 2, "only code and message: {got}");
        assert_eq!(error["code"], code);
        let message = error["message"].as_str().unwrap().to_lowercase();
        for secret in [
            "alice@example.com",
            "0000000000000001",
            "admin",
            "createdat",
        ] {
            assert!(!message.contains(secret), "{message}");
        }
    }
}
