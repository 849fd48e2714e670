//! `sessiond user add`: the first admin has to come from somewhere.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn user_add_creates_an_admin_who_can_log_in() {
    let site = Site::new("");
    let (status, stderr) = site.run(
        &[
            "user",
            "add",
            "root",
            "--email",
            "root@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    );
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
