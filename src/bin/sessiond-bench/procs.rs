//! The processes measured: the real `sessiond` binary and the floor server,
//! each started here on loopback with port 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child server; killed when dropped.
pub struct Proc {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// How long from spawn until it answered its health route.
    pub startup: Duration,
}

impl Proc {
    /// The child's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the child has used so far: (user, system), from
    /// `/proc/<pid>/stat` (in clock ticks, 10 ms on Linux).
    pub fn cpu_time(&self) -> (Duration, Duration) {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command's closing parenthesis; utime and
        // stime are the 14th and 15th of the line.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let time = |i| Duration::from_secs_f64(ticks(i) as f64 / per_second);
        (time(11), time(12))
    }

    /// Stops the child with SIGTERM and waits for it.
    pub fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `sessiond` built beside this binary.
pub fn sessiond_binary() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let server = me.with_file_name("sessiond");
    if !server.exists() {
        eprintln!(
            "sessiond-bench: {} is missing; build both with `cargo build --release --bins`",
            server.display()
        );
        std::process::exit(2);
    }
    server
}

/// Starts `sessiond serve` on `dir/data` with the default config (but
/// port 0), its log going to `dir/sessiond-<n>.log`.
pub async fn start_sessiond(dir: &Path) -> Proc {
    start_sessiond_with(dir, "").await
}

/// As `start_sessiond`, with `storage` added to `[storage]` (the Redis
/// backend, say); several may share `dir`, each with its own log.
pub async fn start_sessiond_with(dir: &Path, storage: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let n = std::fs::read_dir(dir).map_or(0, |d| d.count());
    let config = dir.join(format!("config-{n}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = {:?}\n{storage}\n",
            dir.join("data")
        ),
    )
    .unwrap();
    let mut cmd = Command::new(sessiond_binary());
    cmd.arg("serve").arg("--config").arg(&config);
    start(cmd, &dir.join(format!("sessiond-{n}.log")), "/healthz").await
}

/// Starts this binary as the floor server.
pub async fn start_floor(dir: &Path) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--floor-server");
    start(cmd, &dir.join("floor.log"), "/healthz").await
}

/// Starts this binary as the chat floor server (`chat_floor`).
pub async fn start_chat_floor(dir: &Path) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--chat-floor-server");
    start(cmd, &dir.join("chat-floor.log"), "/healthz").await
}

async fn start(mut cmd: Command, log: &Path, health: &str) -> Proc {
    let file = std::fs::File::create(log).unwrap();
    for var in [
        "SESSIOND_CONFIG",
        "SESSIOND_LISTEN",
        "SESSIOND_DATA_DIR",
        "SESSIOND_ENV",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    let began = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("server starts");
    let mut proc = Proc {
        child,
        addr: "127.0.0.1:1".parse().unwrap(),
        startup: Duration::ZERO,
    };
    let addr = loop {
        if began.elapsed() > Duration::from_secs(120) {
            panic!("server did not start; see {}", log.display());
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .filter(|l| l.contains("listening"))
            .find_map(|l| {
                l.split("addr=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        {
            break addr;
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("server exited ({status}); see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    proc.addr = addr;
    loop {
        if crate::http_load::get_status(addr, health).await == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    proc.startup = began.elapsed();
    proc
}

/// The floor: a warp route that reads the cookie header and answers a
/// small JSON body, nothing else.
pub async fn serve_floor() {
    use warp::Filter;
    let me = warp::path!("api" / "auth" / "me")
        .and(warp::get())
        .and(warp::header::optional::<String>("cookie"))
        .map(|cookie: Option<String>| {
            warp::reply::json(&serde_json::json!({
                "user": {"username": "floor"},
                "cookieBytes": cookie.map_or(0, |c| c.len()),
            }))
        });
    let health =
        warp::path!("healthz").map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    eprintln!("floor listening addr={}", listener.local_addr().unwrap());
    warp::serve(me.or(health)).incoming(listener).run().await;
}
