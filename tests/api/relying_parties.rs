//! Real relying parties sign users in through sessiond: Apache's
//! mod_auth_openidc (the `deploy/oidc/apache.conf` example, run as it is)
//! and a Python app built on authlib (`tests/fixtures/oidc_rp.py`).

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use sessiond::config::Consent;

use crate::helpers::*;
use crate::provider::{browser, client, provider};
use crate::tools::{echo_upstream, example_config, free_port, tool, Proc};

/// Debian's Python, whose packages hold authlib (not a pyenv's).
const PYTHON: &str = "/usr/bin/python3";
/// What the tests give the apps as their secret.
const APP_SECRET: &str = "a secret for the relying party";

/// Whether authlib (and requests, its HTTP client) can run here; says
/// once why not (a failure in CI).
fn authlib() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import authlib, requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("authlib is not installed; CI must install it (apt-get install python3-authlib python3-requests)");
        }
        eprintln!("skipped: authlib is not installed (apt-get install python3-authlib python3-requests to run this test)");
    }
    ok
}

#[tokio::test]
async fn a_python_app_on_authlib_signs_in_refreshes_introspects_and_hears_the_logout() {
    if !authlib() {
        return;
    }
    let back = free_port();
    let mut rp = client("pyrp", Some(APP_SECRET), Consent::Once);
    rp.redirect_uris = vec!["http://127.0.0.1:9/cb".into()];
    rp.post_logout_redirect_uris = vec!["http://127.0.0.1:9/bye".into()];
    rp.backchannel_logout_uri = format!("http://127.0.0.1:{back}/backchannel");
    let app = provider(vec![rp]).await;
    assert_eq!(app.register("pia").await.status(), StatusCode::CREATED);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc_rp.py");
    let run = tokio::process::Command::new(PYTHON)
        .arg(script)
        .args(["--issuer", &format!("http://{}", app.addr)])
        .args(["--client-id", "pyrp", "--client-secret", APP_SECRET])
        .args(["--redirect-uri", "http://127.0.0.1:9/cb"])
        .args(["--post-logout-uri", "http://127.0.0.1:9/bye"])
        .args(["--backchannel-port", &back.to_string()])
        .args(["--username", "pia", "--password", PASSWORD])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the relying party finishes within 90 s")
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the relying party failed:\n{printed}");
    for step in [
        "token",
        "refresh",
        "introspection",
        "logout",
        "after_logout",
    ] {
        assert!(
            printed.contains(&format!("ok {step}:")),
            "no step {step}:\n{printed}"
        );
    }
}

/// A browser's cookies, by port (every server here is on 127.0.0.1).
#[derive(Default)]
struct Jar(HashMap<u16, HashMap<String, String>>);

