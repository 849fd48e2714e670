//! Timeouts, lazy touch, the pruner, and a touch racing a logout.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn last_seen(app: &TestApp, cookie: &str) -> String {
    let body: Value = app.me(cookie).await.json().await.unwrap();
    body["session"]["lastSeenAt"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_idle_session_ends() {
    let app = spawn_app_with(|c| {
        c.session.idle_timeout = Duration::from_secs(1);
        c.session.prune_interval = Duration::from_secs(3600);
    })
    .await;
    let cookie = app.register_and_login("alice").await;
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn activity_keeps_a_session_but_not_past_its_absolute_end() {
    let app = spawn_app_with(|c| {
        c.session.idle_timeout = Duration::from_millis(1500);
        c.session.absolute_timeout = Duration::from_secs(4);
        c.session.touch_interval = Duration::ZERO;
        c.session.prune_interval = Duration::from_secs(3600);
    })
    .await;
    let cookie = app.register_and_login("alice").await;
    // Active every 300 ms for 3 s: twice the idle timeout, still in.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reads_within_the_touch_interval_do_not_write() {
    let app = spawn_app_with(|c| c.session.touch_interval = Duration::from_secs(3600)).await;
    let cookie = app.register_and_login("alice").await;
    let first = last_seen(&app, &cookie).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(last_seen(&app, &cookie).await, first);
}

#[tokio::test]
async fn reads_after_the_touch_interval_record_activity() {
    let app = spawn_app_with(|c| c.session.touch_interval = Duration::ZERO).await;
    let cookie = app.register_and_login("alice").await;
    let first = last_seen(&app, &cookie).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_ne!(last_seen(&app, &cookie).await, first);
}

#[tokio::test]
async fn the_pruner_removes_ended_sessions() {
    let app = spawn_app_with(|c| {
        c.session.absolute_timeout = Duration::from_millis(500);
        c.session.prune_interval = Duration::from_secs(3600);
    })
    .await;
    let cookie = app.register_and_login("alice").await;
    assert_eq!(app.metric("sessiond_sessions_active").await, 1);
    // The pruner wakes at the earliest deadline, not after prune_interval.
    for _ in 0..100 {
        if app.metric("sessiond_sessions_pruned_total").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.metric("sessiond_sessions_pruned_total").await, 1);
    assert_eq!(app.metric("sessiond_sessions_active").await, 0);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

/// Many threads, so the touch and the logout really run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_touch_racing_a_logout_never_brings_the_session_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let app = spawn_app_with(|c| c.session.touch_interval = Duration::ZERO).await;
    for round in 0..5 {
        let cookie = app.register_and_login(&format!("racer{round}")).await;
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (client, url) = (app.client.clone(), app.url("/api/auth/me"));
                let (cookie, stop) = (cookie.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = client.get(&url).header("cookie", &cookie).send().await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(app.logout(&cookie).await.status(), StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        assert_eq!(
            app.me(&cookie).await.status(),
            StatusCode::UNAUTHORIZED,
            "round {round}"
        );
        assert_eq!(
            app.metric("sessiond_sessions_active").await,
            0,
            "round {round}"
        );
    }
}
