//! Mail asked for is mail sent: a recovery answered while no SMTP server
//! listens, then a SIGKILL, and the mail still arrives once the server
//! restarts and the SMTP server is up; the code in it never reaches a log.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::mailbox::{available, code_in, to_of, Mailbox};
use crate::tools::free_port;

#[tokio::test]
async fn a_mail_answered_for_is_sent_after_a_crash_and_its_code_is_in_no_log() {
    if !available() {
        return;
    }
    let port = free_port();
    let site = Site::new(&format!("[mail]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\n"));
    let server = site.start(&[]);
    server.register("alice").await;
    let res = server
        .client
        .post(server.url("/api/auth/recovery"))
        .json(&json!({ "login": "alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let before = server.log();
    // Killed before any SMTP server could take the mail.
    server.crash();
    let mailbox = Mailbox::start_on(port).unwrap();
    let server = site.start(&[]);
    let mail = mailbox
        .wait_for_subject(crate::mailbox::RECOVERY, 1)
        .await
        .remove(0);
    assert!(to_of(&mail).contains("alice@example.com"), "{mail}");
    let code = code_in(&mail);
    let res = server
        .client
        .post(server.url("/api/auth/recovery/verify"))
        .json(
            &json!({ "login": "alice", "code": code, "newPassword": "a brand new long password" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    mailbox
        .wait_for_subject("Your sessiond password was changed", 1)
        .await;
    let log = format!("{before}{}", server.log());
    assert!(log.contains("mail sent"), "{log}");
    assert!(!log.contains(&code), "the code reached a log:\n{log}");
    assert!(
        !log.contains("brand new"),
        "the password reached a log:\n{log}"
    );
}
