//! Who is connected, in which rooms, under which session.
//!
//! Each socket has a bounded queue: a broadcast never waits for a slow
//! reader; a socket whose queue is full is closed with 1008 instead.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::protocol::message_frame;
use crate::domain::{RoomName, TokenHash};
use crate::store::{Store, StoreEvent};

/// How long sockets stay open while their sessions cannot be checked.
const UNCHECKED_GRACE: Duration = Duration::from_secs(5);

/// A text frame as queued: shared bytes, so a broadcast to a thousand
/// sockets copies the text once, not a thousand times.
pub type Frame = tokio_tungstenite::tungstenite::Utf8Bytes;

/// Frames queued per socket before it counts as not reading.
pub const QUEUE: usize = 64;

/// Why the server closes a socket; each has its close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The session ended: 4401.
    SessionEnded,
    /// The server is stopping: 1001.
    Shutdown,
    /// The client does not read its frames: 1008.
    TooSlow,
    /// The client sent a frame over the 64 KiB limit: 1009.
    TooBig,
    /// The store cannot check sessions any more (Redis down): 1013.
    StorageUnavailable,
}

impl CloseReason {
    /// The WebSocket close code and reason.
    pub fn code(self) -> (u16, &'static str) {
        match self {
            CloseReason::SessionEnded => (4401, "session ended"),
            CloseReason::Shutdown => (1001, "server shutting down"),
            CloseReason::TooSlow => (1008, "not reading"),
            CloseReason::TooBig => (1009, "frame over the 64 KiB limit"),
            CloseReason::StorageUnavailable => (1013, "storage unavailable; reconnect shortly"),
        }
    }
}

type SocketId = u64;

struct Socket {
    user: u64,
    session: TokenHash,
    rooms: HashSet<RoomName>,
    queue: mpsc::Sender<Frame>,
    close: watch::Sender<Option<CloseReason>>,
}

#[derive(Default)]
struct State {
    next_id: SocketId,
    sockets: HashMap<SocketId, Socket>,
    rooms: HashMap<RoomName, HashSet<SocketId>>,
    by_session: HashMap<TokenHash, HashSet<SocketId>>,
    per_user: HashMap<u64, usize>,
    stopping: bool,
}

/// The chat hub: a cheap `Clone`.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    max_per_user: usize,
    /// Open sockets, shared with `/metrics` and `/api/admin/stats`.
    connections: Arc<AtomicU64>,
}

/// A place held for one more socket of a user, taken before the upgrade
/// so the limit holds even when upgrades race. Dropped unused, it frees
/// the place.
pub struct Reservation {
    hub: Hub,
    user: u64,
    used: bool,
}

/// What a socket task receives when it joins the hub.
pub struct Connection {
    /// Its id in the hub.
    pub id: SocketId,
    /// Frames to send, in order.
    pub queue: mpsc::Receiver<Frame>,
    /// Set once when the hub wants it closed.
    pub close: watch::Receiver<Option<CloseReason>>,
}

