use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let res = app.get("/healthz", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn metrics_count_logins_and_sessions() {
    let app = spawn_app().await;
    let res = app.get("/metrics", None).await;
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    for name in [
        "sessiond_sessions_active",
        "sessiond_logins_total{result=\"success\"}",
        "sessiond_logins_total{result=\"failure\"}",
        "sessiond_logins_total{result=\"throttled\"}",
        "sessiond_sessions_pruned_total",
        "sessiond_ws_connections",
    ] {
        assert!(
            text.contains(&format!("\n{name} ")),
            "{name} missing:\n{text}"
        );
    }
    app.register_and_login("alice").await;
    app.login("alice", "wrong password, wrong").await;
    assert_eq!(app.metric("sessiond_sessions_active").await, 1);
    assert_eq!(
        app.metric("sessiond_logins_total{result=\"success\"}")
            .await,
        1
    );
    assert_eq!(
        app.metric("sessiond_logins_total{result=\"failure\"}")
            .await,
        1
    );
}

#[tokio::test]
async fn only_auth_and_admin_answers_are_no_store() {
    let app = spawn_app().await;
    let res = app.get("/healthz", None).await;
    assert!(res.headers().get("cache-control").is_none());
    let res = app.get("/api/auth/me", None).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
}
