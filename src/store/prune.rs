//! The pruner, the same for both backends: prune what is due, then sleep
//! until the earliest deadline or `prune_interval`, whichever comes first,
//! waking early when a session made here ends before the next pass.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{now_ms, AuditRetention, Backend, Store};

/// When the pruner next runs, and how to wake it sooner; each backend
/// keeps one.
pub(super) struct PruneSchedule {
    wake: Notify,
    at_ms: AtomicU64,
}

impl PruneSchedule {
    pub fn new() -> Self {
        Self {
            wake: Notify::new(),
            at_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Wakes the pruner if a session now ends before its next pass.
    pub fn note_deadline(&self, deadline_ms: u64) {
        if deadline_ms < self.at_ms.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }
}

impl Store {
    /// Runs the pruner until `shutdown` completes: ended sessions, and
    /// security-log entries past `retention`.
    pub fn spawn_pruner(
        &self,
        interval: Duration,
        retention: AuditRetention,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            // The log keeps days: once an interval is enough, not at every
            // session deadline the pruner wakes for.
            let mut log_due_ms = 0;
            loop {
                match store.prune_pass().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(pruned = n, "pruned ended sessions"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
                if now_ms() >= log_due_ms {
                    log_due_ms = now_ms().saturating_add(interval.as_millis() as u64);
                    match store.prune_activity(now_ms(), retention).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(pruned = n, "pruned security-log entries"),
                        Err(e) => tracing::warn!(error = %e, "pruning the security log failed"),
                    }
                }
                let now = now_ms();
                let mut wake_at = now.saturating_add(interval.as_millis() as u64);
                if let Ok(Some(next)) = store.next_deadline_ms().await {
                    // Never sooner than 10 ms: a failing pass must not spin.
                    wake_at = wake_at.min(next.max(now + 10));
                }
                let schedule = store.schedule();
                schedule.at_ms.store(wake_at, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wake_at - now)) => {}
                    _ = schedule.wake.notified() => {}
                    _ = &mut shutdown => break,
                }
            }
        })
    }

    /// One pass: sled's on a blocking thread (tree walks), Redis's under
    /// the lease that keeps instances from repeating each other's work.
    async fn prune_pass(&self) -> Result<u64, super::StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.prune_ended(now_ms()))
                    .await
                    .unwrap_or_else(|e| {
                        let bug = format!("the pruning task failed: {e}");
                        Err(super::StoreError::Sled(::sled::Error::ReportableBug(bug)))
                    })
            }
            Backend::Redis(r) => r.prune_under_lease(now_ms()).await,
        }
    }

    fn schedule(&self) -> &PruneSchedule {
        match &self.backend {
            Backend::Sled(s) => s.schedule(),
            Backend::Redis(r) => r.schedule(),
        }
    }
}