impl Hub {
    /// An empty hub; `connections` is the gauge it keeps up to date.
    pub fn new(max_per_user: usize, connections: Arc<AtomicU64>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                max_per_user,
                connections,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds a place for one more socket of `user`, or `None` at the limit
    /// (or while stopping).
    pub fn reserve(&self, user: u64) -> Option<Reservation> {
        let mut state = self.lock();
        let held = state.per_user.get(&user).copied().unwrap_or(0);
        if state.stopping || held >= self.inner.max_per_user {
            return None;
        }
        state.per_user.insert(user, held + 1);
        Some(Reservation {
            hub: self.clone(),
            user,
            used: false,
        })
    }

    fn release(&self, user: u64) {
        let mut state = self.lock();
        if let Some(held) = state.per_user.get_mut(&user) {
            *held -= 1;
            if *held == 0 {
                state.per_user.remove(&user);
            }
        }
    }

    /// Registers an upgraded socket under its session.
    pub fn connect(&self, mut reservation: Reservation, session: TokenHash) -> Connection {
        reservation.used = true;
        let (queue_tx, queue) = mpsc::channel(QUEUE);
        let (close_tx, close) = watch::channel(None);
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        if state.stopping {
            let _ = close_tx.send(Some(CloseReason::Shutdown));
        }
        state.sockets.insert(
            id,
            Socket {
                user: reservation.user,
                session,
                rooms: HashSet::new(),
                queue: queue_tx,
                close: close_tx,
            },
        );
        state.by_session.entry(session).or_default().insert(id);
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        Connection { id, queue, close }
    }

    /// Forgets a socket that has closed.
    pub fn disconnect(&self, id: SocketId) {
        let mut state = self.lock();
        let Some(socket) = state.sockets.remove(&id) else {
            return;
        };
        for room in &socket.rooms {
            if let Some(members) = state.rooms.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    state.rooms.remove(room);
                }
            }
        }
        if let Some(ids) = state.by_session.get_mut(&socket.session) {
            ids.remove(&id);
            if ids.is_empty() {
                state.by_session.remove(&socket.session);
            }
        }
        drop(state);
        self.release(socket.user);
        self.inner.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds a socket to a room.
    pub fn join(&self, id: SocketId, room: &RoomName) {
        let mut state = self.lock();
        if let Some(socket) = state.sockets.get_mut(&id) {
            socket.rooms.insert(room.clone());
            state.rooms.entry(room.clone()).or_default().insert(id);
        }
    }

