//! `spawn_app()`: the real server, in this process, on port 0 with a fresh
//! data dir and real sled; a plain HTTP client over loopback.

use std::net::SocketAddr;

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sessiond::config::{Backend, Config, Secret};
use sessiond::domain::{Email, Password, Role, Username};
use sessiond::local_redis::{LocalCluster, LocalRedis};
use sessiond::server::Application;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// The server's store, for what no route shows (a ticket's deadline).
    pub store: sessiond::store::Store,
    /// On Redis, the settings it serves with, so a second instance can
    /// share its prefix (`twin`).
    shared: Option<Config>,
    _dir: TempDir,
    _stop: oneshot::Sender<()>,
}

/// Settings every test starts from: cheap argon2 so tests stay quick.
/// With `SESSIOND_TEST_BACKEND=redis` the whole suite runs on Redis (a
/// redis-server this process starts, a fresh key prefix per app), with
/// `redis-cluster` on a three-node Redis Cluster it starts.
pub fn test_config(dir: &TempDir) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.data_dir = dir.path().to_owned();
    let backend = std::env::var("SESSIOND_TEST_BACKEND").unwrap_or_default();
    if backend == "redis" || backend == "redis-cluster" {
        let cluster = backend == "redis-cluster";
        let started = if cluster {
            LocalCluster::shared()
        } else {
            LocalRedis::shared()
        };
        let url = match started {
            Some(Ok(url)) => url.clone(),
            Some(Err(e)) => panic!("{e}"),
            None => panic!(
                "SESSIOND_TEST_BACKEND={backend} needs redis-server (apt-get install redis-server)"
            ),
        };
        c.storage.backend = Backend::Redis;
        c.storage.redis_url = url;
        c.storage.redis_cluster = cluster;
        c.storage.redis_key_prefix = format!("api-{}:", unique());
    }
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    c.secrets.current = Some(Secret::new(
        b"test-secret-test-secret-test-secret!".to_vec(),
    ));
    c
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    tweak(&mut config);
    let on_redis = config.storage.backend == Backend::Redis;
    let shared = on_redis.then(|| config.clone());
    let app = Application::build(config).await.expect("server builds");
    assert_eq!(
        app.auth().store().backend_name() == "redis",
        on_redis,
        "the backend asked for"
    );
    let addr = app.addr();
    let store = app.auth().store().clone();
    // The first admin comes from outside HTTP, as `sessiond user add` does.
    app.auth()
        .create_user(
            Username::parse("root").unwrap(),
            Email::parse("root@example.com").unwrap(),
            Password::unchecked(PASSWORD.into()),
            Role::Admin,
            &sessiond::auth::By::operator(),
        )
        .await
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        store,
        shared,
        _dir: dir,
        _stop: stop,
    }
}

