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
                    // The API's own 401s, 400s and 403s (signed out, a
                    // wrong password or code, an address not verified yet)
                    // are answers the page handles, not errors.
                    .filter(|e| {
                        let m = e["message"].as_str().unwrap_or_default();
                        !["401", "400", "403"].iter().any(|status| {
                            m.contains(&format!("the server responded with a status of {status}"))
                        })
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
    // Her recent activity shows the refused attempt and the sign-in.
    first.text_of("#activity tbody", "Sign-in refused").await;
    first.text_of("#activity tbody", "Signed in").await;
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
    // The admin's activity view has the promotion, by root.
    first.text_of("#audit tbody", "Role changed").await;
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

impl Browser {
    /// The page at `localhost`: WebAuthn refuses an IP address as the
    /// relying party, and sessiond's default origin is
    /// `http://localhost:<port>`.
    async fn goto_localhost(&self, app: &TestApp, hash: &str) {
        let url = app
            .url(&format!("/{hash}"))
            .replace("127.0.0.1", "localhost");
        self.client.goto(&url).await.unwrap();
    }

    /// A WebDriver command of the W3C WebAuthn extension, which fantoccini
    /// has no helper for.
    async fn webauthn(&self, path: &str, body: Value) -> Value {
        let session = self.client.session_id().await.unwrap().unwrap();
        let res = reqwest::Client::new()
            .post(format!("{}/session/{session}/webauthn/{path}", self.driver))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// The authenticator a laptop has built in (it keeps passkeys and
    /// verifies its user), made by the WebAuthn extension; its id.
    async fn add_authenticator(&self) -> String {
        let made = self
            .webauthn(
                "authenticator",
                json!({
                    "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                    "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true,
                }),
            )
            .await;
        made["value"].as_str().unwrap().to_owned()
    }

    /// A WebAuthn extension command that reads.
    async fn webauthn_get(&self, path: &str) -> Value {
        let session = self.client.session_id().await.unwrap().unwrap();
        let res = reqwest::Client::new()
            .get(format!("{}/session/{session}/webauthn/{path}", self.driver))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// What `/api/auth/me` says of the page's session.
    async fn session(&self) -> Value {
        self.client
            .execute(
                "return fetch('/api/auth/me').then((r) => r.json());",
                vec![],
            )
            .await
            .unwrap()
    }

    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.visible("#signin-form").await;
    }
}

#[tokio::test]
async fn a_person_adds_an_app_and_a_passkey_and_signs_in_with_each_and_a_recovery_code() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    assert_eq!(app.register("carol").await.status(), StatusCode::CREATED);
    let page = driver.browser("factors").await;
    let authenticator = page.add_authenticator().await;

    page.goto_localhost(&app, "#/signin").await;
    page.fill("#signin-login", "carol").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.text_of("#mfa-off", "password alone").await;

    // An authenticator app, enrolled with the code it shows.
    page.click("#totp-start").await;
    page.visible("#totp-qr svg").await;
    let secret = page.visible("#totp-secret").await.text().await.unwrap();
    let uri = format!("otpauth://totp/sessiond:carol?secret={secret}&issuer=sessiond");
    let totp = totp_rs::Totp::from_url(&uri).expect("the key the page shows");
    page.fill("#totp-code", "000000").await;
    page.click("#totp-confirm").await;
    page.text_of("#totp-error", "not right").await;
    page.fill("#totp-code", &totp.generate_current().to_string())
        .await;
    page.click("#totp-confirm").await;
    page.text_of("#mfa-done", "Authenticator app added").await;
    page.text_of("#factors tbody", "Authenticator app").await;

    // Recovery codes, shown once, with a file to keep.
    page.click("#recovery-new").await;
    page.visible("#recovery-list li").await;
    let codes: Vec<String> = {
        let items = page
            .client
            .find_all(Locator::Css("#recovery-list li"))
            .await
            .unwrap();
        let mut codes = Vec::new();
        for item in items {
            codes.push(item.text().await.unwrap());
        }
        codes
    };
    assert_eq!(codes.len(), 10);
    let href = page
        .visible("#recovery-download")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.starts_with("blob:"), "{href}");
    page.text_of("#recovery-left", "10 recovery codes left")
        .await;

    // A passkey, made by the laptop's authenticator.
    page.fill("#key-name", "Laptop").await;
    page.click("#key-add").await;
    page.text_of("#mfa-done", "Key added").await;
    page.text_of("#factors tbody", "Key: Laptop").await;
    page.screenshot("factors", 1440).await;
    page.screenshot("factors", 360).await;

    // Signed out, the passkey alone signs in: no name, no password.
    page.sign_out().await;
    page.click("#passkey-signin").await;
    page.visible("#view-account").await;
    let me = page.session().await;
    assert_eq!(me["user"]["username"], "carol");
    assert_eq!(me["session"]["amr"], json!(["hwk", "user"]), "{me}");

    // The password is now followed by a second step: a recovery code,
    // once.
    page.sign_out().await;
    page.fill("#signin-login", "carol").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.visible("#step-form").await;
    page.screenshot("second-step", 1440).await;
    page.click("#step-switch").await;
    page.fill("#step-code", &codes[3]).await;
    page.click("#step-submit").await;
    page.visible("#view-account").await;
    page.text_of("#recovery-left", "9 recovery codes left")
        .await;
    assert_eq!(
        page.session().await["session"]["amr"],
        json!(["pwd", "otp"])
    );
    page.sign_out().await;
    page.fill("#signin-login", "carol").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.click("#step-switch").await;
    page.fill("#step-code", &codes[3]).await;
    page.click("#step-submit").await;
    page.text_of("#step-error", "second step failed").await;

    // ... or the key, as a second factor after the password.
    page.click("#step-key").await;
    page.visible("#view-account").await;
    assert_eq!(
        page.session().await["session"]["amr"],
        json!(["pwd", "hwk"])
    );

    // A copy of the passkey, private key and all, in another browser's
    // authenticator: its counter starts again where the copy was taken
    // (0 here), behind the one the server stored, and it is refused.
    let listed = page
        .webauthn_get(&format!("authenticator/{authenticator}/credentials"))
        .await;
    let original = &listed["value"][0];
    assert!(original["signCount"].as_u64().unwrap() > 0, "{original}");
    let thief = driver.browser("thief").await;
    let copy = thief.add_authenticator().await;
    let mut cloned = original.clone();
    cloned["signCount"] = json!(0);
    thief
        .webauthn(&format!("authenticator/{copy}/credential"), cloned)
        .await;
    thief.goto_localhost(&app, "#/signin").await;
    thief.click("#passkey-signin").await;
    thief
        .text_of("#signin-error", "Invalid username or password")
        .await;
    // The original still works.
    page.sign_out().await;
    page.click("#passkey-signin").await;
    page.visible("#view-account").await;
    thief.client.clone().close().await.unwrap();

    let severe = page.severe_console_entries().await;
    assert!(severe.is_empty(), "console errors: {severe:#?}");
    page.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_person_who_forgot_their_password_recovers_it_in_the_page_with_the_mailed_code() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let Some(mailbox) = crate::mailbox::Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = url).await;
    assert_eq!(app.register("lena").await.status(), StatusCode::CREATED);
    let page = driver.browser("recover").await;
    page.goto(&app, "#/signin").await;
    page.click("#forgot").await;
    page.fill("#recover-login", "lena@example.com").await;
    page.click("#recover-submit").await;
    page.text_of("#recover-sent", "If that account exists")
        .await;
    let mail = mailbox
        .wait_for_subject(crate::mailbox::RECOVERY, 1)
        .await
        .remove(0);
    let code = crate::mailbox::code_in(&mail);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    page.fill("#reset-code", wrong).await;
    page.fill("#reset-password", "lena's brand new password")
        .await;
    page.click("#reset-submit").await;
    page.text_of("#reset-error", "not right").await;
    page.screenshot("recover", 1000).await;
    page.fill("#reset-code", &code).await;
    page.fill("#reset-password", "lena's brand new password")
        .await;
    page.click("#reset-submit").await;
    page.text_of("#me-name", "lena").await;
    assert_eq!(
        app.login("lena", "lena's brand new password")
            .await
            .status(),
        StatusCode::OK
    );

    // An operator's link, on the same page: no code to type.
    let made = app.reset_link("lena").await;
    page.sign_out().await;
    let link = made["link"].as_str().unwrap();
    page.client.goto(link).await.unwrap();
    page.text_of("#recover-title", "Set a new password").await;
    page.hidden("#reset-code").await;
    page.fill("#reset-password", "the link's new password")
        .await;
    page.click("#reset-submit").await;
    page.text_of("#me-name", "lena").await;
    assert!(page.severe_console_entries().await.is_empty());
}

