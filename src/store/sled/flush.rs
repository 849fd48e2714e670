//! Group commit: callers that ask for durability at the same moment share one
//! disk write instead of queueing one each.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::StoreError;

/// Hands out tickets; a ticket is durable once a flush that began after it
/// was taken has finished.
pub(super) struct Flusher {
    db: sled::Db,
    state: Arc<State>,
    started: Once,
    /// The flushing task, which holds a handle to sled until stopped.
    task: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    requested: AtomicU64,
    wake: Notify,
    done: watch::Sender<Done>,
    stopping: AtomicBool,
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
                stopping: AtomicBool::new(false),
            }),
            started: Once::new(),
            task: Mutex::new(None),
        }
    }

    /// Returns once everything committed before the call is on disk.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        self.started.call_once(|| {
            let task = tokio::spawn(run(self.db.clone(), self.state.clone()));
            if let Ok(mut slot) = self.task.lock() {
                *slot = Some(task);
            }
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

    /// Ends the task, so that sled closes once the store's own handles
    /// drop. Only for a store about to be dropped: later flushes would wait
    /// forever.
    pub(super) async fn stop(&self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.wake.notify_one();
        let task = self.task.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(db: sled::Db, state: Arc<State>) {
    loop {
        state.wake.notified().await;
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
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
