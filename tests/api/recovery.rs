//! A person who forgot their password gets back in without an admin: a
//! code by mail (a real SMTP server, aiosmtpd), or an operator's link on
//! a server with no mail. Nothing tells whether an account exists.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{cookie_of, expect_error, spawn_app, spawn_app_with, TestApp, PASSWORD};
use crate::mailbox::{code_in, to_of, Mailbox, RECOVERY};
use crate::tools::free_port;

const NEW_PASSWORD: &str = "a brand new long password";

async fn with_mail(mailbox: &Mailbox) -> TestApp {
    let url = mailbox.url();
    spawn_app_with(move |c| c.mail.smtp_url = url).await
}

async fn ask(app: &TestApp, login: &str) -> reqwest::Response {
    app.post_json("/api/auth/recovery", &json!({ "login": login }), None)
        .await
}

async fn recover(app: &TestApp, login: &str, code: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/auth/recovery/verify",
        &json!({ "login": login, "code": code, "newPassword": password }),
        None,
    )
    .await
}

#[tokio::test]
async fn a_person_who_forgot_their_password_gets_a_code_by_mail_and_a_new_session() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let app = with_mail(&mailbox).await;
    let old = app.register_and_login("alice").await;

    let res = ask(&app, "alice").await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "sent"})
    );
    let mail = mailbox.wait_for_subject(RECOVERY, 1).await.remove(0);
    assert!(to_of(&mail).contains("alice@example.com"), "{mail}");
    let code = code_in(&mail);

    // A password the rules refuse does not use the code up.
    let res = recover(&app, "alice", &code, "short").await;
    expect_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = recover(&app, "alice", &code, NEW_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let new = cookie_of(&res);
    // The code came to her address: it counts as verified now.
    let me: Value = app.me(&new).await.json().await.unwrap();
    assert_eq!(me["user"]["emailVerified"], true);
    // Every other session ended; the old password is gone, the new works.
    assert_eq!(app.me(&old).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("alice", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    // A code is used once.
    let res = recover(&app, "alice", &code, "yet another long password").await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    // And the owner is told.
    mailbox
        .wait_for_subject("Your sessiond password was changed", 1)
        .await;
    assert!(app.metric("sessiond_mail_total{result=\"sent\"}").await >= 2);
    assert_eq!(
        app.metric("sessiond_recovery_total{result=\"used\"}").await,
        1
    );
}

#[tokio::test]
async fn asking_for_a_code_says_nothing_about_whether_the_account_exists() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let app = with_mail(&mailbox).await;
    assert_eq!(app.register("bob").await.status(), StatusCode::CREATED);
    let mut answers = Vec::new();
    for login in [
        "bob",
        "bob@example.com",
        "nobody",
        "nobody@example.com",
        "x",
    ] {
        let started = Instant::now();
        let res = ask(&app, login).await;
        let took = started.elapsed();
        let status = res.status();
        let headers: Vec<String> = ["content-type", "cache-control"]
            .iter()
            .map(|h| format!("{:?}", res.headers().get(*h)))
            .collect();
        let body = res.text().await.unwrap();
        // No answer comes sooner than the floor, so an account that exists
        // (a code made, a mail queued) cannot be told by its speed.
        assert!(took >= Duration::from_millis(250), "{login}: {took:?}");
        answers.push((status, headers, body));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // Only the two that name bob sent mail, both to bob.
    mailbox.wait_for_subject(RECOVERY, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = mailbox.with_subject(RECOVERY);
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().all(|m| to_of(m).contains("bob@example.com")));
}

#[tokio::test]
async fn a_code_is_refused_for_another_account_and_after_five_wrong_tries() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let app = with_mail(&mailbox).await;
    for name in ["carol", "dave"] {
        assert_eq!(app.register(name).await.status(), StatusCode::CREATED);
        assert_eq!(ask(&app, name).await.status(), StatusCode::ACCEPTED);
    }
    let mails = mailbox.wait_for_subject(RECOVERY, 2).await;
    let code_for = |name: &str| code_in(mails.iter().find(|m| to_of(m).contains(name)).unwrap());
    let (carols, daves) = (code_for("carol"), code_for("dave"));
    // Dave's code is not Carol's; then four more wrong guesses: five. The
    // first comes from a browser signed in as Carol, who stays signed in.
    let signed_in = app.login_cookie("carol").await;
    let res = app
        .post_json(
            "/api/auth/recovery/verify",
            &json!({ "login": "carol", "code": daves, "newPassword": NEW_PASSWORD }),
            Some(&signed_in),
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    assert_eq!(app.me(&signed_in).await.status(), StatusCode::OK);
    for wrong in ["000000", "111111", "222222", "333333"] {
        let wrong = if wrong == carols { "444444" } else { wrong };
        let res = recover(&app, "carol", wrong, NEW_PASSWORD).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    // The right code, sixth: refused, its tries are used up.
    let res = recover(&app, "carol", &carols, NEW_PASSWORD).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    assert_eq!(app.login("carol", PASSWORD).await.status(), StatusCode::OK);
    // Dave's own code still works for Dave.
    assert_eq!(
        recover(&app, "dave", &daves, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn asking_again_and_again_is_throttled_whether_or_not_the_account_exists() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let app = with_mail(&mailbox).await;
    assert_eq!(app.register("erin").await.status(), StatusCode::CREATED);
    for login in ["erin", "ghost"] {
        for _ in 0..3 {
            assert_eq!(ask(&app, login).await.status(), StatusCode::ACCEPTED);
        }
        let res = ask(&app, login).await;
        assert!(res.headers().get("retry-after").is_some());
        expect_error(res, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    }
    // Three mails to erin, no more.
    mailbox.wait_for_subject(RECOVERY, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailbox.with_subject(RECOVERY).len(), 3);
}

#[tokio::test]
async fn a_mail_queued_while_the_smtp_server_is_down_arrives_once_when_it_is_up() {
    if !crate::mailbox::available() {
        return;
    }
    let port = free_port();
    let app = spawn_app_with(move |c| c.mail.smtp_url = format!("smtp://127.0.0.1:{port}")).await;
    assert_eq!(app.register("frank").await.status(), StatusCode::CREATED);
    // Answered at once, though nothing listens for mail yet.
    assert_eq!(ask(&app, "frank").await.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mailbox = Mailbox::start_on(port).unwrap();
    let mail = mailbox.wait_for_subject(RECOVERY, 1).await.remove(0);
    assert!(to_of(&mail).contains("frank@example.com"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(mailbox.with_subject(RECOVERY).len(), 1, "sent once");
}

#[tokio::test]
async fn two_instances_send_each_mail_once() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let app = with_mail(&mailbox).await;
    let Some(twin) = app.twin().await else {
        println!("skipped: two instances need the Redis backend (SESSIOND_TEST_BACKEND=redis)");
        return;
    };
    for name in ["gina", "hank", "ivan", "jill"] {
        assert_eq!(app.register(name).await.status(), StatusCode::CREATED);
        let on = if name.len() % 2 == 0 { &app } else { &twin };
        assert_eq!(ask(on, name).await.status(), StatusCode::ACCEPTED);
    }
    // Each registration's verification code and each recovery code, once.
    mailbox.wait_for(8).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mailbox.all().len(), 8, "each mail once");
    assert_eq!(mailbox.with_subject(RECOVERY).len(), 4);
}

#[tokio::test]
async fn without_mail_recovery_says_so_and_an_operators_link_works_once() {
    let app = spawn_app().await;
    let old = app.register_and_login("kim").await;
    let res = ask(&app, "kim").await;
    expect_error(res, StatusCode::NOT_IMPLEMENTED, "mail_not_configured").await;
    let res = recover(&app, "kim", "123456", NEW_PASSWORD).await;
    expect_error(res, StatusCode::NOT_IMPLEMENTED, "mail_not_configured").await;

    let made = app.reset_link("kim").await;
    assert_eq!(made["expiresIn"], 3600);
    let link = made["link"].as_str().unwrap();
    let (page, token) = link.split_once("/#/reset/").expect(link);
    assert_eq!(page, format!("http://{}", app.addr));
    // Opening the link (what a mail scanner does) changes nothing: the
    // token is in the fragment, which a browser never sends.
    assert_eq!(app.get("/", None).await.status(), StatusCode::OK);
    let with = |token: &str| json!({ "token": token, "newPassword": NEW_PASSWORD });
    let res = app
        .post_json("/api/auth/recovery/verify", &with(&token[1..]), None)
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    let res = app
        .post_json("/api/auth/recovery/verify", &with(token), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.me(&cookie_of(&res)).await.status(), StatusCode::OK);
    assert_eq!(app.me(&old).await.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .post_json("/api/auth/recovery/verify", &with(token), None)
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    assert_eq!(
        app.login("kim", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_code_lasts_fifteen_minutes_and_a_get_of_what_a_mail_links_changes_nothing() {
    use sessiond::domain::UserId;
    use sessiond::store::{now_ms, TicketKey, TicketKind, TicketRecord};
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let app = with_mail(&mailbox).await;
    let cookie = app.register_and_login("erin").await;
    let id = UserId::parse(&app.id_of(&cookie).await).unwrap();
    assert_eq!(ask(&app, "erin").await.status(), StatusCode::ACCEPTED);
    let mail = mailbox.wait_for_subject(RECOVERY, 1).await.remove(0);
    // A mail scanner follows every link in the mail (here on this server,
    // whatever host the link names): the code survives.
    let paths: Vec<&str> = mail
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .filter_map(|w| w.strip_prefix("http://"))
        .map(|rest| rest.find('/').map_or("/", |at| &rest[at..]))
        .collect();
    assert!(!paths.is_empty(), "{mail}");
    for path in paths {
        assert_eq!(app.get(path, None).await.status(), StatusCode::OK, "{path}");
    }
    let key = TicketKey::User(TicketKind::Recovery, id);
    let held = app.store.ticket(&key).await.unwrap().expect("the code");
    let left = held.deadline_ms.saturating_sub(now_ms());
    assert!((895_000..=900_000).contains(&left), "{left} ms left");
    // Fifteen minutes on (ended, not yet pruned): the right code is refused.
    let ended = TicketRecord {
        deadline_ms: now_ms() - 1,
        ..held
    };
    app.store.put_ticket(&key, &ended).await.unwrap();
    let res = recover(&app, "erin", &code_in(&mail), NEW_PASSWORD).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    assert_eq!(app.login("erin", PASSWORD).await.status(), StatusCode::OK);
}
