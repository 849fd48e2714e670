use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn login_sets_a_signed_cookie_and_me_answers() {
    let app = spawn_app().await;
    app.register("alice").await;
    let res = app.login("Alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let set = set_cookie_of(&res);
    for part in [
        "connect.sid=",
        "Path=/",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=86400",
    ] {
        assert!(set.contains(part), "{set} lacks {part}");
    }
    assert!(
        !set.contains("Secure"),
        "development cookies are not Secure"
    );
    let cookie = cookie_of(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");

    let res = app.me(&cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    let session = &body["session"];
    assert_eq!(session["current"], true);
    assert_eq!(session["ip"], "127.0.0.1");
    for field in [
        "id",
        "createdAt",
        "lastSeenAt",
        "expiresAt",
        "idleExpiresAt",
        "userAgent",
    ] {
        assert!(session[field].is_string(), "session.{field} in {session}");
    }
    let token = cookie.split_once('=').unwrap().1;
    assert!(
        !token.contains(session["id"].as_str().unwrap()),
        "the public id is not the token"
    );
}

#[tokio::test]
async fn login_by_email_works() {
    let app = spawn_app().await;
    app.register("alice").await;
    let res = app
        .post_json(
            "/api/auth/login",
            &json!({"email": "ALICE@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = spawn_app().await;
    app.register("alice").await;
    let wrong = app.login("alice", "not the password at all").await;
    assert!(wrong.headers().get("set-cookie").is_none());
    let wrong = expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app.login("nobody", PASSWORD).await;
    let unknown = expect_error(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn every_login_makes_a_new_session_and_ends_the_one_sent_along() {
    let app = spawn_app().await;
    let first = app.register_and_login("alice").await;
    let res = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "alice", "password": PASSWORD}),
            Some(&first),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let second = cookie_of(&res);
    assert_ne!(first, second);
    assert_eq!(app.me(&first).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&second).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn forged_and_altered_cookies_are_refused() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("alice").await;
    let (name, value) = cookie.split_once('=').unwrap();
    let mut altered = value.to_owned();
    let last = altered.pop().unwrap();
    altered.push(if last == 'a' { 'b' } else { 'a' });
    for bad in [
        format!("{name}={altered}"),
        format!("{name}={}", &value[44..]),
        format!("{name}=garbage"),
        format!("other={value}"),
        String::new(),
    ] {
        let res = app.me(&bad).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let res = app.get("/api/auth/me", None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn host_prefixed_cookie_names_force_secure() {
    let app = spawn_app_with(|c| c.session.cookie_name = "__Host-sid".into()).await;
    app.register("alice").await;
    let res = app.login("alice", PASSWORD).await;
    let set = set_cookie_of(&res);
    assert!(set.starts_with("__Host-sid="), "{set}");
    assert!(set.contains("Secure") && set.contains("Path=/") && !set.contains("Domain"));
}

#[tokio::test]
async fn production_cookies_are_secure() {
    let app =
        spawn_app_with(|c| c.server.environment = sessiond::config::Environment::Production).await;
    app.register("alice").await;
    let res = app.login("alice", PASSWORD).await;
    assert!(set_cookie_of(&res).contains("Secure"));
}

#[tokio::test]
async fn a_login_without_a_name_is_invalid() {
    let app = spawn_app().await;
    let res = app
        .post_json("/api/auth/login", &json!({"password": PASSWORD}), None)
        .await;
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(message.contains("username"), "{message}");
}

/// The store keys a session by the time its token carries, so sessions that
/// end together are pruned together; the token must carry the login time.
#[tokio::test]
async fn a_session_cookie_carries_its_login_time_in_front_of_the_secret() {
    let app = spawn_app().await;
    let now = sessiond::store::now_ms;
    app.register("ann").await;
    let mut times = Vec::new();
    for _ in 0..2 {
        let before = now();
        let res = app.login("ann", PASSWORD).await;
        let after = now();
        let cookie = cookie_of(&res);
        let token = &cookie.split_once('=').unwrap().1[44..];
        assert_eq!(token.len(), 80, "time and 32 random bytes, in hex");
        let issued = u64::from_str_radix(&token[..16], 16).unwrap();
        assert!(
            (before..=after).contains(&issued),
            "{issued} not in {before}..={after}"
        );
        times.push(issued);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(times[0] < times[1]);
}

#[tokio::test]
async fn remember_false_gives_a_browser_session_cookie_and_says_so() {
    let app = spawn_app().await;
    app.register("alice").await;
    let res = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "alice", "password": PASSWORD, "remember": false}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let set = set_cookie_of(&res);
    assert!(!set.contains("Max-Age"), "{set}");
    assert!(!set.contains("Expires"), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    let cookie = cookie_of(&res);
    let me: Value = app.me(&cookie).await.json().await.unwrap();
    assert_eq!(me["session"]["remember"], false);
    // The server's timeouts are unchanged: the session ends when they say.
    assert!(me["session"]["expiresAt"].is_string());

    // A password change keeps the choice for the fresh session.
    let res = app
        .post_json(
            "/api/auth/password",
            &json!({"currentPassword": PASSWORD, "newPassword": "another long password"}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!set_cookie_of(&res).contains("Max-Age"));
}

#[tokio::test]
async fn remember_defaults_to_true() {
    let app = spawn_app().await;
    app.register("alice").await;
    let res = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "alice", "password": PASSWORD, "remember": true}),
            None,
        )
        .await;
    assert!(set_cookie_of(&res).contains("Max-Age="));
    let cookie = app.register_and_login("bob").await;
    let me: Value = app.me(&cookie).await.json().await.unwrap();
    assert_eq!(me["session"]["remember"], true);
    let sessions: Value = app
        .get("/api/auth/sessions", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["remember"], true);
}
