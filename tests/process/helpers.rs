//! Runs the built `sessiond` binary on a temp data dir, as an operator
//! would, so restarts and crashes are real process restarts and kills.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub const PASSWORD: &str = "correct horse battery staple";

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(server: &Server, cookie: &str) -> Ws {
    connect_to(server.addr, cookie).await
}

/// A chat socket to whatever listens at `addr` (a proxy, say).
pub async fn connect_to(addr: SocketAddr, cookie: &str) -> Ws {
    let mut req = format!("ws://{addr}/ws/chat")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub async fn say(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// The close code the server sends within `limit`, or `None` if none came.
pub async fn close_code(ws: &mut Ws, limit: Duration) -> Option<u16> {
    tokio::time::timeout(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return Some(u16::from(frame.code)),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// A data dir and config file that survive the server processes using them.
pub struct Site {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Site {
    /// A config with cheap argon2 and port 0; `extra` is appended TOML.
    pub fn new(extra: &str) -> Site {
        Site::with_storage("", extra)
    }

    /// As `new`, with `storage` added to the `[storage]` table.
    pub fn with_storage(storage: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = {data:?}\n{storage}\n\n\
                 [auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n{extra}"
            ),
        )
        .unwrap();
        Site { dir, config }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The binary with this site's config and a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessiond"));
        cmd.args(args).arg("--config").arg(&self.config);
        for var in [
            "SESSIOND_CONFIG",
            "SESSIOND_LISTEN",
            "SESSIOND_DATA_DIR",
            "SESSIOND_ENV",
            "SESSION_SECRET",
            "SESSION_SECRET_OLD",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Starts `sessiond serve` and waits until it listens.
    pub fn start(&self, env: &[(&str, &str)]) -> Server {
        let mut cmd = self.command(&["serve"]);
        cmd.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("sessiond starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("addr=").nth(1) {
                    if line.contains("listening") {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("sessiond did not start:\n{}", log.lock().unwrap());
            }
        };
        Server {
            child,
            addr,
            log,
            client: reqwest::Client::new(),
        }
    }

    /// `sessiond user add NAME --email NAME@example.com --role ROLE
    /// --password-stdin`, with `stdin` piped in; its status and stderr.
    pub fn user_add(&self, name: &str, role: &str, stdin: &str) -> (ExitStatus, String) {
        let email = format!("{name}@example.com");
        let args = [
            "user",
            "add",
            name,
            "--email",
            &email,
            "--role",
            role,
            "--password-stdin",
        ];
        self.run(&args, &[], stdin)
    }

    /// Runs a command to completion; returns its status and stderr.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> (ExitStatus, String) {
        let mut child = self
            .command(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A running `sessiond serve`.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    pub client: reqwest::Client,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn register(&self, name: &str) {
        let res = self
            .client
            .post(self.url("/api/auth/register"))
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    pub async fn login(&self, name: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": name, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the `Cookie` header value.
    pub async fn login_cookie(&self, name: &str) -> String {
        let res = self.login(name, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK);
        let set = res.headers()[SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    }

    pub async fn me(&self, cookie: &str) -> StatusCode {
        self.client
            .get(self.url("/api/auth/me"))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn logout(&self, cookie: &str) -> StatusCode {
        self.client
            .post(self.url("/api/auth/logout"))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends a signal by name and waits (at most 10 s) for the exit.
    pub fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("sessiond did not exit within 10 s of {signal}");
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Changes a stopped site's database through sled itself, as a repair
/// tool (or a buggy one) would. The files stay sound, so, as sessiond's
/// refusal of changed files advises, the seal is deleted afterwards.
pub fn edit_with_sled(site: &Site, edit: impl FnOnce(&sled::Db)) {
    let db = sled::open(site.data_dir().join("db")).unwrap();
    edit(&db);
    db.flush().unwrap();
    drop(db);
    std::fs::remove_file(site.data_dir().join("db.sealed")).unwrap();
}

/// True if `path` exists below `dir`.
pub fn exists(dir: &Path, path: &str) -> bool {
    dir.join(path).exists()
}

/// Enrols TOTP for the session `cookie` as a person with an authenticator
/// app would (the app reads the `otpauth://` URI); returns the app and
/// the code that confirmed it (used up).
pub async fn enrol_totp(server: &Server, cookie: &str) -> (totp_rs::Totp, String) {
    let post = |path: &str, body: Value| {
        server
            .client
            .post(server.url(path))
            .header(COOKIE, cookie)
            .json(&body)
            .send()
    };
    let enrolment: Value = post("/api/auth/mfa/totp/enrol", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let totp = totp_rs::Totp::from_url(enrolment["otpauthUri"].as_str().unwrap()).unwrap();
    let code = totp_at(&totp, 0);
    let res = post("/api/auth/mfa/totp/confirm", json!({"code": code}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    (totp, code)
}

/// The app's code `steps` 30-second steps from now.
pub fn totp_at(totp: &totp_rs::Totp, steps: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now + 30 * steps).to_string()
}
