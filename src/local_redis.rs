//! A throwaway `redis-server` on loopback, for the tests and the bench:
//! a temp dir, a free port, `--save ''` with an fsync'd append-only file
//! (the settings `durability = "sync"` asks of a real deployment), ready
//! once it answers PING, killed by PID when dropped. Not used by the
//! server itself.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running redis-server this process started.
pub struct LocalRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    program: PathBuf,
    extra: Vec<String>,
}

impl LocalRedis {
    /// `redis-server` on `PATH`, if installed.
    pub fn program() -> Option<PathBuf> {
        let paths = std::env::var_os("PATH")?;
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    }

    /// Starts one on a free port; `None` if redis-server is not installed.
    pub fn start() -> Option<Result<LocalRedis, String>> {
        Self::start_with(&[])
    }

    /// Starts a replica of `primary` on a free port.
    pub fn start_replica_of(primary: &LocalRedis) -> Option<Result<LocalRedis, String>> {
        Self::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()])
    }

    /// Starts one with these extra arguments (`--rename-command CONFIG ""`,
    /// say) on a free port.
    pub fn start_with(extra: &[&str]) -> Option<Result<LocalRedis, String>> {
        match free_port() {
            Ok(port) => Self::start_on(port, extra),
            Err(e) => Self::program().map(|_| Err(e)),
        }
    }

    /// Starts one on `port` (a port a server was told of before Redis was
    /// up, say) with these extra arguments.
    pub fn start_on(port: u16, extra: &[&str]) -> Option<Result<LocalRedis, String>> {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let program = Self::program()?;
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => return Some(Err(format!("no temp dir for redis-server: {e}"))),
        };
        let child = match spawn(&program, &dir, port, false, &extra) {
            Ok(child) => child,
            Err(e) => return Some(Err(e)),
        };
        let server = LocalRedis {
            child,
            port,
            dir,
            program,
            extra,
        };
        Some(server.wait_ready().map(|()| server))
    }

    /// One server for the whole test process, started on first use and
    /// killed by the kernel when the process exits (it is started from a
    /// thread that lives as long as the process, with a parent-death
    /// signal); `None` if redis-server is not installed.
    pub fn shared() -> Option<&'static Result<String, String>> {
        static SHARED: OnceLock<Option<Result<String, String>>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::Builder::new()
                    .name("local-redis".into())
                    .spawn(move || {
                        let started = Self::program().map(|program| {
                            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                            let port = free_port()?;
                            let child = spawn(&program, &dir, port, true, &[])?;
                            let server = LocalRedis {
                                child,
                                port,
                                dir,
                                program,
                                extra: Vec::new(),
                            };
                            server.wait_ready()?;
                            Ok(server)
                        });
                        let _ = tx.send(
                            started
                                .as_ref()
                                .map(|r| r.as_ref().map(LocalRedis::url).map_err(String::clone)),
                        );
                        // Hold the server (and its parent-death link) until
                        // the process ends.
                        let _keep = started;
                        loop {
                            std::thread::park();
                        }
                    })
                    .ok()?;
                rx.recv().ok().flatten()
            })
            .as_ref()
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the server, as a crash would: what it acknowledged is in
    /// its fsync'd append-only file.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and files after `kill`.
    pub fn restart(&mut self) -> Result<(), String> {
        self.child = spawn(&self.program, &self.dir, self.port, false, &self.extra)?;
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not answer PING on port {} within 10 s",
            self.port
        ))
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(
    program: &PathBuf,
    dir: &tempfile::TempDir,
    port: u16,
    die_with_parent: bool,
    extra: &[String],
) -> Result<Child, String> {
    let mut cmd = Command::new(program);
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--dir")
        .arg(dir.path())
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .args(["--maxmemory-policy", "noeviction", "--daemonize", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if die_with_parent {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl only sets a flag of the child about to exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn ping(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    conn.write_all(b"PING\r\n").is_ok()
        && conn.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
