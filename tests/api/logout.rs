use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    let cookie = app.register_and_login("alice").await;
    let res = app.logout(&cookie).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let set = set_cookie_of(&res);
    assert!(
        set.starts_with("connect.sid=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.metric("sessiond_sessions_active").await, 0);
}

#[tokio::test]
async fn logout_without_a_session_still_answers_204() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie_of(&res).contains("Max-Age=0"));
}

#[tokio::test]
async fn logout_ends_only_its_own_session() {
    let app = spawn_app().await;
    let first = app.register_and_login("alice").await;
    let second = cookie_of(&app.login("alice", PASSWORD).await);
    app.logout(&first).await;
    assert_eq!(app.me(&second).await.status(), StatusCode::OK);
}
