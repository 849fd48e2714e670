//! Backups: every lasting record of a store (users with their identities,
//! sessions with their deadlines, chat history, mail still to send, the
//! security log, the user id counter and a development secret) as one file, taken from a
//! serving store and restored into an empty one of either backend.
//!
//! What a backup holds: every record written before it began and still
//! there when it ended. Each record is read whole (a sled key, a Redis
//! key); records written while it runs may or may not be in it. A session
//! whose user was removed meanwhile is left out at restore, and a read
//! that a change ran through (a name or address on two users) is taken
//! again, so what restores passes `check`. Other tickets (pending sign-ins, mailed codes,
//! links) and throttle counts last minutes and are not kept.
//!
//! The file: a 64-byte header (`MAGIC`, the file format, the schema, the
//! body's length and its SHA-256), then the body, zstd-compressed: frames
//! end to end (`codec::push_frame`), each a record as `codec` writes it,
//! with its own version byte, so an older backup's records upgrade as they
//! load, and each decoded under the store's per-record limit. A file that is not whole is
//! refused, naming what is wrong, before anything is written.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::codec;
use super::Backend;
use super::{
    AuditId, AuditRecord, IdentityRecord, MailRecord, MessageRecord, SessionRecord, Store,
    StoreError, UserRecord, SCHEMA_VERSION,
};
use crate::domain::TokenHash;

/// What every backup file starts with.
const MAGIC: &[u8; 16] = b"sessiond backup\n";
/// What each frame of the records holds.
const USER: u8 = 1;
/// The user's id (8 bytes), then the identity.
const IDENTITY: u8 = 2;
/// The token's hash (32 bytes), then the session.
const SESSION: u8 = 3;
const MESSAGE: u8 = 4;
const MAIL: u8 = 5;
const NEXT_USER_ID: u8 = 6;
const DEV_SECRET: u8 = 7;
/// The entry's id (ms, seq, user: 8 bytes each), then the entry.
const AUDIT: u8 = 8;
/// A lasting ticket: its key's length (4 bytes), the key, the record.
const TICKET: u8 = 9;

/// No backup this build writes comes near it; a crafted file that
/// decompresses past it is refused instead of filling memory.
const MAX_RECORDS_BYTES: u64 = 8 << 30;

fn decompress(records: &[u8]) -> Result<Vec<u8>, BackupError> {
    use std::io::Read;
    let damaged = |e: &dyn std::fmt::Display| {
        BackupError::Records(format!("the records do not decompress ({e})"))
    };
    let decoder = zstd::stream::Decoder::new(records).map_err(|e| damaged(&e))?;
    let mut raw = Vec::new();
    decoder
        .take(MAX_RECORDS_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| damaged(&e))?;
    if raw.len() as u64 > MAX_RECORDS_BYTES {
        return Err(damaged(&"they grow past 8 GiB"));
    }
    Ok(raw)
}

fn decode<T: codec::Record>(bytes: &[u8]) -> Result<T, String> {
    codec::decode(bytes).map_err(|e| e.to_string())
}

/// The layout below `MAGIC` this build writes and reads.
const FILE_FORMAT: u32 = 1;
const HEADER_LEN: usize = 16 + 4 + 4 + 8 + 32;
/// zstd's default level: a tenth of the time of level 19 for most of its
/// gain on records that are mostly hashes and text.
const LEVEL: i32 = 3;

/// Every lasting record of a store, in memory.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// Users, each with the identities linked to them.
    pub users: Vec<(UserRecord, Vec<IdentityRecord>)>,
    /// Sessions, by the hash of their token.
    pub sessions: Vec<(TokenHash, SessionRecord)>,
    /// Chat history.
    pub messages: Vec<MessageRecord>,
    /// Mail queued and not yet sent.
    pub mails: Vec<MailRecord>,
    /// The security log, every user's, with each entry's id.
    pub activity: Vec<(AuditId, AuditRecord)>,
    /// The OIDC provider's signing keys, consents and grants (tickets of
    /// the lasting kinds).
    pub tickets: Vec<(super::TicketKey, super::TicketRecord)>,
    /// The id the next user gets.
    pub next_user_id: u64,
    /// The development secret cookies are signed with, if the server has
    /// no configured one: without it every restored cookie is refused.
    pub dev_secret: Option<String>,
}

