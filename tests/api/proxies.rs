//! The example reverse-proxy configs in `deploy/forward-auth/`, run by the
//! real nginx and Caddy in front of an echoing app, with sessiond deciding
//! who gets in.

use std::process::Command;

use reqwest::header::{ACCEPT, COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::*;
use crate::tools::*;

/// A proxy in front of the echo app, for one test.
struct Front {
    port: u16,
    client: reqwest::Client,
    _proc: Proc,
    _dir: TempDir,
}

impl Front {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get(
        &self,
        path: &str,
        cookie: Option<&str>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap()
    }

    async fn login(&self, name: &str) -> String {
        let res = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "login through the proxy");
        cookie_of(&res)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn nginx_in_front(app: &TestApp) -> Option<Front> {
    let nginx = tool("nginx", "nginx")?;
    let upstream = echo_upstream().await;
    let port = free_port();
    let site = example_config(
        "deploy/forward-auth/nginx.conf",
        &[
            ("127.0.0.1:8080", app.addr.to_string()),
            ("127.0.0.1:3000", upstream.to_string()),
            ("127.0.0.1:8000", format!("127.0.0.1:{port}")),
        ],
    );
    let (proc, dir) = start_nginx(&nginx, &site, port);
    Some(Front {
        port,
        client: client(),
        _proc: proc,
        _dir: dir,
    })
}

async fn caddy_in_front(app: &TestApp) -> Option<Front> {
    let caddy = tool("caddy", "caddy")?;
    let upstream = echo_upstream().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let caddyfile = example_config(
        "deploy/forward-auth/Caddyfile",
        &[
            ("127.0.0.1:8080", app.addr.to_string()),
            ("127.0.0.1:3000", upstream.to_string()),
            ("127.0.0.1:8000", format!("127.0.0.1:{port}")),
        ],
    );
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, caddyfile).unwrap();
    let mut cmd = Command::new(caddy);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"));
    let proc = Proc::start(cmd, "caddy", port, &dir.path().join("out.log"));
    Some(Front {
        port,
        client: client(),
        _proc: proc,
        _dir: dir,
    })
}

/// What both proxies must do with sessiond behind them.
async fn guards_the_app(front: &Front, app: &TestApp) {
    let alice = {
        assert_eq!(app.register("alice").await.status(), StatusCode::CREATED);
        front.login("alice").await
    };
    // A signed-in user reaches the app, which learns who it is; a copy of
    // the identity headers the client forged never gets through.
    let res = front
        .get(
            "/page",
            Some(&alice),
            &[("x-auth-user", "mallory"), ("x-auth-role", "admin")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["path"], "/page");
    assert_eq!(echo["headers"]["x-auth-user"], "alice");
    assert_eq!(echo["headers"]["x-auth-role"], "user");
    assert_eq!(echo["headers"]["x-auth-email"], "alice@example.com");
    assert!(echo["headers"]["x-auth-session-id"].is_string());

    // Without a cookie, forged headers alone get nothing.
    let res = front.get("/page", None, &[("x-auth-user", "alice")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // The admin-only location refuses a user and lets an admin in.
    let res = front.get("/admin/panel", Some(&alice), &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let root = front.login("root").await;
    let res = front.get("/admin/panel", Some(&root), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-auth-user"], "root");

    // A logout ends access on the very next request.
    let res = front
        .client
        .post(front.url("/api/auth/logout"))
        .header(COOKIE, &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = front.get("/page", Some(&alice), &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nginx_auth_request_lets_only_sessions_through() {
    let app = spawn_app().await;
    let Some(front) = nginx_in_front(&app).await else {
        return;
    };
    // nginx's auth_request passes 401 on (a 302 from the check would be
    // an error there); a browser gets 401 too.
    let res = front.get("/page", None, &[("accept", "text/html")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    guards_the_app(&front, &app).await;
}

#[tokio::test]
async fn caddy_forward_auth_lets_only_sessions_through_and_sends_browsers_to_sign_in() {
    let app = spawn_app().await;
    let Some(front) = caddy_in_front(&app).await else {
        return;
    };
    let res = front
        .get("/reports?q=1", None, &[("accept", "text/html,*/*")])
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    let wanted = format!("http://127.0.0.1:{}/reports?q=1", front.port);
    let rd: String = url::form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
    assert_eq!(location, format!("/?rd={rd}"));
    let res = front
        .get("/page", None, &[(ACCEPT.as_str(), "application/json")])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    guards_the_app(&front, &app).await;
}
