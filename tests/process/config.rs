//! Bad settings end the process with one line that names the key.

use crate::helpers::*;

fn one_line_naming(site: &Site, env: &[(&str, &str)], needle: &str) {
    let (status, stderr) = site.run(&["serve"], env, "");
    assert!(!status.success(), "should refuse to start");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr:?} should name {needle}");
}

#[test]
fn an_unknown_key_is_named() {
    one_line_naming(
        &Site::new("[session]\nidle_timout = \"2h\"\n"),
        &[],
        "session.idle_timout",
    );
}

#[test]
fn a_wrong_type_is_named() {
    one_line_naming(
        &Site::new("[chat]\nhistory_on_join = \"many\"\n"),
        &[],
        "chat.history_on_join",
    );
}

#[test]
fn an_unparsable_duration_is_named() {
    one_line_naming(
        &Site::new("[session]\nprune_interval = \"soon\"\n"),
        &[],
        "session.prune_interval",
    );
}

#[test]
fn a_bad_environment_override_is_named() {
    one_line_naming(
        &Site::new(""),
        &[("SESSIOND_ENV", "staging")],
        "SESSIOND_ENV",
    );
}

#[test]
fn production_without_a_secret_refuses_to_start() {
    one_line_naming(
        &Site::new(""),
        &[("SESSIOND_ENV", "production")],
        "SESSION_SECRET",
    );
}

#[test]
fn production_with_a_short_secret_refuses_to_start() {
    one_line_naming(
        &Site::new(""),
        &[
            ("SESSIOND_ENV", "production"),
            ("SESSION_SECRET", "too-short"),
        ],
        "SESSION_SECRET",
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let site = Site::new("");
    std::fs::remove_file(&site.config).unwrap();
    one_line_naming(&site, &[], "config.toml");
}

#[tokio::test]
async fn development_keeps_its_generated_secret_across_restarts() {
    let site = Site::new("");
    let server = site.start(&[]);
    assert!(exists(&site.data_dir(), "dev-secret"));
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    server.stop_with("-TERM");
    let server = site.start(&[]);
    assert_eq!(server.me(&cookie).await, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn environment_overrides_the_file() {
    let site = Site::new("");
    let other = tempfile::tempdir().unwrap();
    let server = site.start(&[("SESSIOND_DATA_DIR", other.path().to_str().unwrap())]);
    server.register("alice").await;
    assert!(other.path().join("db").exists());
    assert!(!site.data_dir().join("db").exists());
}
