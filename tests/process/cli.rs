//! The offline CLI: users, sessions and `check`, run as an operator would.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn user_add_creates_an_admin_who_can_log_in() {
    let site = Site::new("");
    let (status, stderr) = site.user_add("root", "admin", &format!("{PASSWORD}\n"));
    assert!(status.success(), "{stderr}");
    let server = site.start(&[]);
    let res = server.login("root", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");
}

#[test]
fn user_add_refuses_a_short_password_and_a_bad_name() {
    let site = Site::new("");
    let (status, stderr) = site.run(
        &[
            "user",
            "add",
            "root",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        &[],
        "short\n",
    );
    assert!(!status.success());
    assert!(stderr.contains("password"), "{stderr}");
    let (status, stderr) = site.run(
        &[
            "user",
            "add",
            "x",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    );
    assert!(!status.success());
    assert!(stderr.contains("username"), "{stderr}");
}

#[test]
fn user_add_refuses_a_taken_name() {
    let site = Site::new("");
    let args = [
        "user",
        "add",
        "root",
        "--email",
        "root@example.com",
        "--password-stdin",
    ];
    let input = format!("{PASSWORD}\n");
    assert!(site.run(&args, &[], &input).0.success());
    let (status, stderr) = site.run(&args, &[], &input);
    assert!(!status.success());
    assert!(stderr.contains("taken"), "{stderr}");
}

#[tokio::test]
async fn user_add_refuses_while_a_server_holds_the_database() {
    let site = Site::new("");
    let server = site.start(&[]);
    let (status, stderr) = site.run(
        &[
            "user",
            "add",
            "root",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    );
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("in use by another sessiond process"),
        "{stderr}"
    );
    assert_eq!(
        server.login("root", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Adds a user through the CLI.
fn add(site: &Site, name: &str, role: &str) {
    let (status, stderr) = site.user_add(name, role, &format!("{PASSWORD}\n"));
    assert!(status.success(), "{stderr}");
}

/// Runs a command; returns its stdout, asserting success.
fn stdout_of(site: &Site, args: &[&str]) -> String {
    let out = site.command(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn user_list_prints_a_table_and_json() {
    let site = Site::new("");
    add(&site, "root", "admin");
    add(&site, "alice", "user");
    let table = stdout_of(&site, &["user", "list"]);
    let lines: Vec<_> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("USERNAME") && lines[0].contains("ROLE")
    );
    assert!(
        lines[1].contains("root") && lines[1].contains("admin"),
        "{table}"
    );
    assert!(
        lines[2].contains("alice") && lines[2].contains("user"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&stdout_of(&site, &["user", "list", "--json"])).unwrap();
    let names: Vec<_> = json["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, ["root", "alice"]);
}

#[test]
fn set_role_and_remove_refuse_to_leave_no_admin() {
    let site = Site::new("");
    add(&site, "root", "admin");
    add(&site, "alice", "user");
    let (status, stderr) = site.run(&["user", "set-role", "root", "user"], &[], "");
    assert!(!status.success());
    assert!(stderr.contains("no admin"), "{stderr}");
    let (status, stderr) = site.run(&["user", "remove", "root"], &[], "");
    assert!(!status.success());
    assert!(stderr.contains("no admin"), "{stderr}");
    assert!(
        stdout_of(&site, &["user", "set-role", "alice", "admin"]).contains("alice is now admin")
    );
    assert!(stdout_of(&site, &["user", "remove", "root"]).contains("removed user root"));
    let json: Value = serde_json::from_str(&stdout_of(&site, &["user", "list", "--json"])).unwrap();
    assert_eq!(json["users"].as_array().unwrap().len(), 1);
    let (status, stderr) = site.run(&["user", "remove", "nobody"], &[], "");
    assert!(!status.success());
    assert!(stderr.contains("no user named"), "{stderr}");
}

#[tokio::test]
async fn sessions_list_and_revoke_offline() {
    let site = Site::new("");
    add(&site, "alice", "user");
    add(&site, "bob", "user");
    let server = site.start(&[]);
    let alice = server.login_cookie("alice").await;
    let bob = server.login_cookie("bob").await;
    server.login_cookie("bob").await;
    server.stop_with("-TERM");

    let json: Value =
        serde_json::from_str(&stdout_of(&site, &["sessions", "list", "--json"])).unwrap();
    assert_eq!(json["sessions"].as_array().unwrap().len(), 3);
    let bobs: Value = serde_json::from_str(&stdout_of(
        &site,
        &["sessions", "list", "--user", "bob", "--json"],
    ))
    .unwrap();
    let bobs = bobs["sessions"].as_array().unwrap();
    assert_eq!(bobs.len(), 2);
    assert!(bobs
        .iter()
        .all(|s| s["username"] == "bob" && s["live"] == true));
    let table = stdout_of(&site, &["sessions", "list"]);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        !table.contains(&bob.split_once('=').unwrap().1[44..]),
        "no token in the listing"
    );

    assert!(stdout_of(&site, &["sessions", "revoke", "--user", "bob"]).contains("revoked 2"));
    let server = site.start(&[]);
    assert_eq!(server.me(&bob).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.me(&alice).await, StatusCode::OK);
    server.stop_with("-TERM");
    assert!(stdout_of(&site, &["sessions", "revoke", "--all"]).contains("revoked 1"));
    let server = site.start(&[]);
    assert_eq!(server.me(&alice).await, StatusCode::UNAUTHORIZED);
}

#[test]
fn sessions_revoke_needs_a_target() {
    let site = Site::new("");
    let (status, _) = site.run(&["sessions", "revoke"], &[], "");
    assert!(!status.success());
}

#[tokio::test]
async fn every_offline_command_refuses_while_a_server_runs() {
    let site = Site::new("");
    add(&site, "alice", "user");
    let _server = site.start(&[]);
    for args in [
        &["user", "list"][..],
        &["user", "set-role", "alice", "admin"],
        &["user", "remove", "alice"],
        &["sessions", "list"],
        &["sessions", "revoke", "--all"],
        &["check"],
    ] {
        let (status, stderr) = site.run(args, &[], "");
        assert!(!status.success(), "{args:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("in use by another sessiond process"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn check_passes_on_a_used_database_and_names_damage() {
    let site = Site::new("");
    add(&site, "alice", "user");
    let server = site.start(&[]);
    server.login_cookie("alice").await;
    server.stop_with("-TERM");
    let ok = stdout_of(&site, &["check"]);
    assert!(ok.starts_with("ok: 1 users, 1 sessions"), "{ok}");

    edit_with_sled(&site, |db| {
        db.open_tree("user_names")
            .unwrap()
            .remove(b"alice")
            .unwrap();
        db.open_tree("session_expiry").unwrap().clear().unwrap();
    });
    let out = site.command(&["check"]).output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("user_names: no entry for user"), "{stdout}");
    assert!(stdout.contains("session_expiry: missing entry"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 inconsistencies"));
}

#[tokio::test]
async fn user_mfa_lists_factors_and_mfa_reset_lets_a_user_who_lost_them_back_in() {
    let site = Site::new("");
    add(&site, "alice", "user");
    let server = site.start(&[]);
    let cookie = server.login_cookie("alice").await;
    let (totp, _) = enrol_totp(&server, &cookie).await;
    let secret = totp.secret().to_base32();
    server.stop_with("-TERM");

    let table = stdout_of(&site, &["user", "mfa", "alice"]);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(table.contains("totp"), "{table}");
    assert!(!table.contains(&secret));
    let said = stdout_of(&site, &["user", "mfa-reset", "alice"]);
    assert!(said.contains("1 session(s) ended"), "{said}");
    let json: Value =
        serde_json::from_str(&stdout_of(&site, &["user", "mfa", "alice", "--json"])).unwrap();
    assert_eq!(json["factors"], serde_json::json!([]));
    let (status, stderr) = site.run(&["user", "mfa-reset", "nobody"], &[], "");
    assert!(!status.success() && stderr.contains("nobody"), "{stderr}");

    // The password alone signs in again.
    let server = site.start(&[]);
    let res = server.login("alice", PASSWORD).await;
    assert!(res.headers().contains_key(reqwest::header::SET_COOKIE));
}
