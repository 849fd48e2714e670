//! A small pool of low-priority threads that run argon2 and nothing else.
//!
//! Why not `spawn_blocking`: tokio's blocking pool grows to hundreds of
//! threads, and each keeps its own malloc arena holding a freed 19 MiB
//! argon2 block, so a login storm left the server at ~800 MiB. And the
//! hashing threads run under `SCHED_IDLE`, so when a storm fills every
//! core, request threads still get the CPU the moment they wake: `/me`
//! stays quick while logins queue.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Runs closures on `size` dedicated threads, in arrival order.
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// The pool's threads have stopped (they never do while it lives).
#[derive(Debug)]
pub struct PoolGone;

impl HashPool {
    /// Starts `size` threads; they end when the pool is dropped.
    pub fn new(size: usize) -> Arc<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..size.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Arc::new(Self {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `work` on the pool and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolGone> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs
            .lock()
            .map_err(|_| PoolGone)?
            .send(job)
            .map_err(|_| PoolGone)?;
        rx.await.map_err(|_| PoolGone)
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux a scheduling policy belongs to the calling thread alone.
    let param = libc::sched_param { sched_priority: 0 };
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_returns_its_result() {
        let pool = HashPool::new(2);
        let results = futures_util::future::join_all((0..8).map(|n| pool.run(move || n * 2))).await;
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, vec![0, 2, 4, 6, 8, 10, 12, 14]);
    }
}
