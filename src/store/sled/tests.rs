//! What only the embedded backend promises: its user counter's upgrade,
//! group commit, the seal a clean close leaves, and what `check` finds
//! in its trees.

use super::*;
use crate::domain::{Email, Role, Username};
use crate::store::TicketKind;

/// Opens the store in `dir`. A reopen right after a close may find sled's
/// own background thread still letting go of the files (slower on a
/// loaded machine): `Locked` is tried again for a while, anything else
/// fails at once.
fn open(dir: &tempfile::TempDir) -> SledStore {
    let config = StorageConfig {
        data_dir: dir.path().to_owned(),
        ..StorageConfig::default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(&config) {
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

fn add_user(store: &SledStore, name: &str) -> UserRecord {
    store
        .create_user_linked(
            NewUser {
                username: &Username::parse(name).unwrap(),
                email: &Email::parse(&format!("{name}@example.com")).unwrap(),
                role: Role::User,
                password_hash: "x".into(),
                now_ms: 1,
            },
            None,
            &[],
        )
        .unwrap()
}

#[tokio::test]
async fn a_database_from_before_the_counter_continues_past_its_highest_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    add_user(&store, "aaa");
    let b = add_user(&store, "bbb");
    // As a database written before users had their own counter.
    store.shared.meta.remove(users::NEXT_USER_ID).unwrap();
    store.close().await.unwrap();
    let store = open(&dir);
    let c = add_user(&store, "ccc");
    assert_eq!(c.id, b.id + 1);
    assert!(store.check().unwrap().problems.is_empty());
}

#[tokio::test]
async fn durable_commits_share_flushes_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let waits = (0..20).map(|_| {
        let s = store.clone();
        tokio::spawn(async move { s.commit_durably().await })
    });
    // A lost wake-up would hang a waiter: that must fail, not stall.
    let all = futures_util::future::join_all(waits);
    for done in tokio::time::timeout(std::time::Duration::from_secs(10), all)
        .await
        .expect("every durable commit completes")
    {
        done.unwrap().unwrap();
    }
}

/// A seal written while sled could still change the files would later
/// refuse a sound database, so only the last handle seals, and a sealed
/// database opens again, unsealed while open.
#[tokio::test]
async fn only_the_last_handle_seals_and_a_seal_lasts_until_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let sealed = || dir.path().join("db.sealed").exists();
    let store = open(&dir);
    add_user(&store, "alice");
    let other = store.clone();
    store.close().await.unwrap();
    assert!(!sealed(), "sealed while another handle was open");
    other.close().await.unwrap();
    assert!(sealed(), "the last close seals");

    let reopened = open(&dir);
    assert!(!sealed(), "an open database carries no seal");
    assert!(reopened.user_by_name("alice").unwrap().is_some());
    reopened.close().await.unwrap();
    assert!(sealed());
}

/// A mailed code whose expiry entry went missing would never be pruned;
/// `check` names it, and a damaged ticket.
#[tokio::test]
async fn check_names_a_ticket_the_pruner_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let user = add_user(&store, "alice");
    let key = TicketKey::User(TicketKind::EmailVerify, user.user_id());
    let ticket = TicketRecord {
        deadline_ms: 5_000,
        body: vec![1, 2, 3],
    };
    store.put_ticket(&key, &ticket).unwrap();
    assert!(store.check().unwrap().problems.is_empty());
    let entry = records::ticket_expiry_key(5_000, &key.bytes());
    store.shared.ticket_expiry.remove(entry).unwrap();
    let problems = store.check().unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("ticket_expiry: missing entry"),
        "{problems:?}"
    );
    store
        .shared
        .tickets
        .insert(key.bytes(), &[0xff][..])
        .unwrap();
    let problems = store.check().unwrap().problems;
    assert!(
        problems.iter().any(|p| p.starts_with("tickets: key")),
        "{problems:?}"
    );
}