#[tokio::test]
async fn a_security_key_that_cannot_verify_its_user_is_a_second_factor_only() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    assert_eq!(app.register("sam").await.status(), StatusCode::CREATED);
    let page = driver.browser("security-key").await;
    // A USB key with no PIN or fingerprint: it cannot say who holds it
    // (nor keep a discoverable credential, which needs that).
    page.webauthn(
        "authenticator",
        json!({
            "protocol": "ctap2", "transport": "usb", "hasResidentKey": false,
            "hasUserVerification": false, "isUserConsenting": true, "isUserVerified": false,
        }),
    )
    .await;
    page.goto_localhost(&app, "#/signin").await;
    page.fill("#signin-login", "sam").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.fill("#key-name", "USB key").await;
    page.click("#key-add").await;
    page.text_of("#mfa-done", "Key added").await;

    // Alone, it signs nobody in.
    page.sign_out().await;
    page.click("#passkey-signin").await;
    page.visible("#signin-error").await;
    assert_eq!(
        app.metric("sessiond_logins_total{result=\"success\"}")
            .await,
        1,
        "only the password sign-in"
    );
    // After the password, it is the second step.
    page.fill("#signin-login", "sam").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.click("#step-key").await;
    page.visible("#view-account").await;
    let amr = page.session().await["session"]["amr"].clone();
    assert_eq!(amr[0], "pwd", "{amr}");
    assert!(
        amr == json!(["pwd", "hwk"]) || amr == json!(["pwd", "swk"]),
        "{amr}"
    );
}

