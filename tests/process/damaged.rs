//! Damaged or foreign data: a clear line and a non-zero exit when the
//! database cannot be used at all, a 503 for what cannot be read while
//! everything else is still served, and never a panic.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// Overwrites the stored record of the user named `name` with bytes that
/// do not decode, the way a bad sector or a buggy tool would.
fn damage_user_record(site: &Site, name: &str) {
    let db = sled::open(site.data_dir().join("db")).unwrap();
    let users = db.open_tree("users").unwrap();
    let key = users
        .iter()
        .map(Result::unwrap)
        .find(|(_, v)| v.windows(name.len()).any(|w| w == name.as_bytes()))
        .map(|(k, _)| k)
        .expect("the user's record is stored");
    users
        .insert(key, &[1u8, 0xff, 0xff, 0xff, 0xff][..])
        .unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn a_record_that_does_not_decode_is_a_503_for_its_user_and_nobody_else() {
    let site = Site::new("");
    let server = site.start(&[]);
    server.register("alice").await;
    server.register("bob").await;
    let alice = server.login_cookie("alice").await;
    let bob = server.login_cookie("bob").await;
    let (status, _) = server.stop_with("-TERM");
    assert!(status.success());

    damage_user_record(&site, "alice");

    let out = site.command(&["check"]).output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "check passed a damaged record:\n{report}"
    );
    assert!(report.contains("users"), "names the tree: {report}");
    assert!(!report.contains("panicked"), "{report}");

    let server = site.start(&[]);
    let res = reqwest::Client::new()
        .get(server.url("/api/auth/me"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable");
    let login = server.login("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Everyone else is served as before.
    assert_eq!(server.me(&bob).await, StatusCode::OK);
    server.register("carol").await;
    server.login_cookie("carol").await;

    let log = server.log();
    assert!(log.contains("damaged record in tree users"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_data_dir_the_server_cannot_read_is_one_line_and_a_failure() {
    let site = Site::new("");
    let (status, stderr) = site.run(&["user", "list"], &[], "");
    assert!(status.success(), "{stderr}");
    let db = site.data_dir().join("db");
    set_mode(&db, 0o000);
    // root reads anything: run the binary as nobody instead.
    let as_nobody = unsafe { libc::geteuid() } == 0;
    if as_nobody {
        set_mode(site.dir.path(), 0o755);
        set_mode(&site.data_dir(), 0o755);
        set_mode(&site.config, 0o644);
    }
    for args in [&["serve"][..], &["user", "list"], &["check"]] {
        let (status, stderr) = if as_nobody {
            run_as_nobody(&site, args)
        } else {
            site.run(args, &[], "")
        };
        set_mode(&db, 0o000);
        assert!(!status.success(), "{args:?} ran on an unreadable db");
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{stderr}");
        assert!(
            lines[0].contains("db"),
            "{args:?}: names the path: {stderr}"
        );
        assert!(
            lines[0].to_lowercase().contains("permission denied"),
            "{args:?}: says why: {stderr}"
        );
    }
    set_mode(&db, 0o755);
}

#[test]
fn a_data_dir_whose_db_is_not_a_directory_is_refused() {
    let site = Site::new("");
    std::fs::create_dir_all(site.data_dir()).unwrap();
    std::fs::write(site.data_dir().join("db"), b"not a database").unwrap();
    for args in [&["serve"][..], &["user", "list"]] {
        let (status, stderr) = site.run(args, &[], "");
        assert!(!status.success(), "{args:?} ran on a foreign db");
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{stderr}");
        assert!(
            lines[0].contains("db"),
            "{args:?}: names the path: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read(site.data_dir().join("db")).unwrap(),
        b"not a database"
    );
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn run_as_nobody(site: &Site, args: &[&str]) -> (std::process::ExitStatus, String) {
    let cmd = site.command(args);
    let program = cmd.get_program().to_owned();
    let rest: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(rest)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
