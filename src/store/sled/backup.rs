//! Reading every lasting record for a backup, and writing a backup's
//! records into an empty database with their ids.

use std::sync::atomic::Ordering;

use sled::Transactional;

use super::records::message_key;
use super::users::{insert_user, read_count, NEXT_USER_ID};
use super::{codec, tx, IdentityRecord, MessageRecord, SledStore, StoreError, UserRecord};
use crate::store::Snapshot;

impl SledStore {
    /// Every lasting record, tree by tree (see `store::backup`).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut users = Vec::new();
        for user in self.list_users(None, usize::MAX)? {
            let identities = self.identities_of(user.user_id())?;
            users.push((user, identities));
        }
        Ok(Snapshot {
            users,
            sessions: self.all_sessions()?,
            messages: self.all_messages()?,
            mails: self.queued_mails()?.into_iter().map(|(_, m)| m).collect(),
            activity: self.all_activity()?,
            tickets: self.lasting_tickets(crate::store::now_ms())?,
            next_user_id: self.next_user_id()?,
            dev_secret: None,
        })
    }

    /// Whether no user, session, message, mail or log entry is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let s = &self.shared;
        Ok(s.users.is_empty()
            && s.sessions.is_empty()
            && s.messages.is_empty()
            && s.outbox.is_empty()
            && s.audit.is_empty())
    }

    /// Writes `user` under its own id with its indexes, admin count and
    /// identities, in one transaction, as a registration does.
    pub fn import_user(
        &self,
        user: &UserRecord,
        identities: &[IdentityRecord],
    ) -> Result<(), StoreError> {
        tx(self
            .user_trees()
            .transaction(|trees| insert_user(trees, user, identities)))?;
        self.shared.user_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Stores a message under a new id (sled's id generator cannot be set
    /// forward): messages imported in id order keep their order.
    pub fn import_message(&self, message: &MessageRecord) -> Result<(), StoreError> {
        let s = &self.shared;
        let record = MessageRecord {
            id: s.db.generate_id()? + 1,
            ..message.clone()
        };
        s.messages
            .insert(message_key(&record.room, record.id), codec::encode(&record))?;
        Ok(())
    }

    /// Sets the user id counter forward to `next_user_id`. A development
    /// secret lives beside the database, not in it: the caller writes it.
    pub fn import_counters(
        &self,
        next_user_id: u64,
        _dev_secret: Option<&str>,
    ) -> Result<(), StoreError> {
        let meta = &self.shared.meta;
        let now = read_count(meta.get(NEXT_USER_ID)?.as_deref());
        meta.insert(NEXT_USER_ID, &now.max(next_user_id).to_be_bytes())?;
        Ok(())
    }
}
