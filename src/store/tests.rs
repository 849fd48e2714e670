//! The store's own promises, checked on a real sled database in a temp dir.

use super::*;
use crate::domain::{Email, Role, TokenHash, Username};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&StorageConfig {
        data_dir: dir.path().to_owned(),
        ..StorageConfig::default()
    })
    .unwrap()
}

fn add_user(store: &Store, name: &str) -> UserRecord {
    store
        .create_user(NewUser {
            username: &Username::parse(name).unwrap(),
            email: &Email::parse(&format!("{name}@example.com")).unwrap(),
            role: Role::User,
            password_hash: "x".into(),
            now_ms: 1,
        })
        .unwrap()
}

fn session(user: &UserRecord, deadline: u64) -> SessionRecord {
    SessionRecord {
        user_id: user.id,
        created_at_ms: 0,
        last_seen_at_ms: 0,
        absolute_expires_at_ms: deadline,
        idle_expires_at_ms: deadline + 1000,
        user_agent: String::new(),
        ip: "127.0.0.1".into(),
        remember: true,
    }
}

fn hash(n: u8) -> TokenHash {
    TokenHash::from_bytes([n; 32])
}

#[test]
fn names_and_emails_are_unique_ignoring_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    add_user(&store, "alice");
    let again = store.create_user(NewUser {
        username: &Username::parse("ALICE").unwrap(),
        email: &Email::parse("other@example.com").unwrap(),
        role: Role::User,
        password_hash: "x".into(),
        now_ms: 1,
    });
    assert!(matches!(again, Err(StoreError::UsernameTaken)));
    let again = store.create_user(NewUser {
        username: &Username::parse("bob").unwrap(),
        email: &Email::parse("Alice@Example.com").unwrap(),
        role: Role::User,
        password_hash: "x".into(),
        now_ms: 1,
    });
    assert!(matches!(again, Err(StoreError::EmailTaken)));
    assert!(store.user_by_name("alice").unwrap().is_some());
    assert!(store.user_by_email("alice@example.com").unwrap().is_some());
}

#[test]
fn user_ids_only_grow() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = add_user(&store, "aaa");
    let b = add_user(&store, "bbb");
    assert!(b.id > a.id);
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

#[test]
fn a_touch_after_the_end_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let user = add_user(&store, "alice");
    store
        .create_session(&hash(1), &session(&user, 10_000))
        .unwrap();
    assert!(store.end_session(&hash(1)).unwrap().is_some());
    assert!(store.touch_session(&hash(1), 5, 100).unwrap().is_none());
    assert!(store.session(&hash(1)).unwrap().is_none());
    assert_eq!(
        store.next_deadline_ms().unwrap(),
        None,
        "no expiry entry left"
    );
    assert_eq!(store.session_count(), 0);
}

#[test]
fn touch_moves_the_expiry_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let user = add_user(&store, "alice");
    let mut s = session(&user, 10_000);
    s.idle_expires_at_ms = 100;
    store.create_session(&hash(1), &s).unwrap();
    assert_eq!(store.next_deadline_ms().unwrap(), Some(100));
    let touched = store.touch_session(&hash(1), 50, 500).unwrap().unwrap();
    assert_eq!(touched.idle_expires_at_ms, 550);
    assert_eq!(store.next_deadline_ms().unwrap(), Some(550));
    assert_eq!(
        store.prune_ended(200).unwrap(),
        0,
        "the old deadline is gone"
    );
}

#[test]
fn a_pass_spanning_many_batches_removes_every_ended_session_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let user = add_user(&store, "alice");
    let key = |n: u16| {
        let mut bytes = [0u8; 32];
        bytes[..2].copy_from_slice(&n.to_be_bytes());
        TokenHash::from_bytes(bytes)
    };
    // Deadlines 1000..1999, in an order unlike the keys'; those up to 1699
    // have ended, except one whose idle deadline a touch moved past them.
    let touched = (0..1000u16).find(|n| n * 7 % 1000 == 3).unwrap();
    for n in 0..1000u16 {
        let deadline = 1000 + u64::from(n * 7 % 1000);
        let mut record = session(&user, deadline);
        if n == touched {
            record.absolute_expires_at_ms = 10_000;
            record.idle_expires_at_ms = deadline;
        }
        store.create_session(&key(n), &record).unwrap();
    }
    store
        .touch_session(&key(touched), 1, 5000)
        .unwrap()
        .unwrap();
    assert_eq!(store.prune_ended(1699).unwrap(), 699);
    for n in 0..1000u16 {
        let ended = 1000 + u64::from(n * 7 % 1000) <= 1699 && n != touched;
        assert_eq!(store.session(&key(n)).unwrap().is_none(), ended, "{n}");
    }
    assert_eq!(store.session_count(), 301);
    assert_eq!(store.next_deadline_ms().unwrap(), Some(1700));
    assert!(store.check().unwrap().problems.is_empty());
}