/// Why a file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// It does not start as a backup does.
    #[error("not a sessiond backup (it does not start with the backup header)")]
    NotABackup,
    /// It ends before its header does.
    #[error("truncated: the file ends inside its header")]
    HeaderCut,
    /// A newer sessiond wrote it.
    #[error("written by a newer sessiond (file format {file}, schema {schema}; this one reads format {FILE_FORMAT}, schema {SCHEMA_VERSION}): upgrade sessiond to restore it")]
    Newer {
        /// Its file format.
        file: u32,
        /// Its schema.
        schema: u32,
    },
    /// Shorter or longer than its header says.
    #[error(
        "truncated or extended: the header says {expected} bytes of records, the file has {found}"
    )]
    Length {
        /// What the header says.
        expected: u64,
        /// What is there.
        found: u64,
    },
    /// The records are not the ones the header's checksum was taken of.
    #[error("damaged: the records' SHA-256 does not match the header's")]
    Checksum,
    /// The checksum matched but the records do not read.
    #[error("damaged: {0}")]
    Records(String),
}

impl Snapshot {
    /// The backup file for this snapshot.
    pub fn to_file(&self) -> Vec<u8> {
        let mut raw = Vec::new();
        for (user, identities) in &self.users {
            codec::push_frame(&mut raw, USER, &[&codec::encode(user)]);
            for identity in identities {
                let id = user.id.to_be_bytes();
                codec::push_frame(&mut raw, IDENTITY, &[&id, &codec::encode(identity)]);
            }
        }
        for (hash, session) in &self.sessions {
            codec::push_frame(
                &mut raw,
                SESSION,
                &[hash.as_bytes(), &codec::encode(session)],
            );
        }
        for message in &self.messages {
            codec::push_frame(&mut raw, MESSAGE, &[&codec::encode(message)]);
        }
        for mail in &self.mails {
            codec::push_frame(&mut raw, MAIL, &[&codec::encode(mail)]);
        }
        for (id, entry) in &self.activity {
            let (ms, seq, user) = (
                id.ms.to_be_bytes(),
                id.seq.to_be_bytes(),
                id.user.to_be_bytes(),
            );
            codec::push_frame(&mut raw, AUDIT, &[&ms, &seq, &user, &codec::encode(entry)]);
        }
        for (key, record) in &self.tickets {
            let key = key.bytes();
            let len = (key.len() as u32).to_be_bytes();
            codec::push_frame(&mut raw, TICKET, &[&len, &key, &codec::encode(record)]);
        }
        codec::push_frame(&mut raw, NEXT_USER_ID, &[&self.next_user_id.to_be_bytes()]);
        if let Some(secret) = &self.dev_secret {
            codec::push_frame(&mut raw, DEV_SECRET, &[secret.as_bytes()]);
        }
        let records =
            zstd::bulk::compress(&raw, LEVEL).expect("compressing bytes in memory cannot fail");
        let mut file = Vec::with_capacity(HEADER_LEN + records.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&FILE_FORMAT.to_be_bytes());
        file.extend_from_slice(&SCHEMA_VERSION.to_be_bytes());
        file.extend_from_slice(&(records.len() as u64).to_be_bytes());
        file.extend_from_slice(&Sha256::digest(&records));
        file.extend_from_slice(&records);
        file
    }

    /// Reads a backup file, every record of it, or says what is wrong.
    pub fn from_file(file: &[u8]) -> Result<Snapshot, BackupError> {
        if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        if file.len() < HEADER_LEN {
            return Err(BackupError::HeaderCut);
        }
        let word = |at: usize| u32::from_be_bytes(file[at..at + 4].try_into().unwrap());
        let (format, schema) = (word(16), word(20));
        if format > FILE_FORMAT || schema > SCHEMA_VERSION {
            return Err(BackupError::Newer {
                file: format,
                schema,
            });
        }
        let expected = u64::from_be_bytes(file[24..32].try_into().unwrap());
        let records = &file[HEADER_LEN..];
        if records.len() as u64 != expected {
            return Err(BackupError::Length {
                expected,
                found: records.len() as u64,
            });
        }
        if Sha256::digest(records).as_slice() != &file[32..HEADER_LEN] {
            return Err(BackupError::Checksum);
        }
        let raw = decompress(records)?;
        let mut snapshot = Snapshot::default();
        for (n, frame) in codec::frames(&raw).enumerate() {
            let damaged = |e: &dyn std::fmt::Display| {
                BackupError::Records(format!("record {} does not read ({e})", n + 1))
            };
            let (kind, bytes) = frame.map_err(|e| damaged(&e))?;
            snapshot.add(kind, bytes).map_err(|e| damaged(&e))?;
        }
        Ok(snapshot)
    }

