//! Logs name requests, never secrets.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn no_password_cookie_or_token_reaches_the_log() {
    let site = Site::new("");
    let server = site.start(&[("RUST_LOG", "trace")]);
    server.register("alice").await;
    let wrong = "a wrong password used once";
    assert_eq!(
        server.login("alice", wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let cookie = server.login_cookie("alice").await;
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
    assert_eq!(server.logout(&cookie).await, StatusCode::NO_CONTENT);
    let (status, log) = server.stop_with("-TERM");
    assert!(status.success());

    assert!(
        log.contains("/api/auth/login") && log.contains("status=200"),
        "requests are logged:\n{log}"
    );
    let value = cookie.split_once('=').unwrap().1;
    let (signature, token) = value.split_at(44);
    for secret in [PASSWORD, wrong, value, signature, token] {
        assert!(!log.contains(secret), "the log contains a secret: {secret}");
    }
}
