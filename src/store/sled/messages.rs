//! Chat history: one contiguous key run per room, in send order.

use std::ops::Bound;

use super::records::message_key;
use super::MessageRecord;
use super::{codec, decode, SledStore, StoreError};
use crate::domain::{RoomName, UserId};

impl SledStore {
    /// Stores a message and, once it is durable, tells every subscriber:
    /// a room hears only what a restart cannot take back.
    pub async fn post_message(
        &self,
        room: &RoomName,
        from: UserId,
        from_name: &str,
        text: &str,
        now_ms: u64,
    ) -> Result<MessageRecord, StoreError> {
        let s = &self.shared;
        let record = MessageRecord {
            id: s.db.generate_id()? + 1,
            room: room.as_ref().to_owned(),
            from_id: from.as_u64(),
            from_name: from_name.to_owned(),
            text: text.to_owned(),
            sent_at_ms: now_ms,
        };
        s.messages.insert(
            message_key(room.as_ref(), record.id),
            codec::encode(&record),
        )?;
        self.commit_durably().await?;
        self.notify_message(&record);
        Ok(record)
    }

    /// Up to `limit` of the newest messages in `room` older than `before`
    /// (all, if `None`), oldest first.
    pub fn messages(
        &self,
        room: &RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let start = message_key(room.as_ref(), 0);
        let end = match before {
            Some(id) => Bound::Excluded(message_key(room.as_ref(), id)),
            None => Bound::Included(message_key(room.as_ref(), u64::MAX)),
        };
        let mut page = self
            .shared
            .messages
            .range((Bound::Included(start), end))
            .rev()
            .take(limit)
            .map(|item| decode("messages", &item?.1))
            .collect::<Result<Vec<MessageRecord>, _>>()?;
        page.reverse();
        Ok(page)
    }

    /// Every stored message, room by room in send order (for `migrate`).
    pub fn all_messages(&self) -> Result<Vec<MessageRecord>, StoreError> {
        self.shared
            .messages
            .iter()
            .values()
            .map(|v| decode("messages", &v?))
            .collect()
    }
}
