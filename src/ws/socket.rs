//! One task per socket: reads the client's frames, writes the hub's, pings
//! when idle, and closes with the hub's reason.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::{interval, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::hub::{CloseReason, Connection, Frame, Hub, Reservation};
use super::protocol::{error_frame, joined_frame, ClientFrame};
use crate::auth::{Auth, CurrentSession};
use crate::config::ChatConfig;
use crate::domain::RoomName;
use crate::store::now_ms;

/// Largest text frame taken as a chat frame; a larger one closes the
/// socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A write that takes longer than this means a peer that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a socket task needs.
pub struct Socket {
    /// The hub it joins.
    pub hub: Hub,
    /// Session checks and the store.
    pub auth: Auth,
    /// Limits.
    pub chat: ChatConfig,
    /// The session the upgrade was made with.
    pub session: CurrentSession,
}

/// The server's end of an upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<Upgraded>>;
type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

/// Why the loop stopped.
enum End {
    /// The hub asked: send this close frame.
    Close(CloseReason),
    /// The peer went away or broke the protocol.
    Gone,
}

impl Socket {
    /// Serves the socket until either side ends it.
    pub async fn run(self, ws: WebSocket, reservation: Reservation) {
        let conn = self.hub.connect(reservation, self.session.hash);
        let id = conn.id;
        let (mut sink, mut stream) = ws.split();
        let end = self.serve(&mut sink, &mut stream, conn).await;
        if let End::Close(reason) = end {
            let (code, text) = reason.code();
            let _ = timeout(
                Duration::from_secs(1),
                sink.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: text.into(),
                }))),
            )
            .await;
        }
        let _ = timeout(Duration::from_secs(1), sink.close()).await;
        self.hub.disconnect(id);
    }

    async fn serve(&self, sink: &mut Sink, stream: &mut Source, conn: Connection) -> End {
        let Connection {
            id,
            mut queue,
            mut close,
        } = conn;
        // One wait for the hub's close for the socket's life: a new one per
        // turn of the loop cost every delivery a waiter added to the
        // channel's list and taken off it again.
        let closed = async move {
            let _ = close.changed().await;
            close.borrow().map_or(End::Gone, End::Close)
        };
        tokio::pin!(closed);
        let mut ping = interval(self.chat.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await;
        let mut heard_since_ping = true;
        let mut window = RateWindow::new(self.chat.max_messages_per_second);
        // The session's own deadline closes the socket when it passes,
        // whether or not a pruner has run (activity elsewhere moves it).
        // One timer for the socket's life, moved when the deadline moves:
        // a new one per turn of the loop cost every delivery a timer-wheel
        // insertion and removal.
        let deadline = tokio::time::sleep_until(instant_at(self.session.session.deadline_ms()));
        tokio::pin!(deadline);
        loop {
            let reply = tokio::select! {
                biased;
                end = &mut closed => return end,
                _ = &mut deadline => {
                    let next = match self.auth.peek(self.session.hash).await {
                        Ok(Some(current)) => instant_at(current.session.deadline_ms()),
                        Ok(None) => return End::Close(CloseReason::SessionEnded),
                        // The store's outage is the hub's to handle (1013).
                        Err(_) => tokio::time::Instant::now() + Duration::from_secs(1),
                    };
                    deadline.as_mut().reset(next);
                    None
                }
                frame = queue.recv() => match frame {
                    Some(frame) => Some(frame),
                    None => return End::Gone,
                },
                incoming = stream.next() => {
                    heard_since_ping = true;
                    match incoming {
                        Some(Ok(Message::Text(text))) => match self.on_text(id, text.as_bytes(), &mut window).await {
                            Ok(reply) => reply.map(Frame::from),
                            Err(reason) => return End::Close(reason),
                        },
                        Some(Ok(Message::Binary(_))) => {
                            Some(Frame::from(error_frame("invalid_frame", "Frames must be JSON text.")))
                        }
                        Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                            return End::Close(CloseReason::TooBig);
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Gone,
                        Some(Ok(_)) => None,
                    }
                }
                _ = ping.tick() => {
                    if !heard_since_ping {
                        return End::Gone;
                    }
                    heard_since_ping = false;
                    if let Err(end) = send(sink, Message::Ping(Default::default()), closed.as_mut()).await {
                        return end;
                    }
                    None
                }
            };
            if let Some(frame) = reply {
                if let Err(end) = send(sink, Message::Text(frame), closed.as_mut()).await {
                    return end;
                }
            }
        }
    }

    /// Handles one text frame; returns what to send back to this socket
    /// alone, or why to close it.
    async fn on_text(
        &self,
        id: u64,
        raw: &[u8],
        window: &mut RateWindow,
    ) -> Result<Option<String>, CloseReason> {
        // Every frame is activity, and proof the session still stands.
        let current = match self.auth.refresh(self.session.hash).await {
            Ok(Some(current)) => current,
            Ok(None) => return Err(CloseReason::SessionEnded),
            Err(e) => {
                tracing::error!(error = %e, "session check failed on a socket");
                return Ok(Some(error_frame("unavailable", "Try again shortly.")));
            }
        };
        if raw.len() > MAX_FRAME_BYTES {
            return Err(CloseReason::TooBig);
        }
        let frame = match ClientFrame::parse(raw) {
            Ok(frame) => frame,
            Err(detail) => {
                return Ok(Some(error_frame("invalid_frame", &detail)));
            }
        };
        let room_of = |raw: &str| {
            RoomName::parse(raw).map_err(|e| error_frame("invalid_room", &e.to_string()))
        };
        match frame {
            ClientFrame::Join { room } => {
                let room = match room_of(&room) {
                    Ok(room) => room,
                    Err(frame) => return Ok(Some(frame)),
                };
                let history = self
                    .auth
                    .store()
                    .messages(&room, None, self.chat.history_on_join)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!(error = %e, "reading chat history failed");
                        Vec::new()
                    });
                self.hub.join(id, &room);
                Ok(Some(joined_frame(room.as_ref(), &history)))
            }
            ClientFrame::Leave { room } => {
                match room_of(&room) {
                    Ok(room) => self.hub.leave(id, &room),
                    Err(frame) => return Ok(Some(frame)),
                }
                Ok(None)
            }
            ClientFrame::Message { room, text } => {
                let room = match room_of(&room) {
                    Ok(room) => room,
                    Err(frame) => return Ok(Some(frame)),
                };
                if !self.hub.is_member(id, &room) {
                    return Ok(Some(error_frame(
                        "not_joined",
                        "Join the room before sending to it.",
                    )));
                }
                if !window.admit() {
                    return Ok(Some(error_frame(
                        "rate_limited",
                        "Too many messages; slow down.",
                    )));
                }
                let chars = text.chars().count();
                if chars == 0 || chars > self.chat.max_message_chars {
                    return Ok(Some(error_frame(
                        "invalid_message",
                        &format!(
                            "text must be 1 to {} characters.",
                            self.chat.max_message_chars
                        ),
                    )));
                }
                // The room hears it from the store, on every instance.
                let stored = self
                    .auth
                    .store()
                    .post_message(
                        &room,
                        current.user.user_id(),
                        &current.user.username,
                        &text,
                        now_ms(),
                    )
                    .await;
                match stored {
                    Ok(_) => Ok(None),
                    Err(e) => {
                        tracing::error!(error = %e, "storing a chat message failed");
                        Ok(Some(error_frame(
                            "unavailable",
                            "The message was not stored; try again.",
                        )))
                    }
                }
            }
        }
    }
}

