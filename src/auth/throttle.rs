//! Login throttling per account and per client IP, over a sliding window.
//!
//! An attempt reserves its place before the password is checked, so many
//! parallel guesses cannot all pass the check before any failure counts.
//! When the places left are all taken by attempts still being checked, the
//! next attempt waits for one of them to finish instead of being refused:
//! parallel logins that succeed are never throttled.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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
    /// Signalled whenever an attempt finishes and frees its place.
    released: Notify,
}

/// What `try_begin` decided.
enum Decision<'a> {
    Go(Attempt<'a>),
    Refuse(Duration),
    Wait,
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
            released: Notify::new(),
        }
    }

    /// Reserves an attempt for `account` from `ip`, waiting while the
    /// remaining places are held by attempts still being checked; refuses
    /// with the time to wait once the failures alone fill the limit.
    pub async fn begin(&self, account: &str, ip: IpAddr) -> Result<Attempt<'_>, Duration> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.try_begin(account, ip) {
                Decision::Go(attempt) => return Ok(attempt),
                Decision::Refuse(wait) => return Err(wait),
                Decision::Wait => released.await,
            }
        }
    }

    /// Forgets an account's failures, so it may log in again at once (an
    /// admin's unlock); its address's tally is left as it is.
    pub fn forgive(&self, account: &str) {
        self.forgive_before(account, Instant::now());
    }

    /// Forgets an account's failures recorded before `cutoff`: what
    /// another instance forgave, as the shared count read at `cutoff`
    /// said, without the failures recorded here since.
    pub fn forgive_before(&self, account: &str, cutoff: Instant) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tallies.get_mut(&Subject::Account(account.to_owned())) {
            t.failures.retain(|at| *at >= cutoff);
        }
    }

    fn try_begin(&self, account: &str, ip: IpAddr) -> Decision<'_> {
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
        let mut full = false;
        for (subject, limit) in subjects.iter().zip([self.per_account, self.per_ip]) {
            let tally = tallies.entry(subject.clone()).or_default();
            tally.forget_before(cutoff);
            if tally.failures.len() as u32 >= limit {
                let oldest = tally.failures[tally.failures.len() - limit as usize];
                wait = wait.max((oldest + WINDOW).saturating_duration_since(now));
            } else if tally.failures.len() as u32 + tally.in_flight >= limit {
                // The places left are held by guesses being checked now.
                full = true;
            }
        }
        if !wait.is_zero() {
            return Decision::Refuse(wait.max(Duration::from_secs(1)));
        }
        if full {
            return Decision::Wait;
        }
        for subject in &subjects {
            if let Some(t) = tallies.get_mut(subject) {
                t.in_flight += 1;
            }
        }
        Decision::Go(Attempt {
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
        drop(tallies);
        self.throttle.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn account_limit_refuses_then_reports_wait() {
        let t = Throttle::new(3, 100);
        for _ in 0..3 {
            t.begin("alice", IP).await.unwrap().failed();
        }
        let wait = t.begin("alice", IP).await.err().unwrap();
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(t.begin("bob", IP).await.is_ok());
    }

    #[tokio::test]
    async fn ip_limit_spans_accounts() {
        let t = Throttle::new(100, 2);
        t.begin("a", IP).await.unwrap().failed();
        t.begin("b", IP).await.unwrap().failed();
        assert!(t.begin("c", IP).await.is_err());
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert!(t.begin("c", other).await.is_ok());
    }

    #[tokio::test]
    async fn attempts_being_checked_hold_places_and_the_next_waits() {
        let t = Throttle::new(2, 100);
        let a = t.begin("alice", IP).await.unwrap();
        let b = t.begin("alice", IP).await.unwrap();
        let third = t.begin("alice", IP);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), third.as_mut())
                .await
                .is_err(),
            "the third waits while two are checked"
        );
        a.failed();
        b.failed();
        assert!(third.await.is_err(), "both failed: now refused");
    }

    #[tokio::test]
    async fn a_waiting_attempt_goes_ahead_when_a_place_frees_without_failure() {
        let t = Throttle::new(1, 100);
        let a = t.begin("alice", IP).await.unwrap();
        let next = t.begin("alice", IP);
        tokio::pin!(next);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), next.as_mut())
                .await
                .is_err()
        );
        a.succeeded();
        assert!(next.await.is_ok());
    }

    #[tokio::test]
    async fn forgiving_before_a_moment_keeps_the_failures_recorded_after_it() {
        let t = Throttle::new(2, 100);
        t.begin("alice", IP).await.unwrap().failed();
        let cutoff = Instant::now();
        t.begin("alice", IP).await.unwrap().failed();
        t.forgive_before("alice", cutoff);
        t.begin("alice", IP).await.unwrap().failed();
        assert!(
            t.begin("alice", IP).await.is_err(),
            "the failure after the cutoff still counts"
        );
    }

    #[tokio::test]
    async fn success_forgives_the_account_only() {
        let t = Throttle::new(2, 3);
        t.begin("alice", IP).await.unwrap().failed();
        t.begin("alice", IP).await.unwrap().succeeded();
        t.begin("alice", IP).await.unwrap().failed();
        assert!(t.begin("alice", IP).await.is_ok(), "account was forgiven");
        t.begin("bob", IP).await.unwrap().failed();
        assert!(
            t.begin("carol", IP).await.is_err(),
            "the IP still counts three"
        );
    }
}
