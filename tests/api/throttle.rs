use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn failed_logins_per_account_lock_even_the_right_password_out() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_account = 3).await;
    app.register("alice").await;
    for _ in 0..3 {
        let res = app.login("alice", "wrong password, wrong").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app.login("alice", PASSWORD).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "Retry-After {retry}");
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // The account is known by e-mail too.
    let res = app
        .post_json(
            "/api/auth/login",
            &json!({"email": "alice@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.metric("sessiond_logins_total{result=\"throttled\"}")
            .await,
        2
    );
    assert_eq!(
        app.metric("sessiond_logins_total{result=\"failure\"}")
            .await,
        3
    );
}

#[tokio::test]
async fn failed_logins_per_ip_span_accounts() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_ip = 4).await;
    app.register("alice").await;
    for n in 0..4 {
        app.login(&format!("nobody{n}"), "wrong password, wrong")
            .await;
    }
    let res = app.login("alice", PASSWORD).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

/// Sends 40 wrong guesses at once, the n-th as `who(n)`: a username and
/// an `X-Forwarded-For` address (counted only behind `trust_proxy`).
/// Each must be checked (401) or refused (429); returns how many were
/// checked.
async fn forty_parallel_guesses(app: &TestApp, who: impl Fn(usize) -> (String, String)) -> usize {
    let guesses = (0..40).map(|n| {
        let (username, ip) = who(n);
        let req = app
            .client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": username, "password": "wrong password, wrong"}))
            .send();
        async move { req.await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    let checked = count(StatusCode::UNAUTHORIZED);
    assert_eq!(
        checked + count(StatusCode::TOO_MANY_REQUESTS),
        40,
        "{statuses:?}"
    );
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_cannot_slip_past_the_limit() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_account = 5).await;
    app.register("alice").await;
    let checked = forty_parallel_guesses(&app, |_| ("alice".into(), "203.0.113.1".into())).await;
    assert!(checked <= 5, "{checked} guesses were checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_at_many_accounts_from_one_ip_stop_at_the_ip_limit() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_ip = 8).await;
    app.register("alice").await;
    let checked =
        forty_parallel_guesses(&app, |n| (format!("user{n}"), "203.0.113.1".into())).await;
    assert!(checked <= 8, "{checked} guesses were checked");
    // The address is locked out, even with the right password.
    let res = app.login("alice", PASSWORD).await;
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_at_one_account_from_many_ips_stop_at_the_account_limit() {
    let app = spawn_app_with(|c| {
        c.server.trust_proxy = true;
        c.auth.max_failed_logins_per_account = 5;
    })
    .await;
    app.register("alice").await;
    let checked =
        forty_parallel_guesses(&app, |n| ("alice".into(), format!("203.0.113.{n}"))).await;
    assert!(checked <= 5, "{checked} guesses were checked");
    // A fresh address does not reopen the account.
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

#[tokio::test]
async fn a_success_forgives_earlier_failures_of_the_account() {
    let app = spawn_app_with(|c| c.auth.max_failed_logins_per_account = 3).await;
    app.register("alice").await;
    for _ in 0..2 {
        app.login("alice", "wrong password, wrong").await;
    }
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    for _ in 0..2 {
        app.login("alice", "wrong password, wrong").await;
    }
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

/// Unknown users are checked against a dummy hash: both failures answer the
/// same body, and their times are printed for the record (never asserted:
/// tests do not depend on timing).
#[tokio::test]
async fn unknown_user_and_wrong_password_look_and_take_alike() {
    use std::time::Instant;
    let app = spawn_app_with(|c| {
        c.auth.max_failed_logins_per_account = 1000;
        c.auth.max_failed_logins_per_ip = 1000;
        c.auth.argon2_memory_kib = 1024;
    })
    .await;
    app.register("alice").await;
    let mut times = [0f64; 2];
    let mut bodies: [Option<String>; 2] = [None, None];
    for _ in 0..20 {
        for (i, name) in ["alice", "nobody-here"].iter().enumerate() {
            let started = Instant::now();
            let res = app.login(name, "wrong password, wrong").await;
            times[i] += started.elapsed().as_secs_f64() * 1000.0 / 20.0;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            let body = res.text().await.unwrap();
            if let Some(seen) = &bodies[i] {
                assert_eq!(seen, &body);
            }
            bodies[i] = Some(body);
        }
    }
    assert_eq!(bodies[0], bodies[1], "one answer for both failures");
    eprintln!(
        "mean login failure: wrong password {:.2} ms, unknown user {:.2} ms",
        times[0], times[1]
    );
}