/// Writes one frame, giving up on a peer that does not read, and yielding
/// to a close the hub asks for meanwhile.
async fn send(
    sink: &mut Sink,
    msg: Message,
    closed: Pin<&mut impl Future<Output = End>>,
) -> Result<(), End> {
    tokio::select! {
        // The write first: when it finishes at once, as it nearly always
        // does, the close is not polled at all.
        biased;
        sent = timeout(WRITE_TIMEOUT, sink.send(msg)) => match sent {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        },
        end = closed => Err(end),
    }
}

/// When a deadline in Unix millis falls, on tokio's clock (a moment
/// after, so the check that follows sees it passed).
fn instant_at(deadline_ms: u64) -> tokio::time::Instant {
    let left = deadline_ms.saturating_sub(now_ms()).saturating_add(5);
    tokio::time::Instant::now() + Duration::from_millis(left)
}

/// At most `limit` messages per second per connection.
struct RateWindow {
    limit: u32,
    started: Instant,
    count: u32,
}

impl RateWindow {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            started: Instant::now(),
            count: 0,
        }
    }

    fn admit(&mut self) -> bool {
        if self.started.elapsed() >= Duration::from_secs(1) {
            self.started = Instant::now();
            self.count = 0;
        }
        self.count += 1;
        self.count <= self.limit
    }
}
