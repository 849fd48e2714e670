//! Login throttling per account and per client IP, over a sliding window.
//!
//! An attempt reserves its place before the password is checked, so many
//! parallel guesses cannot all pass the check before any failure counts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window the `max_failed_logins_*` limits count over.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Entries kept before stale ones are swept.
const SWEEP_ABOVE: usize = 10_000;

/// Who an attempt counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Account(String),
    Ip(IpAddr),
}

#[derive(Default)]
struct Tally {
    failures: VecDeque<Instant>,
    in_flight: u32,
}

impl Tally {
    fn forget_before(&mut self, cutoff: Instant) {
        while self.failures.front().is_some_and(|t| *t < cutoff) {
            self.failures.pop_front();
        }
    }
}

/// Counts failed logins; `begin` says whether another attempt may proceed.
pub struct Throttle {
    per_account: u32,
    per_ip: u32,
    tallies: Mutex<HashMap<Subject, Tally>>,
}

/// A reserved attempt; report its outcome with `failed` or `succeeded`.
/// Dropped without either, it frees its place and counts nothing.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    subjects: [Subject; 2],
    outcome: Option<bool>,
}

impl Throttle {
    /// Limits per window for one account and for one IP.
    pub fn new(per_account: u32, per_ip: u32) -> Self {
        Self {
            per_account,
            per_ip,
            tallies: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves an attempt for `account` from `ip`, or says how long to wait.
    pub fn begin(&self, account: &str, ip: IpAddr) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let cutoff = now.checked_sub(WINDOW).unwrap_or(now);
        let subjects = [Subject::Account(account.to_owned()), Subject::Ip(ip)];
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        if tallies.len() > SWEEP_ABOVE {
            tallies.retain(|_, t| {
                t.forget_before(cutoff);
                !t.failures.is_empty() || t.in_flight > 0
            });
        }
        let mut wait = Duration::ZERO;
        for (subject, limit) in subjects.iter().zip([self.per_account, self.per_ip]) {
            let tally = tallies.entry(subject.clone()).or_default();
            tally.forget_before(cutoff);
            if tally.failures.len() as u32 >= limit {
                let oldest = tally.failures[tally.failures.len() - limit as usize];
                wait = wait.max((oldest + WINDOW).saturating_duration_since(now));
            } else if tally.failures.len() as u32 + tally.in_flight >= limit {
                // Enough guesses are being checked right now to fill the limit.
                wait = wait.max(Duration::from_secs(1));
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for subject in &subjects {
            if let Some(t) = tallies.get_mut(subject) {
                t.in_flight += 1;
            }
        }
        Ok(Attempt {
            throttle: self,
            subjects,
            outcome: None,
        })
    }
}

impl Attempt<'_> {
    /// The password was wrong: the attempt counts against both subjects.
    pub fn failed(mut self) {
        self.outcome = Some(false);
    }

    /// The password was right: the account's failures are forgiven.
    pub fn succeeded(mut self) {
        self.outcome = Some(true);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut tallies = self
            .throttle
            .tallies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for subject in &self.subjects {
            let Some(t) = tallies.get_mut(subject) else {
                continue;
            };
            t.in_flight = t.in_flight.saturating_sub(1);
            match (self.outcome, subject) {
                (Some(false), _) => t.failures.push_back(now),
                (Some(true), Subject::Account(_)) => t.failures.clear(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn account_limit_refuses_then_reports_wait() {
        let t = Throttle::new(3, 100);
        for _ in 0..3 {
            t.begin("alice", IP).unwrap().failed();
        }
        let wait = t.begin("alice", IP).err().unwrap();
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(t.begin("bob", IP).is_ok());
    }

    #[test]
    fn ip_limit_spans_accounts() {
        let t = Throttle::new(100, 2);
        t.begin("a", IP).unwrap().failed();
        t.begin("b", IP).unwrap().failed();
        assert!(t.begin("c", IP).is_err());
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert!(t.begin("c", other).is_ok());
    }

    #[test]
    fn in_flight_attempts_hold_places() {
        let t = Throttle::new(2, 100);
        let a = t.begin("alice", IP).unwrap();
        let b = t.begin("alice", IP).unwrap();
        assert!(t.begin("alice", IP).is_err());
        drop(a);
        b.failed();
        assert!(t.begin("alice", IP).is_ok());
    }

    #[test]
    fn success_forgives_the_account_only() {
        let t = Throttle::new(2, 3);
        t.begin("alice", IP).unwrap().failed();
        t.begin("alice", IP).unwrap().succeeded();
        t.begin("alice", IP).unwrap().failed();
        assert!(t.begin("alice", IP).is_ok(), "account was forgiven");
        t.begin("bob", IP).unwrap().failed();
        assert!(t.begin("carol", IP).is_err(), "the IP still counts three");
    }
}
