//! An operator backs up a server that is busy with logins, logouts and
//! chat, and restores it into a fresh data dir (or Redis prefix): `check`
//! passes, every login acknowledged before the backup began still works,
//! nothing ended before it began comes back, and the chat history is
//! there. A damaged file is refused, naming what is wrong, and nothing is
//! written.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::redis::{redis, site_on};

/// What was true before the backup began.
struct Before {
    live: Vec<String>,
    ended: Vec<String>,
}

/// Users, live and ended sessions and a chat line, then a backup taken
/// through the CLI while eight clients log in and out and chat.
async fn back_up_under_load(site: &Site, server: &Server, to: &Path) -> Before {
    for n in 0..4 {
        server.register(&format!("user{n}")).await;
    }
    let mut live = Vec::new();
    for n in 0..12 {
        live.push(server.login_cookie(&format!("user{}", n % 4)).await);
    }
    let ended: Vec<String> = live.drain(..4).collect();
    for cookie in &ended {
        assert_eq!(server.logout(cookie).await, StatusCode::NO_CONTENT);
    }
    let mut ws = connect(server, &live[0]).await;
    say(&mut ws, json!({"type": "join", "room": "general"})).await;
    next_json(&mut ws).await;
    say(
        &mut ws,
        json!({"type": "message", "room": "general", "text": "before the backup"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["text"], "before the backup");

    let done = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    let client = |i: usize| {
        let (done, answered) = (&done, &answered);
        async move {
            let name = format!("user{}", i % 4);
            let mut ws = connect(server, &server.login_cookie(&name).await).await;
            say(&mut ws, json!({"type": "join", "room": "load"})).await;
            next_json(&mut ws).await;
            while !done.load(Ordering::Relaxed) {
                let cookie = server.login_cookie(&name).await;
                say(
                    &mut ws,
                    json!({"type": "message", "room": "load", "text": "busy"}),
                )
                .await;
                assert_eq!(server.logout(&cookie).await, StatusCode::NO_CONTENT);
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let backup = async {
        // Some load first, so the backup runs in the middle of it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while answered.load(Ordering::Relaxed) < 8 {
            assert!(std::time::Instant::now() < deadline, "no load in 60 s");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let mut backup = site.command(&["backup", "--to", to.to_str().unwrap()]);
        let running = tokio::task::spawn_blocking(move || backup.output().unwrap());
        let out = tokio::time::timeout(std::time::Duration::from_secs(120), running)
            .await
            .expect("sessiond backup finishes within 2 minutes")
            .unwrap();
        done.store(true, Ordering::Relaxed);
        out
    };
    let (_, out) = tokio::join!(futures_util::future::join_all((0..8).map(client)), backup);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("backup written to"), "{said}");
    Before { live, ended }
}

/// Restores `file` into `fresh`, checks it, and serves it: what was live
/// before the backup is live, what had ended has not come back.
async fn restore_and_serve(fresh: &Site, file: &Path, before: &Before) {
    let (status, err) = fresh.run(&["restore", "--from", file.to_str().unwrap()], &[], "");
    assert!(status.success(), "{err}");
    let (status, err) = fresh.run(&["check"], &[], "");
    assert!(status.success(), "{err}");
    let server = fresh.start(&[]);
    for cookie in &before.live {
        assert_eq!(
            server.me(cookie).await,
            StatusCode::OK,
            "a login before the backup is lost"
        );
    }
    for cookie in &before.ended {
        assert_eq!(
            server.me(cookie).await,
            StatusCode::UNAUTHORIZED,
            "an ended session came back"
        );
    }
    let mut ws = connect(&server, &before.live[1]).await;
    say(&mut ws, json!({"type": "join", "room": "general"})).await;
    let joined = next_json(&mut ws).await;
    assert!(joined.to_string().contains("before the backup"), "{joined}");
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_into_a_fresh_data_dir() {
    let site = Site::new("");
    let server = site.start(&[]);
    let file = site.dir.path().join("site.backup");
    let before = back_up_under_load(&site, &server, &file).await;
    // The server's own credential file is private and goes with it.
    assert!(exists(&site.data_dir(), "backup-access"));
    let (status, _) = server.stop_with("-TERM");
    assert!(status.success());
    assert!(!exists(&site.data_dir(), "backup-access"));
    restore_and_serve(&Site::new(""), &file, &before).await;
}

#[tokio::test]
async fn a_backup_of_a_redis_prefix_taken_under_load_restores_into_an_empty_one() {
    let Some(redis) = redis() else { return };
    let site = site_on(&redis, "live:", "");
    let server = site.start(&[]);
    let file = site.dir.path().join("redis.backup");
    let before = back_up_under_load(&site, &server, &file).await;
    let fresh = site_on(&redis, "restored:", "");
    restore_and_serve(&fresh, &file, &before).await;
    // Not over what is there.
    let (status, err) = site.run(&["restore", "--from", file.to_str().unwrap()], &[], "");
    assert!(!status.success());
    assert!(err.contains("already holds data"), "{err}");
}

#[tokio::test]
async fn a_damaged_backup_is_refused_naming_what_is_wrong_and_nothing_is_written() {
    let site = Site::new("");
    let (status, err) = site.user_add("root", "admin", PASSWORD);
    assert!(status.success(), "{err}");
    let file = site.dir.path().join("good.backup");
    let (status, err) = site.run(&["backup", "--to", file.to_str().unwrap()], &[], "");
    assert!(status.success(), "{err}");
    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() - 10;
    flipped[middle] ^= 0x20;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", good[..good.len() - 7].to_vec(), "truncated"),
        ("flipped", flipped, "SHA-256"),
        (
            "zip",
            b"PK\x03\x04 some other program's file".to_vec(),
            "not a sessiond backup",
        ),
        ("empty", Vec::new(), "not a sessiond backup"),
    ];
    for (name, bytes, says) in cases {
        let fresh = Site::new("");
        let path = fresh.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (status, err) = fresh.run(&["restore", "--from", path.to_str().unwrap()], &[], "");
        assert!(!status.success(), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(
            !exists(&fresh.data_dir(), "db"),
            "{name}: something was written"
        );
    }
    // The good one restores (the same file, so the cases above were
    // refused for what was done to them).
    let fresh = Site::new("");
    let (status, err) = fresh.run(&["restore", "--from", file.to_str().unwrap()], &[], "");
    assert!(status.success(), "{err}");
}
