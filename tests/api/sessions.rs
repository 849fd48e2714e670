//! A user sees and ends their own sessions, and changes their password.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn sessions(app: &TestApp, cookie: &str) -> Vec<Value> {
    let res = app.get("/api/auth/sessions", Some(cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_user_sees_their_live_sessions_with_exactly_one_current() {
    let app = spawn_app().await;
    let laptop = app.register_and_login("alice").await;
    let phone = cookie_of(&app.login("alice", PASSWORD).await);
    let _other_user = app.register_and_login("bob").await;
    let list = sessions(&app, &laptop).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let me: Value = app.me(&laptop).await.json().await.unwrap();
    let current = list.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["id"], me["session"]["id"]);
    for cookie in [&laptop, &phone] {
        let value = cookie.split_once('=').unwrap().1;
        let text = serde_json::to_string(&list).unwrap();
        assert!(!text.contains(&value[44..]), "a token leaked into the list");
    }
}

#[tokio::test]
async fn ending_one_of_my_sessions_by_id() {
    let app = spawn_app().await;
    let laptop = app.register_and_login("alice").await;
    let phone = cookie_of(&app.login("alice", PASSWORD).await);
    let phone_id = {
        let me: Value = app.me(&phone).await.json().await.unwrap();
        me["session"]["id"].as_str().unwrap().to_owned()
    };
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/auth/sessions/{phone_id}"),
            &laptop,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&phone).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&laptop).await.status(), StatusCode::OK);
    // Already ended: now it is not one of my live sessions.
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/auth/sessions/{phone_id}"),
            &laptop,
            None,
        )
        .await;
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn another_users_session_id_is_the_same_404_as_none() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let bob = app.register_and_login("bob").await;
    let bob_id = {
        let me: Value = app.me(&bob).await.json().await.unwrap();
        me["session"]["id"].as_str().unwrap().to_owned()
    };
    let theirs = app
        .send(
            Method::DELETE,
            &format!("/api/auth/sessions/{bob_id}"),
            &alice,
            None,
        )
        .await;
    let theirs_body = expect_error(theirs, StatusCode::NOT_FOUND, "not_found").await;
    let nobodys = app
        .send(
            Method::DELETE,
            "/api/auth/sessions/0123456789abcdef",
            &alice,
            None,
        )
        .await;
    let nobodys_body = expect_error(nobodys, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(theirs_body, nobodys_body);
    assert_eq!(app.me(&bob).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn ending_my_current_session_by_id_clears_the_cookie() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("alice").await;
    let me: Value = app.me(&cookie).await.json().await.unwrap();
    let id = me["session"]["id"].as_str().unwrap();
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/auth/sessions/{id}"),
            &cookie,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie_of(&res).contains("Max-Age=0"));
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logging_out_everywhere_else() {
    let app = spawn_app().await;
    let keep = app.register_and_login("alice").await;
    let others = [
        cookie_of(&app.login("alice", PASSWORD).await),
        cookie_of(&app.login("alice", PASSWORD).await),
    ];
    let bob = app.register_and_login("bob").await;
    let res = app
        .send(Method::DELETE, "/api/auth/sessions", &keep, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"revoked": 2}));
    for other in &others {
        assert_eq!(app.me(other).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.me(&keep).await.status(), StatusCode::OK);
    assert_eq!(app.me(&bob).await.status(), StatusCode::OK);
    assert_eq!(sessions(&app, &keep).await.len(), 1);
}

#[tokio::test]
async fn session_routes_need_a_session() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/auth/sessions"),
        (Method::DELETE, "/api/auth/sessions"),
        (Method::DELETE, "/api/auth/sessions/abc"),
        (Method::POST, "/api/auth/password"),
    ] {
        let res = app
            .send(
                method,
                path,
                "connect.sid=nothing",
                Some(json!({"currentPassword": "x", "newPassword": "y"})),
            )
            .await;
        expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn changing_the_password_replaces_every_session() {
    let app = spawn_app().await;
    let here = app.register_and_login("alice").await;
    let elsewhere = cookie_of(&app.login("alice", PASSWORD).await);
    let new_password = "a brand new password";
    let res = app
        .send(
            Method::POST,
            "/api/auth/password",
            &here,
            Some(json!({"currentPassword": PASSWORD, "newPassword": new_password})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let fresh = cookie_of(&res);
    assert_ne!(fresh, here);
    assert_eq!(app.me(&fresh).await.status(), StatusCode::OK);
    assert_eq!(
        app.me(&here).await.status(),
        StatusCode::UNAUTHORIZED,
        "old cookie refused"
    );
    assert_eq!(app.me(&elsewhere).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("alice", new_password).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing_and_counts_toward_throttling() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_account = 2).await;
    let cookie = app.register_and_login("alice").await;
    let attempt =
        json!({"currentPassword": "not my password", "newPassword": "a brand new password"});
    let res = app
        .send(
            Method::POST,
            "/api/auth/password",
            &cookie,
            Some(attempt.clone()),
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        app.me(&cookie).await.status(),
        StatusCode::OK,
        "the session stays"
    );
    assert_eq!(
        app.login("alice", "wrong again, wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = app.login("alice", PASSWORD).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

#[tokio::test]
async fn a_new_password_must_meet_the_policy() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("alice").await;
    let res = app
        .send(
            Method::POST,
            "/api/auth/password",
            &cookie,
            Some(json!({"currentPassword": PASSWORD, "newPassword": "short"})),
        )
        .await;
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(message.contains("newPassword"), "{message}");
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}
