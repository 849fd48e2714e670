//! Answered means on disk: a SIGKILL right after an answer changes nothing.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_login_answered_survives_a_crash() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    server.crash();
    let server = site.start(&[]);
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
}

#[tokio::test]
async fn a_logout_answered_stays_done_after_a_crash() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    assert_eq!(server.logout(&cookie).await, StatusCode::NO_CONTENT);
    server.crash();
    let server = site.start(&[]);
    assert_eq!(server.me(&cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_keeps_users_and_sessions() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    let (status, log) = server.stop_with("-TERM");
    assert!(status.success(), "exit {status:?}\n{log}");
    let server = site.start(&[]);
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
    assert_eq!(
        server.login("alice", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sigint_stops_cleanly_too() {
    let site = Site::new("");
    let server = site.start(&[]);
    let (status, log) = server.stop_with("-INT");
    assert!(status.success(), "exit {status:?}\n{log}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let site = Site::new("");
    let server = site.start(&[]);
    let (status, stderr) = site.run(&["serve"], &[], "");
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("in use by another sessiond process"),
        "{stderr}"
    );
    server.register("alice").await; // the first one is unharmed
}

#[tokio::test]
async fn secret_rotation_keeps_old_cookies_while_the_old_secret_is_listed() {
    const OLD: &str = "old-secret-old-secret-old-secret-old!";
    const NEW: &str = "new-secret-new-secret-new-secret-new!";
    let site = Site::new("");
    let server = site.start(&[("SESSION_SECRET", OLD)]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    server.stop_with("-TERM");
    let server = site.start(&[("SESSION_SECRET", NEW), ("SESSION_SECRET_OLD", OLD)]);
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
    server.stop_with("-TERM");
    let server = site.start(&[("SESSION_SECRET", NEW)]);
    assert_eq!(server.me(&cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_database_from_a_newer_sessiond_is_refused_and_left_alone() {
    let site = Site::new("");
    let db_path = site.data_dir().join("db");
    {
        let db = sled::open(&db_path).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(b"schema_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let (status, stderr) = site.run(&["serve"], &[], "");
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("schema version 99"), "{stderr}");
    let db = sled::open(&db_path).unwrap();
    assert_eq!(
        db.open_tree("meta")
            .unwrap()
            .get(b"schema_version")
            .unwrap()
            .unwrap()
            .as_ref(),
        &99u32.to_be_bytes()
    );
    assert!(
        !db.tree_names().iter().any(|n| n.as_ref() == b"sessions"),
        "nothing was created"
    );
}

#[tokio::test]
async fn a_revocation_answered_stays_done_after_a_crash() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let keep = server.login_cookie("alice").await;
    let other = server.login_cookie("alice").await;
    let res = reqwest::Client::new()
        .delete(server.url("/api/auth/sessions"))
        .header("cookie", &keep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.crash();
    let server = site.start(&[]);
    assert_eq!(server.me(&other).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.me(&keep).await, StatusCode::OK);
}

#[tokio::test]
async fn a_session_not_remembered_stays_not_remembered_across_a_crash() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let res = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD, "remember": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    server.crash();
    let server = site.start(&[]);
    let me: serde_json::Value = reqwest::Client::new()
        .get(server.url("/api/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["session"]["remember"], false);
}

#[tokio::test]
async fn a_revocation_answered_keeps_its_log_entry_after_a_crash() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    let laptop = server.login_cookie("alice").await;
    let phone = server.login_cookie("alice").await;
    let me: serde_json::Value = server
        .client
        .get(server.url("/api/auth/me"))
        .header(reqwest::header::COOKIE, &phone)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let phone_id = me["session"]["id"].as_str().unwrap().to_owned();
    let res = server
        .client
        .delete(server.url(&format!("/api/auth/sessions/{phone_id}")))
        .header(reqwest::header::COOKIE, &laptop)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    server.crash();
    // Read offline, as an operator would after the crash.
    let out = site
        .command(&["activity", "--user", "alice", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = log["entries"].as_array().unwrap();
    let revoked: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "session_revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{log:#}");
    assert_eq!(revoked[0]["sessionId"], phone_id.as_str());
    assert_eq!(revoked[0]["actor"]["kind"], "user");
    let logins = entries.iter().filter(|e| e["kind"] == "login").count();
    assert_eq!(logins, 2, "{log:#}");
    // And the revocation itself held.
    let server = site.start(&[]);
    assert_eq!(server.me(&phone).await, StatusCode::UNAUTHORIZED);
}
