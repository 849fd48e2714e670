//! A newcomer's first commands: a command that fails leaves the database
//! sealed (no "not closed cleanly" next time), `user passwd` works, and
//! every refusal is one line saying what to do.

use std::net::TcpListener;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A site with one admin, `root`, added by the CLI.
fn site_with_root() -> Site {
    let site = Site::new("");
    let (status, stderr) = site.user_add("root", "admin", &format!("{PASSWORD}\n"));
    assert!(status.success(), "{stderr}");
    site
}

/// Runs a command that must fail, then checks that the database was left
/// sealed and the next command finds it closed cleanly.
fn fails_and_leaves_it_sealed(site: &Site, args: &[&str], env: &[(&str, &str)], says: &str) {
    let sealed = site.data_dir().join("db.sealed");
    assert!(sealed.exists(), "sealed before {args:?}");
    let (status, stderr) = site.run(args, env, "");
    assert!(!status.success(), "{args:?} succeeded");
    // Log lines (an info line at start-up, say) may come first; the
    // refusal itself is one line.
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("sessiond: "))
        .collect();
    assert_eq!(refusals.len(), 1, "{args:?}: {stderr}");
    assert!(refusals[0].contains(says), "{args:?}: {stderr}");
    assert!(sealed.exists(), "{args:?} left the database unsealed");
    let (status, stderr) = site.run(&["user", "list"], &[("RUST_LOG", "info")], "");
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("not closed cleanly"),
        "after {args:?}: {stderr}"
    );
}

#[test]
fn a_refused_offline_command_leaves_the_database_sealed() {
    let site = site_with_root();
    fails_and_leaves_it_sealed(
        &site,
        &["user", "set-role", "nobody", "admin"],
        &[],
        "no user named \"nobody\"",
    );
    fails_and_leaves_it_sealed(&site, &["user", "remove", "root"], &[], "no admin");
    fails_and_leaves_it_sealed(
        &site,
        &["sessions", "list", "--user", "nobody"],
        &[],
        "no user named",
    );
}

#[test]
fn a_server_that_refuses_to_start_leaves_the_database_sealed() {
    let site = site_with_root();
    fails_and_leaves_it_sealed(
        &site,
        &["serve"],
        &[("SESSIOND_ENV", "production")],
        "SESSION_SECRET",
    );
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_and_leaves_it_sealed(
        &site,
        &["serve"],
        &[("SESSIOND_LISTEN", &addr)],
        "server.listen",
    );
    let (_, stderr) = site.run(&["serve"], &[("SESSIOND_LISTEN", &addr)], "");
    assert!(stderr.contains("SESSIOND_LISTEN"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn user_add_with_nothing_on_stdin_says_so() {
    let site = Site::new("");
    let (status, stderr) = site.user_add("root", "user", "");
    assert!(!status.success());
    assert!(stderr.contains("no password on standard input"), "{stderr}");
}

#[tokio::test]
async fn user_passwd_sets_the_password_and_ends_every_session() {
    let site = site_with_root();
    let server = site.start(&[]);
    let cookie = server.login_cookie("root").await;
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
    server.stop_with("-TERM");

    let new_password = "a brand new long password";
    let (status, stderr) = site.run(
        &["user", "passwd", "root", "--password-stdin"],
        &[],
        &format!("{new_password}\n"),
    );
    assert!(status.success(), "{stderr}");
    let (status, stderr) = site.run(
        &["user", "passwd", "nobody", "--password-stdin"],
        &[],
        &format!("{new_password}\n"),
    );
    assert!(!status.success());
    assert!(stderr.contains("no user named"), "{stderr}");

    let server = site.start(&[]);
    assert_eq!(server.me(&cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.login("root", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.login("root", new_password).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn user_ids_stay_dense_across_restarts() {
    let site = site_with_root();
    for round in 0..2 {
        let server = site.start(&[]);
        server.register(&format!("user{round}")).await;
        server.stop_with("-TERM");
    }
    let out = site.command(&["user", "list", "--json"]).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["0000000000000001", "0000000000000002", "0000000000000003"]
    );
}