    /// Adds one frame's record.
    fn add(&mut self, kind: u8, bytes: &[u8]) -> Result<(), String> {
        let split = |at: usize| {
            (bytes.len() >= at)
                .then(|| bytes.split_at(at))
                .ok_or_else(|| "cut short".to_owned())
        };
        match kind {
            USER => self.users.push((decode(bytes)?, Vec::new())),
            IDENTITY => {
                let (id, record) = split(8)?;
                let id = u64::from_be_bytes(id.try_into().unwrap());
                let Some((_, identities)) = self.users.iter_mut().rev().find(|(u, _)| u.id == id)
                else {
                    return Err(format!("an identity of user {id}, who is not before it"));
                };
                identities.push(decode(record)?);
            }
            SESSION => {
                let (hash, record) = split(32)?;
                let hash = TokenHash::from_bytes(hash.try_into().unwrap());
                self.sessions.push((hash, decode(record)?));
            }
            MESSAGE => self.messages.push(decode(bytes)?),
            MAIL => self.mails.push(decode(bytes)?),
            AUDIT => {
                let (id, record) = split(24)?;
                let word = |at: usize| u64::from_be_bytes(id[at..at + 8].try_into().unwrap());
                let id = AuditId {
                    ms: word(0),
                    seq: word(8),
                    user: word(16),
                };
                self.activity.push((id, decode(record)?));
            }
            TICKET => {
                let (len, rest) = split(4)?;
                let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
                if rest.len() < len {
                    return Err("cut short".into());
                }
                let (key, record) = rest.split_at(len);
                let key = super::TicketKey::lasting_from_bytes(key)
                    .ok_or_else(|| "a ticket of a kind no backup keeps".to_owned())?;
                self.tickets.push((key, decode(record)?));
            }
            NEXT_USER_ID => {
                let (next, _) = split(8)?;
                self.next_user_id = u64::from_be_bytes(next.try_into().unwrap());
            }
            DEV_SECRET => {
                let secret = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
                self.dev_secret = Some(secret.to_owned());
            }
            other => return Err(format!("unknown kind {other}")),
        }
        Ok(())
    }

    /// What would stop a restore: two users with one id, name, e-mail or
    /// identity (a change made while the backup was read can put a name
    /// or address on two records), said in one line; `None` if none.
    pub fn conflict(&self) -> Option<String> {
        let (mut ids, mut names, mut emails, mut links) = Default::default();
        let fresh = |seen: &mut HashSet<String>, key: String| seen.insert(key);
        for (user, identities) in &self.users {
            let ids: &mut HashSet<u64> = &mut ids;
            if !ids.insert(user.id) {
                return Some(format!("two users have the id {}", user.id));
            }
            if !fresh(&mut names, crate::domain::name_key(&user.username)) {
                return Some(format!("two users have the name {}", user.username));
            }
            if !fresh(&mut emails, crate::domain::email_key(&user.email)) {
                return Some("two users have one e-mail address".into());
            }
            for i in identities {
                if !fresh(&mut links, format!("{}\n{}", i.issuer, i.subject)) {
                    return Some(format!(
                        "two users are linked to one identity of {}",
                        i.issuer
                    ));
                }
            }
        }
        None
    }

    /// Leaves out sessions whose user is not in the snapshot (removed
    /// while it was taken); answers how many.
    fn drop_orphans(&mut self) -> usize {
        let users: HashSet<u64> = self.users.iter().map(|(u, _)| u.id).collect();
        let before = self.sessions.len();
        self.sessions.retain(|(_, s)| users.contains(&s.user_id));
        before - self.sessions.len()
    }
}

/// What a restore wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreReport {
    /// Users written.
    pub users: u64,
    /// Sessions written (ended ones too: the pruner removes them).
    pub sessions: u64,
    /// Identities written.
    pub identities: u64,
    /// Chat messages written.
    pub messages: u64,
    /// Mails queued again.
    pub mails: u64,
    /// Security-log entries written.
    pub activity: u64,
    /// The OIDC provider's keys, consents and grants written.
    pub tickets: u64,
    /// Sessions left out: their user was removed while the backup ran.
    pub orphans: u64,
}