impl Jar {
    fn header(&self, url: &reqwest::Url) -> String {
        let port = url.port().unwrap_or(80);
        self.0
            .get(&port)
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn keep(&mut self, url: &reqwest::Url, res: &reqwest::Response) {
        let jar = self.0.entry(url.port().unwrap_or(80)).or_default();
        for set in res.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let gone = value.is_empty() || attrs.to_ascii_lowercase().contains("max-age=0");
            if gone {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// GETs `url` and follows redirects (at most 10), as a browser would;
    /// the last answer and the URLs visited.
    async fn visit(&mut self, url: &str) -> (reqwest::Response, Vec<String>) {
        let client = browser();
        let mut url = reqwest::Url::parse(url).unwrap();
        let mut seen = vec![url.to_string()];
        for _ in 0..10 {
            let res = client
                .get(url.clone())
                .header(COOKIE, self.header(&url))
                .send()
                .await
                .unwrap();
            self.keep(&url, &res);
            if !res.status().is_redirection() {
                return (res, seen);
            }
            let to = res.headers()[LOCATION].to_str().unwrap();
            url = url.join(to).unwrap();
            seen.push(url.to_string());
        }
        panic!("more than 10 redirects: {seen:#?}");
    }
}

#[tokio::test]
async fn apache_mod_auth_openidc_signs_a_user_in_and_a_revoked_session_fails_its_next_refresh() {
    let Some(apache) = tool("apache2", "apache2") else {
        return;
    };
    let modules = std::path::Path::new("/usr/lib/apache2/modules");
    if !modules.join("mod_auth_openidc.so").exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("mod_auth_openidc is not installed; CI must install it (apt-get install libapache2-mod-auth-openidc)");
        }
        eprintln!("skipped: mod_auth_openidc is not installed (apt-get install libapache2-mod-auth-openidc to run this test)");
        return;
    }
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/protected/redirect_uri");
    let mut rp = client("apache", Some(APP_SECRET), Consent::Implicit);
    rp.redirect_uris = vec![redirect.clone()];
    let app = provider(vec![rp]).await;
    let upstream = echo_upstream().await;
    let site = example_config(
        "deploy/oidc/apache.conf",
        &[
            ("https://login.example.com", format!("http://{}", app.addr)),
            (
                "https://app.example.com",
                format!("http://127.0.0.1:{port}"),
            ),
            (
                "the secret sessiond oidc client add printed",
                APP_SECRET.into(),
            ),
            ("http://127.0.0.1:3000/", format!("http://{upstream}/")),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let m = modules.display();
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    std::fs::write(
        dir.path().join("apache2.conf"),
        format!(
            "ServerRoot {d}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {d}/apache.pid\n\
             ErrorLog {d}/error.log\nLogLevel warn auth_openidc:info\n\
             LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
             LoadModule authn_core_module {m}/mod_authn_core.so\n\
             LoadModule authz_core_module {m}/mod_authz_core.so\n\
             LoadModule authz_user_module {m}/mod_authz_user.so\n\
             LoadModule proxy_module {m}/mod_proxy.so\n\
             LoadModule proxy_http_module {m}/mod_proxy_http.so\n\
             LoadModule auth_openidc_module {m}/mod_auth_openidc.so\n\
             Include {d}/site.conf\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(apache);
    cmd.arg("-f")
        .arg(dir.path().join("apache2.conf"))
        .arg("-DFOREGROUND");
    let _apache = Proc::start(cmd, "apache2", port, &dir.path().join("out.log"));
    let error_log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();

    // The user is signed in to sessiond; the app sends them through it.
    assert_eq!(app.register("ada").await.status(), StatusCode::CREATED);
    let login = app.login("ada", PASSWORD).await;
    let mut jar = Jar::default();
    jar.keep(&reqwest::Url::parse(&app.url("/")).unwrap(), &login);
    let protected = format!("http://127.0.0.1:{port}/protected/page");
    let (res, hops) = jar.visit(&protected).await;
    assert_eq!(res.status(), StatusCode::OK, "{hops:#?}\n{}", error_log());
    assert!(
        hops.iter().any(|h| h.contains("/api/oidc/authorize")),
        "{hops:#?}"
    );
    let seen: Value = res.json().await.unwrap();
    assert_eq!(
        seen["headers"]["oidc_claim_preferred_username"], "ada",
        "{seen}"
    );
    assert_eq!(seen["path"], "/page");
    // Each request refreshes (the access token has under an hour left).
    let (res, hops) = jar.visit(&protected).await;
    assert_eq!(res.status(), StatusCode::OK, "{hops:#?}");
    assert_eq!(hops.len(), 1, "served without a new sign-in: {hops:#?}");

    // The sessiond session is revoked: the app's next refresh fails and
    // the user is sent to sign in again, where nobody is signed in now.
    let (admin, _) = app.admin().await;
    let id = app.id_of(&crate::helpers::cookie_of(&login)).await;
    let res = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/admin/users/{id}/sessions"),
            &admin,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, _) = jar.visit(&protected).await;
    let body = res.text().await.unwrap();
    assert!(
        !body.contains("oidc_claim_preferred_username"),
        "still served after the revocation: {body}"
    );
    let log = error_log();
    assert!(
        log.contains("access_token could not be refreshed"),
        "mod_auth_openidc's log names no failed refresh:\n{log}"
    );
    // Signed out of the app: the next visit goes back through sessiond,
    // where nobody is signed in any more.
    let (_, hops) = jar.visit(&protected).await;
    let last = hops.last().unwrap();
    assert!(
        last.contains("/?oidc=") && last.ends_with("&login=1"),
        "{hops:#?}"
    );
}
