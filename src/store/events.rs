//! This process's subscribers to the store's events, the same for both
//! backends: sled tells them what it did, Redis what the shared channel
//! brought.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::StoreEvent;

/// Everyone in this process who follows the store; clone it freely.
#[derive(Clone, Default)]
pub(super) struct Subscribers(Arc<Mutex<Vec<mpsc::UnboundedSender<StoreEvent>>>>);

impl Subscribers {
    /// A new subscriber's stream of events from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<StoreEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().push(tx);
        rx
    }

    /// Hands `event` to every subscriber, forgetting those gone.
    pub fn tell(&self, event: StoreEvent) {
        self.lock().retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn lock(&self) -> MutexGuard<'_, Vec<mpsc::UnboundedSender<StoreEvent>>> {
        // A panic while holding the lock leaves only senders behind.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