impl Store {
    /// Every lasting record, read once while the store serves.
    async fn read_once(&self, dev_secret: Option<String>) -> Result<Snapshot, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let s = s.clone();
                // Reading every tree takes a while: off the request threads.
                let mut snap = tokio::task::spawn_blocking(move || s.snapshot())
                    .await
                    .map_err(|e| StoreError::Redis(format!("the backup task failed: {e}")))??;
                snap.dev_secret = dev_secret;
                Ok(snap)
            }
            Backend::Redis(r) => r.snapshot().await,
        }
    }

    /// Every lasting record, read while the store serves, as a snapshot
    /// that restores: read again (up to three times) while a change made
    /// during the read left a name or address on two users. `dev_secret`
    /// is a sled data dir's development secret (Redis keeps its own).
    pub async fn snapshot(&self, dev_secret: Option<String>) -> Result<Snapshot, StoreError> {
        let mut tries = 0;
        loop {
            let snap = self.read_once(dev_secret.clone()).await?;
            match snap.conflict() {
                Some(conflict) if tries < 3 => {
                    tries += 1;
                    tracing::info!(%conflict, "backup read again: a change ran through it");
                }
                Some(conflict) => return Err(BackupError::Records(conflict).into()),
                None => return Ok(snap),
            }
        }
    }

    /// Writes `snapshot` into this store, which must hold nothing, and
    /// makes it durable.
    pub async fn restore(&self, mut snapshot: Snapshot) -> Result<RestoreReport, StoreError> {
        if let Some(conflict) = snapshot.conflict() {
            return Err(BackupError::Records(conflict).into());
        }
        if !self.is_empty().await? {
            return Err(StoreError::NotEmpty);
        }
        let mut report = RestoreReport {
            orphans: snapshot.drop_orphans() as u64,
            ..RestoreReport::default()
        };
        for (user, identities) in &snapshot.users {
            dispatch!(self.import_user(user, identities))?;
            report.users += 1;
            report.identities += identities.len() as u64;
        }
        for (hash, session) in &snapshot.sessions {
            self.create_session(hash, session, &[]).await?;
            report.sessions += 1;
        }
        dispatch!(self.import_activity(&snapshot.activity))?;
        report.activity = snapshot.activity.len() as u64;
        // In id order: sled numbers them afresh, keeping that order.
        snapshot.messages.sort_by_key(|m| m.id);
        for message in &snapshot.messages {
            dispatch!(self.import_message(message))?;
            report.messages += 1;
        }
        for mail in &snapshot.mails {
            self.queue_mail(mail).await?;
            report.mails += 1;
        }
        for (key, record) in &snapshot.tickets {
            self.put_ticket(key, record).await?;
            report.tickets += 1;
        }
        let secret = snapshot.dev_secret.as_deref();
        // Past every restored id, whatever the counter said when read: a
        // user's log included (one who registered while the backup ran may
        // have entries and no record), so no new user inherits a log.
        let highest = snapshot
            .users
            .iter()
            .map(|(u, _)| u.id)
            .chain(snapshot.activity.iter().map(|(id, _)| id.user))
            .max()
            .unwrap_or(0);
        let next = snapshot.next_user_id.max(highest + 1);
        dispatch!(self.import_counters(next, secret))?;
        self.commit_durably().await?;
        Ok(report)
    }

    /// Whether nothing is stored (for `restore` and `migrate`).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        dispatch!(self.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            messages: vec![MessageRecord {
                id: 7,
                room: "general".into(),
                from_id: 1,
                from_name: "alice".into(),
                text: "hello".into(),
                sent_at_ms: 5,
            }],
            next_user_id: 2,
            dev_secret: Some("s".into()),
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_file_reads_back_as_the_snapshot_it_was_made_of() {
        let snap = sample();
        assert_eq!(Snapshot::from_file(&snap.to_file()).unwrap(), snap);
    }

    #[test]
    fn a_backup_is_not_bounded_by_one_records_size_limit() {
        let mut snap = sample();
        let one = snap.messages[0].clone();
        snap.messages = (0..3000)
            .map(|id| MessageRecord {
                id,
                text: format!("{id:04} {}", "x".repeat(995)),
                ..one.clone()
            })
            .collect();
        let back = Snapshot::from_file(&snap.to_file()).unwrap();
        assert_eq!(back.messages.len(), 3000);
        assert_eq!(back, snap);
    }

    #[test]
    fn a_read_a_change_ran_through_is_named_before_anything_is_written() {
        let user = |id: u64, name: &str, email: &str| UserRecord {
            id,
            username: name.into(),
            email: email.into(),
            role: crate::domain::Role::User,
            password_hash: "x".into(),
            created_at_ms: 1,
            factors: Default::default(),
            email_verified: true,
        };
        let mut snap = sample();
        snap.users = vec![
            (user(1, "alice", "a@example.com"), vec![]),
            (user(2, "bob", "A@example.com"), vec![]),
        ];
        let said = snap.conflict().expect("one address on two users");
        assert!(said.contains("e-mail"), "{said}");
        snap.users[1].0.email = "b@example.com".into();
        assert_eq!(snap.conflict(), None);
        snap.users[1].0.username = "ALICE".into();
        assert!(snap.conflict().unwrap().contains("name"));
    }

    #[test]
    fn a_damaged_file_is_refused_naming_what_is_wrong() {
        let file = sample().to_file();
        let refused = |bytes: &[u8]| Snapshot::from_file(bytes).unwrap_err().to_string();
        assert!(refused(b"PK\x03\x04 a zip file").contains("not a sessiond backup"));
        assert!(refused(&file[..file.len() - 3]).contains("truncated"));
        assert!(refused(&file[..40]).contains("truncated"));
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(refused(&flipped).contains("SHA-256"));
        let mut newer = file.clone();
        newer[23] += 1;
        assert!(refused(&newer).contains("newer sessiond"));
    }
}