    /// Takes a socket out of a room.
    pub fn leave(&self, id: SocketId, room: &RoomName) {
        let mut state = self.lock();
        if let Some(socket) = state.sockets.get_mut(&id) {
            socket.rooms.remove(room);
        }
        if let Some(members) = state.rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                state.rooms.remove(room);
            }
        }
    }

    /// Whether the socket is in the room.
    pub fn is_member(&self, id: SocketId, room: &RoomName) -> bool {
        self.lock()
            .sockets
            .get(&id)
            .is_some_and(|s| s.rooms.contains(room))
    }

    /// Queues a frame for every socket in the room, the sender included.
    /// Never waits: a socket whose queue is full is closed with 1008.
    pub fn broadcast(&self, room: &RoomName, frame: Frame) {
        let state = self.lock();
        let Some(members) = state.rooms.get(room) else {
            return;
        };
        for id in members {
            let Some(socket) = state.sockets.get(id) else {
                continue;
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = socket.queue.try_send(frame.clone()) {
                let _ = socket.close.send(Some(CloseReason::TooSlow));
            }
        }
    }

    /// Closes every socket of a session with 4401.
    pub fn end_session(&self, session: &TokenHash) {
        let state = self.lock();
        for id in state.by_session.get(session).into_iter().flatten() {
            if let Some(socket) = state.sockets.get(id) {
                let _ = socket.close.send(Some(CloseReason::SessionEnded));
            }
        }
    }

    /// Follows the store's events as they come: closes every socket whose
    /// session was removed, and delivers every stored chat message to its
    /// room, whichever instance caused it. When the store stops reporting
    /// (Redis down), sockets are closed with 1013 after `UNCHECKED_GRACE`
    /// unless it comes back first; when it does, every session held here
    /// is checked again, since endings published meanwhile were missed.
    pub fn follow_store(&self, store: Store) -> JoinHandle<()> {
        let hub = self.clone();
        let mut events = store.subscribe();
        tokio::spawn(async move {
            let mut give_up: Option<tokio::time::Instant> = None;
            loop {
                let event = match give_up {
                    Some(at) => tokio::select! {
                        event = events.recv() => event,
                        _ = tokio::time::sleep_until(at) => {
                            hub.close_all(CloseReason::StorageUnavailable);
                            give_up = None;
                            continue;
                        }
                    },
                    None => events.recv().await,
                };
                let Some(event) = event else { break };
                match event {
                    StoreEvent::Ended(hash) => hub.end_session(&hash),
                    StoreEvent::Message(record) => match RoomName::parse(&record.room) {
                        Ok(room) => hub.broadcast(&room, Frame::from(message_frame(&record))),
                        Err(_) => tracing::warn!("a stored message names no valid room"),
                    },
                    StoreEvent::Unavailable => {
                        give_up.get_or_insert(tokio::time::Instant::now() + UNCHECKED_GRACE);
                    }
                    StoreEvent::Restored => {
                        give_up = None;
                        let held = hub.sessions();
                        match store.missing_sessions(&held).await {
                            Ok(missing) => missing.iter().for_each(|h| hub.end_session(h)),
                            Err(_) => {
                                give_up = Some(tokio::time::Instant::now() + UNCHECKED_GRACE);
                            }
                        }
                    }
                }
            }
        })
    }

    /// The sessions that have sockets here.
    fn sessions(&self) -> Vec<TokenHash> {
        self.lock().by_session.keys().copied().collect()
    }

    /// Closes every socket with `reason`.
    fn close_all(&self, reason: CloseReason) {
        for socket in self.lock().sockets.values() {
            let _ = socket.close.send(Some(reason));
        }
    }

    /// Closes every socket with 1001 and refuses new ones; returns once all
    /// are gone or `patience` has passed.
    pub async fn shut_down(&self, patience: Duration) {
        {
            let mut state = self.lock();
            state.stopping = true;
            for socket in state.sockets.values() {
                let _ = socket.close.send(Some(CloseReason::Shutdown));
            }
        }
        let deadline = tokio::time::Instant::now() + patience;
        while self.inner.connections.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            self.hub.release(self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(max: usize) -> Hub {
        Hub::new(max, Arc::new(AtomicU64::new(0)))
    }

    #[test]
    fn the_per_user_limit_counts_reservations_and_frees_on_drop() {
        let hub = hub(2);
        let a = hub.reserve(1).unwrap();
        let _b = hub.reserve(1).unwrap();
        assert!(hub.reserve(1).is_none());
        assert!(hub.reserve(2).is_some());
        drop(a);
        assert!(hub.reserve(1).is_some());
    }

    #[tokio::test]
    async fn a_full_queue_closes_only_that_socket() {
        let hub = hub(4);
        let room = RoomName::parse("general").unwrap();
        let session = TokenHash::from_bytes([1; 32]);
        let mut slow = hub.connect(hub.reserve(1).unwrap(), session);
        let mut fast = hub.connect(hub.reserve(2).unwrap(), TokenHash::from_bytes([2; 32]));
        hub.join(slow.id, &room);
        hub.join(fast.id, &room);
        for n in 0..=QUEUE {
            hub.broadcast(&room, Frame::from(n.to_string()));
            fast.queue.recv().await.unwrap();
        }
        assert_eq!(*slow.close.borrow_and_update(), Some(CloseReason::TooSlow));
        assert_eq!(*fast.close.borrow(), None);
    }

    #[test]
    fn ending_a_session_closes_its_sockets_only() {
        let hub = hub(4);
        let mine = hub.connect(hub.reserve(1).unwrap(), TokenHash::from_bytes([1; 32]));
        let other = hub.connect(hub.reserve(1).unwrap(), TokenHash::from_bytes([2; 32]));
        hub.end_session(&TokenHash::from_bytes([1; 32]));
        assert_eq!(*mine.close.borrow(), Some(CloseReason::SessionEnded));
        assert_eq!(*other.close.borrow(), None);
    }

    #[test]
    fn disconnect_forgets_everything() {
        let connections = Arc::new(AtomicU64::new(0));
        let hub = Hub::new(1, connections.clone());
        let room = RoomName::parse("r").unwrap();
        let c = hub.connect(hub.reserve(1).unwrap(), TokenHash::from_bytes([1; 32]));
        hub.join(c.id, &room);
        assert_eq!(connections.load(Ordering::Relaxed), 1);
        hub.disconnect(c.id);
        assert_eq!(connections.load(Ordering::Relaxed), 0);
        assert!(!hub.is_member(c.id, &room));
        assert!(hub.reserve(1).is_some(), "the place is free again");
    }
}