#[test]
fn prune_removes_exactly_the_ended_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let user = add_user(&store, "alice");
    for n in 0..10u8 {
        store
            .create_session(&hash(n), &session(&user, 1000 + u64::from(n) * 100))
            .unwrap();
    }
    assert_eq!(store.prune_ended(1450).unwrap(), 5);
    assert_eq!(store.session_count(), 5);
    assert_eq!(store.pruned_total(), 5);
    for n in 0..10u8 {
        assert_eq!(
            store.session(&hash(n)).unwrap().is_some(),
            n >= 5,
            "session {n}"
        );
    }
    assert_eq!(store.next_deadline_ms().unwrap(), Some(1500));
}

#[test]
fn a_session_for_a_missing_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut ghost = add_user(&store, "alice");
    ghost.id += 100;
    let refused = store.create_session(&hash(1), &session(&ghost, 10));
    assert!(matches!(refused, Err(StoreError::NoSuchUser)));
    assert_eq!(store.next_deadline_ms().unwrap(), None);
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

#[tokio::test]
async fn every_removal_path_reports_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut endings = store.subscribe_endings();
    let alice = add_user(&store, "alice");
    let bob = add_user(&store, "bob");
    for (n, user, deadline) in [
        (1, &alice, 10_000),
        (2, &alice, 10_000),
        (3, &bob, 10_000),
        (4, &bob, 50),
    ] {
        store
            .create_session(&hash(n), &session(user, deadline))
            .unwrap();
    }
    store.end_session(&hash(1)).unwrap();
    store.prune_ended(100).unwrap();
    store.end_sessions_of(alice.user_id(), None).unwrap();
    store.remove_user(bob.user_id()).unwrap();
    let mut seen = Vec::new();
    while let Ok(h) = endings.try_recv() {
        seen.push(h);
    }
    assert_eq!(seen, vec![hash(1), hash(4), hash(2), hash(3)]);
}

#[test]
fn removing_a_user_frees_the_name_and_takes_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = add_user(&store, "alice");
    store
        .create_session(&hash(1), &session(&alice, 10_000))
        .unwrap();
    let removed = store.remove_user(alice.user_id()).unwrap();
    assert_eq!(removed.sessions, vec![hash(1)]);
    assert!(store.user_by_name("alice").unwrap().is_none());
    assert!(store.session(&hash(1)).unwrap().is_none());
    assert!(store.check().unwrap().problems.is_empty());
    add_user(&store, "alice");
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

fn identity(subject: &str) -> IdentityRecord {
    IdentityRecord {
        provider: "firebase".into(),
        issuer: "https://securetoken.google.com/p".into(),
        subject: subject.into(),
        email: None,
        linked_at_ms: 1,
    }
}

#[test]
fn identities_link_to_one_user_and_go_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ann = add_user(&store, "ann");
    let bob = add_user(&store, "bob");
    let id = identity("uid-1");
    store.link_identity(ann.user_id(), &id).unwrap();
    store.link_identity(ann.user_id(), &id).unwrap();
    assert!(matches!(
        store.link_identity(bob.user_id(), &id),
        Err(StoreError::IdentityTaken)
    ));
    assert_eq!(
        store.identity_owner(&id.issuer, &id.subject).unwrap(),
        Some(ann.user_id())
    );
    assert_eq!(
        store.identities_of(ann.user_id()).unwrap(),
        vec![id.clone()]
    );
    assert!(store.check().unwrap().problems.is_empty());
    store.remove_user(ann.user_id()).unwrap();
    assert_eq!(store.identity_owner(&id.issuer, &id.subject).unwrap(), None);
    assert!(store.check().unwrap().problems.is_empty());
    store.link_identity(bob.user_id(), &id).unwrap();
    assert!(store.check().unwrap().problems.is_empty());
}

#[test]
fn a_passwordless_users_last_identity_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let user = store
        .create_user_linked(
            NewUser {
                username: &Username::parse("carol").unwrap(),
                email: &Email::parse("carol@example.com").unwrap(),
                role: Role::User,
                password_hash: String::new(),
                now_ms: 1,
            },
            Some(&identity("uid-c")),
        )
        .unwrap();
    assert!(!user.has_password());
    let only = identity("uid-c").public_id();
    assert!(matches!(
        store.unlink_identity(user.user_id(), &only),
        Err(StoreError::LastIdentity)
    ));
    store
        .link_identity(user.user_id(), &identity("uid-c2"))
        .unwrap();
    assert!(store
        .unlink_identity(user.user_id(), &only)
        .unwrap()
        .is_some());
    assert!(store
        .unlink_identity(user.user_id(), &only)
        .unwrap()
        .is_none());
    assert!(store.check().unwrap().problems.is_empty());
    // A second user cannot be created with an identity already linked.
    let taken = store.create_user_linked(
        NewUser {
            username: &Username::parse("dave").unwrap(),
            email: &Email::parse("dave@example.com").unwrap(),
            role: Role::User,
            password_hash: String::new(),
            now_ms: 1,
        },
        Some(&identity("uid-c2")),
    );
    assert!(matches!(taken, Err(StoreError::IdentityTaken)));
}