#[tokio::test]
async fn the_sign_in_page_offers_passkeys_in_the_name_fields_autofill() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    assert_eq!(app.register("uma").await.status(), StatusCode::CREATED);
    let page = driver.browser("autofill").await;
    page.add_authenticator().await;
    page.goto_localhost(&app, "#/signin").await;
    page.fill("#signin-login", "uma").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.fill("#key-name", "Phone").await;
    page.click("#key-add").await;
    page.text_of("#mfa-done", "Key added").await;
    // Signed out, the page opened again on sign-in: the passkey is offered
    // in the name field's autofill (conditional mediation), and Chromium's
    // virtual authenticator picks it as a person picks it from the list.
    // Nothing is clicked.
    page.sign_out().await;
    page.client.refresh().await.unwrap();
    page.visible("#view-account").await;
    let me = page.session().await;
    assert_eq!(me["user"]["username"], "uma");
    assert_eq!(me["session"]["amr"], json!(["hwk", "user"]), "{me}");
    assert!(page.severe_console_entries().await.is_empty());
}

#[tokio::test]
async fn a_person_refused_until_their_address_is_verified_types_the_mailed_code_then_moves() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let Some(mailbox) = crate::mailbox::Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| {
        c.mail.smtp_url = url;
        c.auth.require_verified_email = true;
    })
    .await;
    let page = driver.browser("verify").await;
    page.goto(&app, "#/signin").await;
    page.fill("#register-username", "nina").await;
    page.fill("#register-email", "nina@example.com").await;
    page.fill("#register-password", PASSWORD).await;
    page.click("#register-submit").await;
    page.visible("#register-done").await;
    let mail = mailbox
        .wait_for_subject("Confirm your e-mail address", 1)
        .await
        .remove(0);
    page.fill("#signin-login", "nina").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.text_of("#signin-error", "not verified").await;
    page.fill("#unverified-code", &crate::mailbox::code_in(&mail))
        .await;
    page.click("#unverified-submit").await;
    page.text_of("#notice", "verified").await;
    page.fill("#signin-password", PASSWORD).await;
    page.click("#signin-submit").await;
    page.text_of("#me-name", "nina").await;
    page.hidden("#verify-form").await;
    // Later she moves to a new address: it counts once its code is typed.
    page.fill("#email-new", "nina@new.example").await;
    page.fill("#email-password", PASSWORD).await;
    page.click("#email-submit").await;
    page.text_of("#verify-notice", "nina@new.example").await;
    page.text_of("#me-email", "nina@example.com").await;
    let mails = mailbox
        .wait_for_subject("Confirm your e-mail address", 2)
        .await;
    let to_new = mails
        .iter()
        .find(|m| crate::mailbox::to_of(m).contains("new.example"))
        .expect("a code for the new address");
    page.fill("#verify-code", &crate::mailbox::code_in(to_new))
        .await;
    page.click("#verify-submit").await;
    page.text_of("#me-email", "nina@new.example").await;
    page.hidden("#verify-form").await;
    let told = mailbox
        .wait_for_subject("Your sessiond e-mail address was changed", 1)
        .await;
    assert!(crate::mailbox::to_of(&told[0]).contains("nina@example.com"));
    assert!(page.severe_console_entries().await.is_empty());
}

