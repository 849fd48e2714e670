//! Chat history on Redis: one stream per room, `room:<name>`, capped at
//! `ROOM_CAP` entries (approximately: Redis trims whole nodes). A
//! message's id is its stream entry's id (`<id>-0`, from one counter for
//! every room, as sled's), so `before` pages by id as on sled.

use super::{arg, decode, MessageRecord, RedisStore, StoreError};
use crate::domain::{RoomName, UserId};
use crate::store::codec;

/// One XREVRANGE entry: its id and its field-value pairs.
pub(super) type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// Messages kept per room.
const ROOM_CAP: u64 = 100_000;

impl RedisStore {
    /// Stores a message under the next id and publishes it to every
    /// instance, in one script; then waits for replicas if configured.
    pub async fn post_message(
        &self,
        room: &RoomName,
        from: UserId,
        from_name: &str,
        text: &str,
        now_ms: u64,
    ) -> Result<MessageRecord, StoreError> {
        let mut record = MessageRecord {
            // Stored as 0: the stream entry's id is the message's.
            id: 0,
            room: room.as_ref().to_owned(),
            from_id: from.as_u64(),
            from_name: from_name.to_owned(),
            text: text.to_owned(),
            sent_at_ms: now_ms,
        };
        let keys = &self.shared.keys;
        let encoded = codec::encode(&record);
        let mut id = 0;
        for _ in 0..super::RETRIES {
            // The id from the counter, then the stream, whose ids only grow:
            // a later id that got to the room first means taking a new one.
            id = self
                .run(redis::cmd("INCR").arg(keys.all("next_message_id")))
                .await?;
            let added: i64 = self
                .script(
                    &self.shared.scripts.message_post,
                    &[&keys.room(room.as_ref())],
                    &[arg(id), arg(&encoded), arg(ROOM_CAP), arg(keys.events())],
                )
                .await?;
            if added == 1 {
                break;
            }
            id = 0;
        }
        if id == 0 {
            return Err(StoreError::Redis(
                "a room's newer messages kept taking the id; try again".into(),
            ));
        }
        record.id = id;
        self.commit_durably().await?;
        Ok(record)
    }

    /// Up to `limit` of the newest messages in `room` older than `before`,
    /// oldest first.
    pub async fn messages(
        &self,
        room: &RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let end = match before {
            Some(id) => format!("({id}-0"),
            None => "+".to_owned(),
        };
        let entries: Vec<StreamEntry> = self
            .run(
                redis::cmd("XREVRANGE")
                    .arg(self.shared.keys.room(room.as_ref()))
                    .arg(end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(limit),
            )
            .await?;
        let mut page = Vec::with_capacity(entries.len());
        for (entry_id, fields) in entries.iter().rev() {
            let Some((_, raw)) = fields.iter().find(|(f, _)| f == "r") else {
                continue;
            };
            page.push(message_from(entry_id, raw)?);
        }
        Ok(page)
    }
}

/// A stored message with its id taken from where it was stored.
pub(super) fn message_from(id: &str, raw: &[u8]) -> Result<MessageRecord, StoreError> {
    let mut record: MessageRecord = decode("message", raw)?;
    record.id = id
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(record)
}
