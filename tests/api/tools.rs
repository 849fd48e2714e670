//! Real programs the tests start (nginx, Caddy, ...): found on `PATH` or
//! skipped with one line, except in CI (`CI=true`), where a missing tool
//! fails the test; started on free loopback ports and killed by PID when
//! dropped. Also a tiny upstream app that echoes what it was sent.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The program's path, or `None` after saying the test is skipped. In CI
/// a missing program is a failure: `.ci/run` installs it.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is not installed; CI must install it (apt-get install {package})");
        }
        eprintln!("skipped: {name} is not installed (apt-get install {package} to run this test)");
    }
    found
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A started program in a process group of its own, stopped when dropped:
/// SIGTERM to the group (nginx's workers, the browsers chromedriver
/// started), then SIGKILL to what is left after 2 s.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    /// Starts `cmd` and waits (at most 10 s) until `port` accepts.
    pub fn start(mut cmd: Command, name: &str, port: u16, log: &std::path::Path) -> Proc {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).unwrap();
        cmd.stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let mut proc = Proc {
            child,
            name: name.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!(
                    "{name} exited ({status}) before listening:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {port} within 10 s:\n{}",
                proc.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        proc
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) on our own child's process group.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever of the group is still there.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// An app behind the proxy that answers every request with 200 and
/// `{"method", "path", "headers": {lowercased name: value}}`.
pub async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_owned();
                let path = first.next().unwrap_or("").to_owned();
                let mut headers = Map::new();
                for line in lines.take_while(|l| !l.is_empty()) {
                    if let Some((name, value)) = line.split_once(':') {
                        headers.insert(name.trim().to_ascii_lowercase(), json!(value.trim()));
                    }
                }
                let body =
                    json!({"method": method, "path": path, "headers": Value::Object(headers)})
                        .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// The repo's example config with its documented addresses replaced.
pub fn example_config(path: &str, replacements: &[(&str, String)]) -> String {
    let mut text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "{path} no longer mentions {from}");
        text = text.replace(from, to);
    }
    text
}

/// nginx serving `site` (server blocks, included in a minimal
/// `nginx.conf` of its own in a temp dir, with its logs and temp files
/// there too), once it listens on `port`.
pub fn start_nginx(nginx: &std::path::Path, site: &str, port: u16) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             include {d}/site.conf;\n}}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"));
    let proc = Proc::start(cmd, "nginx", port, &dir.path().join("out.log"));
    (proc, dir)
}
