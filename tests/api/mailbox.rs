//! A real SMTP server for the tests: Debian's aiosmtpd (`python3-aiosmtpd`)
//! writing what it receives into a Maildir, started on a loopback port and
//! stopped by PID when dropped. Skipped with one line where it is not
//! installed, except in CI.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::tools::{free_port, Proc};

/// Debian's Python, whose packages hold aiosmtpd (not a pyenv's).
const PYTHON: &str = "/usr/bin/python3";

/// A running SMTP server and the Maildir it delivers to.
pub struct Mailbox {
    pub port: u16,
    dir: TempDir,
    _proc: Proc,
}

/// Whether aiosmtpd can run here; says once why not (a failure in CI).
pub fn available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "aiosmtpd is not installed; CI must install it (apt-get install python3-aiosmtpd)"
            );
        }
        eprintln!("skipped: aiosmtpd is not installed (apt-get install python3-aiosmtpd to run this test)");
    }
    ok
}

impl Mailbox {
    /// Starts aiosmtpd on a free port; `None` (test skipped) without it.
    pub fn start() -> Option<Mailbox> {
        Mailbox::start_on(free_port())
    }

    /// Starts aiosmtpd on `port`.
    pub fn start_on(port: u16) -> Option<Mailbox> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // aiosmtpd makes the Maildir only if the path does not exist yet.
        let maildir = dir.path().join("maildir");
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir);
        let proc = Proc::start(cmd, "aiosmtpd", port, &dir.path().join("aiosmtpd.log"));
        Some(Mailbox {
            port,
            dir,
            _proc: proc,
        })
    }

    /// `smtp_url` for sessiond.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn delivered(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("maildir/new"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Every mail received so far, raw.
    pub fn all(&self) -> Vec<String> {
        self.delivered()
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits (at most 15 s) until `n` mails have arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{n} mail(s) expected, {} arrived",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Mailbox {
    /// Waits (at most 45 s: a mail claimed by a sender killed mid-send
    /// waits for its claim to lapse) until `n` mails whose subject starts
    /// with `subject` have arrived; returns those.
    pub async fn wait_for_subject(&self, subject: &str, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let found = self.with_subject(subject);
            if found.len() >= n {
                return found;
            }
            assert!(
                start.elapsed() < Duration::from_secs(45),
                "{n} mail(s) {subject:?} expected, {} arrived",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The mails received so far whose subject starts with `subject`.
    pub fn with_subject(&self, subject: &str) -> Vec<String> {
        let line = format!("Subject: {subject}");
        self.all()
            .into_iter()
            .filter(|m| m.contains(&line))
            .collect()
    }
}

/// The subject of a recovery code's mail.
pub const RECOVERY: &str = "Your sessiond recovery code";

/// The six-digit code a mail shows on a line of its own.
pub fn code_in(mail: &str) -> String {
    mail.lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in:\n{mail}"))
        .to_owned()
}

/// The mail's `To:` header line, for telling whose it is.
pub fn to_of(mail: &str) -> &str {
    mail.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap_or("")
}
