//! The shared channel `<prefix>events`: every script that ends a session
//! publishes `e<hash>`, every chat message `m<id>:<record>`; each instance
//! follows it on a connection of its own (on a Cluster, to the node
//! `redis_url` names: a cluster passes every publication to every node)
//! and hands each event to its
//! subscribers. A lost subscription is reported (`Unavailable`), retried,
//! and reported again once restored (`Restored`): endings published in
//! between were missed, so the subscriber re-checks what it holds.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::conn::Conn;
use super::messages::message_from;
use super::{bounded, RedisStore, StoreEvent, Subscribers};
use crate::domain::TokenHash;

/// How often a quiet subscription checks that Redis still answers.
const HEARTBEAT: Duration = Duration::from_millis(500);

impl RedisStore {
    /// Every ending and chat message on any instance, as published.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<StoreEvent> {
        self.shared.subscribers.subscribe()
    }

    pub(super) fn start_events(&mut self) {
        let s = &self.shared;
        let task = tokio::spawn(follow(
            s.client.clone(),
            s.conn.clone(),
            s.keys.events(),
            s.subscribers.clone(),
            s.timeout,
        ));
        if let Ok(mut slot) = s.events_task.lock() {
            *slot = Some(task);
        }
    }
}

async fn follow(
    client: redis::Client,
    conn: Conn,
    channel: String,
    subscribers: Subscribers,
    timeout: Duration,
) {
    let mut lost = false;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(timeout, subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                report_lost(&mut lost, &subscribers);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        if std::mem::take(&mut lost) {
            tracing::info!("Redis event channel restored");
            subscribers.tell(StoreEvent::Restored);
        }
        let mut messages = pubsub.on_message();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => {
                        if let Some(event) = parse(msg.get_payload_bytes()) {
                            subscribers.tell(event);
                        }
                    }
                    None => break,
                },
                _ = heartbeat.tick() => {
                    let mut conn = conn.clone();
                    let pong: Result<String, _> =
                        bounded(timeout, redis::cmd("PING").query_async(&mut conn)).await;
                    if pong.is_err() {
                        break;
                    }
                }
            }
        }
        report_lost(&mut lost, &subscribers);
    }
}

/// Tells the subscribers, once per outage, that events stopped.
fn report_lost(lost: &mut bool, subscribers: &Subscribers) {
    if !std::mem::replace(lost, true) {
        tracing::warn!("lost the Redis event channel; retrying");
        subscribers.tell(StoreEvent::Unavailable);
    }
}

fn parse(payload: &[u8]) -> Option<StoreEvent> {
    match payload.split_first()? {
        (b'e', hash) => Some(StoreEvent::Ended(TokenHash::from_hex(
            std::str::from_utf8(hash).ok()?,
        )?)),
        (b'm', rest) => {
            let colon = rest.iter().position(|b| *b == b':')?;
            let id = std::str::from_utf8(&rest[..colon]).ok()?;
            message_from(id, &rest[colon + 1..])
                .ok()
                .map(StoreEvent::Message)
        }
        _ => None,
    }
}
