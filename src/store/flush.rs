//! Group commit: callers that ask for durability at the same moment share one
//! disk write instead of queueing one each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use tokio::sync::{watch, Notify};

use super::StoreError;

/// Hands out tickets; a ticket is durable once a flush that began after it
/// was taken has finished.
pub(super) struct Flusher {
    db: sled::Db,
    state: Arc<State>,
    started: Once,
}

struct State {
    requested: AtomicU64,
    wake: Notify,
    done: watch::Sender<Done>,
}

#[derive(Clone, Copy, Default)]
struct Done {
    flushed: u64,
    failed: u64,
}

impl Flusher {
    pub(super) fn new(db: sled::Db) -> Self {
        Self {
            db,
            state: Arc::new(State {
                requested: AtomicU64::new(0),
                wake: Notify::new(),
                done: watch::channel(Done::default()).0,
            }),
            started: Once::new(),
        }
    }

    /// Returns once everything committed before the call is on disk.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        self.started.call_once(|| {
            tokio::spawn(run(self.db.clone(), self.state.clone()));
        });
        let mut done = self.state.done.subscribe();
        let ticket = self.state.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.state.wake.notify_one();
        let outcome = *done
            .wait_for(|d| d.flushed >= ticket || d.failed >= ticket)
            .await
            .map_err(|_| StoreError::Sled(sled::Error::ReportableBug("flusher stopped".into())))?;
        if outcome.flushed >= ticket {
            Ok(())
        } else {
            Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(
                "flushing the database to disk failed",
            ))))
        }
    }
}

async fn run(db: sled::Db, state: Arc<State>) {
    loop {
        state.wake.notified().await;
        let target = state.requested.load(Ordering::SeqCst);
        let result = db.flush_async().await;
        state.done.send_modify(|d| match result {
            Ok(_) => d.flushed = d.flushed.max(target),
            Err(ref e) => {
                tracing::error!(error = %e, "database flush failed");
                d.failed = d.failed.max(target);
            }
        });
    }
}