#[tokio::test]
async fn a_person_signs_in_to_an_app_through_sessiond_allows_it_once_and_revokes_it() {
    use crate::provider::{client, pkce, provider};
    let Some(driver) = Driver::start() else {
        return;
    };
    // The app's own page, where sessiond sends the browser back.
    let wiki = echo_upstream().await;
    let callback = format!("http://{wiki}/cb");
    let mut app_client = client("wiki", None, sessiond::config::Consent::Once);
    app_client.redirect_uris = vec![callback.clone()];
    let app = provider(vec![app_client]).await;
    assert_eq!(app.register("ivy").await.status(), StatusCode::CREATED);
    let browser = driver.browser("ivy").await;
    let (verifier, challenge) = pkce();
    let mut authorize = reqwest::Url::parse(&app.url("/api/oidc/authorize")).unwrap();
    authorize.query_pairs_mut().extend_pairs([
        ("client_id", "wiki"),
        ("redirect_uri", callback.as_str()),
        ("response_type", "code"),
        ("scope", "openid profile email"),
        ("state", "wiki-state"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    // Nobody is signed in: the page asks, then goes back to the request.
    browser.client.goto(authorize.as_str()).await.unwrap();
    browser.visible("#oidc-notice").await;
    browser.fill("#signin-login", "ivy").await;
    browser.fill("#signin-password", PASSWORD).await;
    browser.click("#signin-submit").await;
    // The first time, the app is named with what it asks for.
    browser.text_of("#consent-app", "The wiki app").await;
    browser
        .text_of("#consent-scopes", "See your e-mail address")
        .await;
    browser.screenshot("oidc-consent", 1440).await;
    browser.click("#consent-allow").await;
    let deadline = std::time::Instant::now() + WAIT;
    let landed = loop {
        let url = browser.client.current_url().await.unwrap();
        if url.as_str().starts_with(&callback) {
            break url;
        }
        assert!(std::time::Instant::now() < deadline, "still at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let q: std::collections::HashMap<_, _> = landed.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "wiki-state");
    let res = app
        .client
        .post(app.url("/api/oidc/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "wiki"),
            ("code", q["code"].as_str()),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // On the account page the app is listed; revoked, it is gone.
    browser.goto(&app, "#/account").await;
    browser.text_of("#apps", "The wiki app").await;
    browser.click("#apps tbody button").await;
    browser.hidden("#apps-section").await;
    assert!(browser.severe_console_entries().await.is_empty());
}
