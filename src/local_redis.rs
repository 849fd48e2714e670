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
        let program = Self::program()?;
        Some(Self::spawn_ready(program, port, extra, false))
    }

    fn spawn_ready(
        program: PathBuf,
        port: u16,
        extra: &[&str],
        die_with_parent: bool,
    ) -> Result<LocalRedis, String> {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let dir = tempfile::tempdir().map_err(|e| format!("no temp dir for redis-server: {e}"))?;
        let child = spawn(&program, &dir, port, die_with_parent, &extra)?;
        let server = LocalRedis {
            child,
            port,
            dir,
            program,
            extra,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// One server for the whole test process, started on first use and
    /// killed by the kernel when the process exits (it is started from a
    /// thread that lives as long as the process, with a parent-death
    /// signal); `None` if redis-server is not installed.
    pub fn shared() -> Option<&'static Result<String, String>> {
        static SHARED: OnceLock<Option<Result<String, String>>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                held_for_the_process("local-redis", || {
                    Self::program().map(|program| {
                        let server = Self::spawn_ready(program, free_port()?, &[], true)?;
                        Ok((server.url(), server))
                    })
                })
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

/// Three `redis-server` primaries made one Redis Cluster with
/// `redis-cli --cluster create`, each as `LocalRedis` starts one.
pub struct LocalCluster {
    nodes: Vec<LocalRedis>,
    cli: PathBuf,
}

impl LocalCluster {
    /// Starts the three and joins them; `None` if redis-server or
    /// redis-cli is not installed.
    pub fn start() -> Option<Result<LocalCluster, String>> {
        let cli = Self::cli()?;
        Some(Self::start_with(&cli, false))
    }

    fn start_with(cli: &PathBuf, die_with_parent: bool) -> Result<LocalCluster, String> {
        let program = LocalRedis::program().ok_or("redis-server is not installed")?;
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let bus = free_port()?.to_string();
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus,
            ];
            nodes.push(LocalRedis::spawn_ready(
                program.clone(),
                free_port()?,
                &extra,
                die_with_parent,
            )?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new(cli)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
        if !created.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&created.stderr).trim()
            ));
        }
        let cluster = LocalCluster {
            nodes,
            cli: cli.clone(),
        };
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// `redis-cli` on `PATH`, if installed.
    fn cli() -> Option<PathBuf> {
        let program = LocalRedis::program()?;
        Some(program.with_file_name("redis-cli")).filter(|p| p.is_file())
    }

    /// SIGKILLs every node, as a power cut would.
    pub fn kill(&mut self) {
        self.nodes.iter_mut().for_each(LocalRedis::kill);
    }

    /// Starts every node again on its port and files after `kill`, and
    /// waits until they serve every slot again.
    pub fn restart(&mut self) -> Result<(), String> {
        for node in &mut self.nodes {
            node.restart()?;
        }
        self.wait_ok()
    }

    /// Waits until every node says the cluster serves every slot.
    fn wait_ok(&self) -> Result<(), String> {
        let cli = &self.cli;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let all_ok = self.nodes.iter().all(|n| {
                Command::new(cli)
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if all_ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("the local Redis Cluster did not reach cluster_state:ok within 20 s".into())
    }

    /// The first node's URL: `storage.redis_url` with `redis_cluster`.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// One cluster for the whole test process, as `LocalRedis::shared`.
    pub fn shared() -> Option<&'static Result<String, String>> {
        static SHARED: OnceLock<Option<Result<String, String>>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                held_for_the_process("local-redis-cluster", || {
                    Self::cli().map(|cli| {
                        let cluster = Self::start_with(&cli, true)?;
                        Ok((cluster.url(), cluster))
                    })
                })
            })
            .as_ref()
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

/// Starts something on a thread that lives as long as the process and
/// holds it there (servers started with a parent-death signal die with the
/// process); answers its URL, or why it did not start, or `None` if it is
/// not installed.
fn held_for_the_process<T: 'static>(
    name: &str,
    start: impl FnOnce() -> Option<Result<(String, T), String>> + Send + 'static,
) -> Option<Result<String, String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let started = start();
            let _ = tx.send(started.as_ref().map(|r| {
                r.as_ref()
                    .map(|(url, _)| url.clone())
                    .map_err(String::clone)
            }));
            let _keep = started;
            loop {
                std::thread::park();
            }
        })
        .ok()?;
    rx.recv().ok().flatten()
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
