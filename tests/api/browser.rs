//! The page at `/`, used by a person in a real browser: headless Chromium
//! driven over WebDriver (chromedriver, `fantoccini`) against the real
//! server. Skipped in one line without Chromium, failed in CI without it.
//! Screenshots of each page go to `target/screenshots/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::tools::*;

/// Long enough for a slow CI machine; the page is meant to react at once.
const WAIT: Duration = Duration::from_secs(10);

/// chromedriver on a free port, and the browsers it starts.
struct Driver {
    url: String,
    _proc: Proc,
    dir: tempfile::TempDir,
}

impl Driver {
    fn start() -> Option<Driver> {
        let driver = tool("chromedriver", "chromium-driver")?;
        tool("chromium", "chromium")?;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"));
        let proc = Proc::start(
            cmd,
            "chromedriver",
            port,
            &dir.path().join("chromedriver.log"),
        );
        Some(Driver {
            url: format!("http://127.0.0.1:{port}"),
            _proc: proc,
            dir,
        })
    }

    /// A new browser with its own profile (so its own cookies).
    async fn browser(&self, name: &str) -> Browser {
        let profile = self.dir.path().join(name);
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1440,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        // fantoccini's TLS (unused: chromedriver is plain HTTP on loopback)
        // sees two rustls providers in the test build; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session");
        Browser {
            client,
            driver: self.url.clone(),
        }
    }
}

struct Browser {
    client: Client,
    driver: String,
}

impl Browser {
    async fn goto(&self, app: &TestApp, hash: &str) {
        self.client
            .goto(&app.url(&format!("/{hash}")))
            .await
            .unwrap();
    }

    async fn visible(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if el.is_displayed().await.unwrap_or(false) {
                    return el;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{css} did not show within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn hidden(&self, css: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let shown = match self.client.find(Locator::Css(css)).await {
                Ok(el) => el.is_displayed().await.unwrap_or(false),
                Err(_) => false,
            };
            if !shown {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{css} still shows");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text_of(&self, css: &str, wanted: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let text = self.visible(css).await.text().await.unwrap_or_default();
            if text.contains(wanted) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{css} says {text:?}, not {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let el = self.visible(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.visible(css).await.click().await.unwrap();
    }

    async fn sign_in(&self, app: &TestApp, name: &str, password: &str) {
        self.goto(app, "#/signin").await;
        self.fill("#signin-login", name).await;
        self.fill("#signin-password", password).await;
        self.click("#signin-submit").await;
    }

    async fn screenshot(&self, name: &str, width: u32) {
        self.client.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
        self.client.set_window_size(1440, 900).await.unwrap();
    }

    /// The browser's console so far: script errors and CSP violations
    /// are logged there as SEVERE.
    async fn severe_console_entries(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let logs: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        logs["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    // The API's own 401s (signed out, a wrong password)
                    // are answers the page handles, not errors.
                    .filter(|e| {
                        !e["message"].as_str().unwrap_or_default().contains(
                            "Failed to load resource: the server responded with a status of 401",
                        )
                    })
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_person_signs_in_manages_sessions_chats_and_loses_admin() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    let page = app.get("/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'"
    );

    // Register and sign in through the page; a wrong password first.
    let first = driver.browser("first").await;
    first.goto(&app, "").await;
    first.screenshot("signin", 1440).await;
    first.screenshot("signin", 360).await;
    first.fill("#register-username", "alice").await;
    first.fill("#register-email", "alice@example.com").await;
    first.fill("#register-password", PASSWORD).await;
    first.click("#register-submit").await;
    first.text_of("#register-done", "alice").await;
    first
        .sign_in(&app, "alice", "not the password at all")
        .await;
    first
        .text_of("#signin-error", "Invalid username or password")
        .await;
    first.sign_in(&app, "alice", PASSWORD).await;
    first.text_of("#sessions tbody", "(this device)").await;
    first.screenshot("account", 1440).await;
    first.screenshot("account", 360).await;

    // A second browser signs in and revokes the first: the first page is
    // back at sign-in, saying so.
    let second = driver.browser("second").await;
    second.sign_in(&app, "alice", PASSWORD).await;
    second.text_of("#sessions tbody", "(this device)").await;
    second
        .click("#sessions tbody tr:not(:has(.current)) button")
        .await;
    first.visible("#view-signin").await;
    first.text_of("#notice", "ended").await;

    // Two users chat across two browsers.
    let (root_cookie, _) = app.admin().await;
    first.sign_in(&app, "root", PASSWORD).await;
    first.visible("#view-account").await;
    first.goto(&app, "#/chat").await;
    second.goto(&app, "#/chat").await;
    first.text_of("#chat-state", "open").await;
    second.text_of("#chat-state", "open").await;
    second.fill("#send-text", "hello from alice").await;
    second.click("#send-form button").await;
    first.text_of("#messages", "hello from alice").await;
    first.screenshot("chat", 1440).await;

    // Alice is made an admin, sees the admin page; root demotes her there,
    // and her admin page is gone on her next navigation.
    let alice_id = app.listed_user(&root_cookie, "alice").await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .send(
            Method::PATCH,
            &format!("/api/admin/users/{alice_id}"),
            &root_cookie,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    second.goto(&app, "#/admin").await;
    second.visible("#view-admin").await;
    first.goto(&app, "#/admin").await;
    first.text_of("#users tbody", "alice").await;
    first.screenshot("admin", 1440).await;
    first.screenshot("admin", 360).await;
    first
        .visible(&format!("#users tr[data-id='{alice_id}'] select"))
        .await
        .select_by_value("user")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while app.listed_user(&root_cookie, "alice").await.unwrap()["role"] != "user" {
        assert!(
            std::time::Instant::now() < deadline,
            "the demotion never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.goto(&app, "#/account").await;
    second.goto(&app, "#/admin").await;
    second.visible("#view-account").await;
    second.hidden("#view-admin").await;
    second.hidden("#nav-admin").await;

    for browser in [&first, &second] {
        let severe = browser.severe_console_entries().await;
        assert!(severe.is_empty(), "console errors: {severe:#?}");
    }
    first.client.clone().close().await.unwrap();
    second.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_page_is_served_with_its_policy_and_can_be_turned_off() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/sessiond.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let res = app.get(path, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert_eq!(
            res.headers()["content-security-policy"],
            "default-src 'self'; frame-ancestors 'none'",
            "{path}"
        );
        let body = res.text().await.unwrap();
        assert!(
            !body.contains("https://"),
            "{path} loads something from elsewhere"
        );
    }
    let html = app.get("/", None).await.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "inline script or style"
    );
    let off = spawn_app_with(|c| c.server.ui = false).await;
    for path in ["/", "/app.js", "/sessiond.js"] {
        let res = off.get(path, None).await;
        expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
    }
}