impl TestApp {
    /// A second instance on the same Redis prefix, acting as one server
    /// with this one; `None` on sled (one process per data dir).
    pub async fn twin(&self) -> Option<TestApp> {
        let mut config = self.shared.clone()?;
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        config.storage.data_dir = dir.path().to_owned();
        let app = Application::build(config).await.expect("twin builds");
        let addr = app.addr();
        let store = app.auth().store().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Some(TestApp {
            addr,
            client: reqwest::Client::new(),
            store,
            shared: None,
            _dir: dir,
            _stop: stop,
        })
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value, cookie: Option<&str>) -> Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.unwrap()
    }

    pub async fn register(&self, name: &str) -> Response {
        self.post_json(
            "/api/auth/register",
            &json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            None,
        )
        .await
    }

    pub async fn login(&self, name: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/login",
            &json!({"username": name, "password": password}),
            None,
        )
        .await
    }

    /// Registers `name` and logs in; returns the `Cookie` header value.
    pub async fn register_and_login(&self, name: &str) -> String {
        assert_eq!(self.register(name).await.status(), StatusCode::CREATED);
        let res = self.login(name, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK);
        cookie_of(&res)
    }

    /// An admin's `POST /api/admin/users/{id}/reset-link` for `name`:
    /// the answer (`{link, expiresIn}`), checked to be 200.
    pub async fn reset_link(&self, name: &str) -> Value {
        let (admin, _) = self.admin().await;
        let user = self.listed_user(&admin, name).await.expect("a listed user");
        let path = format!(
            "/api/admin/users/{}/reset-link",
            user["id"].as_str().unwrap()
        );
        let res = self.post_json(&path, &json!({}), Some(&admin)).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// Logs in a user registered already; the cookie.
    pub async fn login_cookie(&self, name: &str) -> String {
        let res = self.login(name, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK);
        cookie_of(&res)
    }

    pub async fn me(&self, cookie: &str) -> Response {
        self.get("/api/auth/me", Some(cookie)).await
    }

    pub async fn logout(&self, cookie: &str) -> Response {
        self.client
            .post(self.url("/api/auth/logout"))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap()
    }

    /// The admin every test app starts with: `(cookie, user id)`.
    pub async fn admin(&self) -> (String, String) {
        let res = self.login("root", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK);
        let cookie = cookie_of(&res);
        let body: Value = res.json().await.unwrap();
        (cookie, body["user"]["id"].as_str().unwrap().to_owned())
    }

    /// A user as `GET /api/admin/users` lists them, by name (`admin` is an
    /// admin's cookie); `None` if not listed.
    pub async fn listed_user(&self, admin: &str, name: &str) -> Option<Value> {
        let page: Value = self
            .send(reqwest::Method::GET, "/api/admin/users", admin, None)
            .await
            .json()
            .await
            .unwrap();
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .cloned()
    }

    /// The id of a registered user, looked up through `/me`.
    pub async fn id_of(&self, cookie: &str) -> String {
        let body: Value = self.me(cookie).await.json().await.unwrap();
        body["user"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header(COOKIE, cookie);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// One sample from `/metrics`.
    pub async fn metric(&self, line_start: &str) -> u64 {
        let text = self.get("/metrics", None).await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {line_start} in:\n{text}"))
    }

    /// Sends raw bytes with a given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(t) = content_type {
            req = req.header(CONTENT_TYPE, t);
        }
        req.send().await.unwrap()
    }
}

/// `name=value` of the response's session cookie, ready for a `Cookie` header.
pub fn cookie_of(res: &Response) -> String {
    let set = res
        .headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The full `Set-Cookie` header.
pub fn set_cookie_of(res: &Response) -> String {
    res.headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts the contract's error shape and code; returns the message.
pub async fn expect_error(res: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(res.status(), status, "status");
    let body: Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl TestApp {
    /// Opens `/ws/chat`; `Err` carries the HTTP status of a refused upgrade.
    pub async fn ws_connect(
        &self,
        cookie: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, StatusCode> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}/ws/chat", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                Err(StatusCode::from_u16(res.status().as_u16()).unwrap())
            }
            Err(e) => panic!("websocket connect failed: {e}"),
        }
    }

    /// Connects and joins `room`; returns the socket and the `joined` frame.
    pub async fn ws_join(&self, cookie: &str, room: &str) -> (Ws, Value) {
        let mut ws = self.ws_connect(Some(cookie), None).await.expect("upgrade");
        ws_send(&mut ws, json!({"type": "join", "room": room})).await;
        let joined = ws_recv(&mut ws).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        (ws, joined)
    }
}

/// Sends one JSON text frame.
pub async fn ws_send(ws: &mut Ws, value: Value) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// The next JSON text frame (within 10 s), skipping pings.
pub async fn ws_recv(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s");
        match next {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Waits (at most 10 s) for the server to close the socket; returns the
/// close code.
pub async fn ws_closed(ws: &mut Ws) -> u16 {
    ws_close_frame(ws).await.0
}

/// Waits (at most 10 s) for the server to close the socket; returns the
/// close code and reason.
pub async fn ws_close_frame(ws: &mut Ws) -> (u16, String) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("closed within 10 s");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket failed instead of closing: {e}"),
        }
    }
}

/// A name no other app in this process has.
pub fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}
