//! `GET /api/auth/verify`, asked directly the way a proxy asks it.

use reqwest::header::{ACCEPT, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

/// Follows no redirects: a 302 is what is being tested.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_valid_session_gets_204_with_identity_headers_and_no_body() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let me: Value = app.me(&alice).await.json().await.unwrap();
    let res = app.get("/api/auth/verify", Some(&alice)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let h = res.headers().clone();
    assert_eq!(h["x-auth-user"], "alice");
    assert_eq!(h["x-auth-user-id"], me["user"]["id"].as_str().unwrap());
    assert_eq!(h["x-auth-email"], "alice@example.com");
    assert_eq!(h["x-auth-role"], "user");
    assert_eq!(
        h["x-auth-session-id"],
        me["session"]["id"].as_str().unwrap()
    );
    assert_eq!(h["cache-control"], "no-store");
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn no_session_is_401_and_a_forged_cookie_too() {
    let app = spawn_app().await;
    let res = app.get("/api/auth/verify", None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let res = app
        .get("/api/auth/verify", Some("connect.sid=forged.value"))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let alice = app.register_and_login("alice").await;
    app.logout(&alice).await;
    let res = app.get("/api/auth/verify", Some(&alice)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn role_admin_is_403_for_a_user_and_204_for_an_admin() {
    let app = spawn_app().await;
    let alice = app.register_and_login("alice").await;
    let (admin, _) = app.admin().await;
    let res = app.get("/api/auth/verify?role=admin", Some(&alice)).await;
    expect_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app.get("/api/auth/verify?role=admin", Some(&admin)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-auth-role"], "admin");
    let res = app.get("/api/auth/verify?role=user", Some(&alice)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get("/api/auth/verify?role=root", Some(&alice)).await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_browser_navigation_is_sent_to_sign_in_with_where_it_was_going() {
    let app = spawn_app().await;
    let client = no_redirects();
    let host = app.addr.to_string();
    // Caddy and Traefik name the target in X-Forwarded-*.
    let res = client
        .get(app.url("/api/auth/verify"))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", &host)
        .header("x-forwarded-uri", "/reports?q=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let wanted = format!("http://{host}/reports?q=1");
    let rd: String = url::form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
    assert_eq!(res.headers()[LOCATION], format!("/?rd={rd}"));
    // Or the caller names it in ?rd=.
    let res = client
        .get(app.url(&format!("/api/auth/verify?rd={rd}")))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    // An API client (no text/html) gets 401 either way.
    let res = client
        .get(app.url(&format!("/api/auth/verify?rd={rd}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn no_open_redirect_whatever_rd_says() {
    let app = spawn_app_with(|c| {
        c.forward_auth.allowed_redirect_hosts = vec!["app.example".into()];
    })
    .await;
    let client = no_redirects();
    let port = app.addr.port();
    for evil in [
        "https://evil.example/".to_owned(),
        "//evil.example".to_owned(),
        "/\\evil.example".to_owned(),
        "https://app.example@evil.example/".to_owned(),
        "https://evil.example\\@app.example/".to_owned(),
        "https://app.example:8443/".to_owned(),
        format!("http://127.0.0.1:{}/", port + 1),
        "javascript:alert(1)".to_owned(),
    ] {
        let rd: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        let res = client
            .get(app.url(&format!("/api/auth/verify?rd={rd}")))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "rd={evil}");
        assert!(res.headers().get(LOCATION).is_none(), "rd={evil}");
    }
    for good in [
        "https://app.example/x".to_owned(),
        format!("http://127.0.0.1:{port}/x"),
    ] {
        let rd: String = url::form_urlencoded::byte_serialize(good.as_bytes()).collect();
        let res = client
            .get(app.url(&format!("/api/auth/verify?rd={rd}")))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "rd={good}");
    }
}

#[tokio::test]
async fn header_names_and_the_sign_in_url_are_configurable() {
    let app = spawn_app_with(|c| {
        c.forward_auth.headers.user = "Remote-User".into();
        c.forward_auth.sign_in_url = "https://login.example/".into();
        c.forward_auth.allowed_redirect_hosts = vec!["app.example".into()];
    })
    .await;
    let alice = app.register_and_login("alice").await;
    let res = app.get("/api/auth/verify", Some(&alice)).await;
    assert_eq!(res.headers()["remote-user"], "alice");
    assert!(res.headers().get("x-auth-user").is_none());
    let res = no_redirects()
        .get(app.url("/api/auth/verify?rd=https%3A%2F%2Fapp.example%2F"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()[LOCATION],
        "https://login.example/?rd=https%3A%2F%2Fapp.example%2F"
    );
}

#[tokio::test]
async fn verify_counts_as_activity_and_answers_head() {
    let app = spawn_app_with(|c| c.session.touch_interval = std::time::Duration::ZERO).await;
    let alice = app.register_and_login("alice").await;
    let before = app.metric("sessiond_session_touches_total").await;
    let res = app
        .client
        .request(Method::HEAD, app.url("/api/auth/verify"))
        .header(COOKIE, &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-auth-user"], "alice");
    assert!(app.metric("sessiond_session_touches_total").await > before);
}
