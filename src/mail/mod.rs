//! Mail out: an outbox in the store and a task that drains it over SMTP
//! (`lettre`, rustls). A request that wants a mail queues it and waits only
//! for the store, never for SMTP, so a slow or absent mail server holds no
//! request, and a crash after the answer loses no mail: the next start
//! sends it. On Redis each mail is claimed by one instance (a lease in
//! the claim itself, `Store::claim_mail`).

mod letters;
mod sender;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

pub use letters::Letter;
pub use sender::{run_sender, SmtpMailer};

use crate::store::{now_ms, MailRecord, Store, StoreError};

/// Mails so far, for `/metrics`.
#[derive(Debug, Default)]
pub struct MailCounts {
    /// Put in the outbox by this process.
    pub queued: AtomicU64,
    /// Taken by the SMTP server.
    pub sent: AtomicU64,
    /// Given up on (refused for good, or out of tries).
    pub failed: AtomicU64,
}

/// Where requests put mail: a cheap `Clone`, shared by the auth layer and
/// the sender task.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Wakes this process's sender when a mail is queued here.
    queued: Notify,
    counts: MailCounts,
}

impl Outbox {
    /// An outbox over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                queued: Notify::new(),
                counts: MailCounts::default(),
            }),
        }
    }

    /// Queues `letter` to `to`; durable once the caller's
    /// `commit_durably` returns.
    pub async fn queue(&self, to: &str, letter: &Letter) -> Result<(), StoreError> {
        let (text, html) = letter.render();
        let now = now_ms();
        let mail = MailRecord {
            to: to.to_owned(),
            subject: letter.subject.clone(),
            text,
            html,
            queued_at_ms: now,
            attempts: 0,
            next_attempt_ms: now,
        };
        self.inner.store.queue_mail(&mail).await?;
        self.inner.counts.queued.fetch_add(1, Ordering::Relaxed);
        self.inner.queued.notify_one();
        Ok(())
    }

    /// Mail outcomes so far.
    pub fn counts(&self) -> &MailCounts {
        &self.inner.counts
    }
}
