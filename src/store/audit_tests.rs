//! The security log's promises on every backend: an entry is written with
//! its change or not at all, a log pages newest first and only its own
//! user's, and entries past `keep` or the cap go.

use super::test_support::{add_user, on_every_backend};
use super::*;
use crate::domain::TokenHash;

fn entry(kind: AuditKind, user: &UserRecord, at: u64) -> AuditRecord {
    AuditRecord::new(kind, user.user_id(), Actor::User(user.id), at)
}

fn session(user: &UserRecord, deadline: u64) -> SessionRecord {
    SessionRecord {
        user_id: user.id,
        created_at_ms: 0,
        last_seen_at_ms: 0,
        absolute_expires_at_ms: deadline,
        idle_expires_at_ms: deadline,
        user_agent: String::new(),
        ip: "127.0.0.1".into(),
        remember: true,
        amr: vec![crate::domain::Amr::Pwd],
    }
}

async fn kinds(store: &Store, user: &UserRecord) -> Vec<AuditKind> {
    let query = AuditQuery {
        user: Some(user.user_id()),
        limit: 100,
        ..AuditQuery::default()
    };
    let entries = store.activity(&query).await.unwrap();
    entries.into_iter().map(|(_, e)| e.kind).collect()
}

on_every_backend! {
    async fn an_entry_is_written_with_its_change_and_not_without_it(store: &Store) {
        let alice = add_user(store, "alice").await;
        let now = now_ms();
        let far = now + 3_600_000;
        let h = TokenHash::from_bytes([1; 32]);
        store
            .create_session(&h, &session(&alice, far), &[entry(AuditKind::Login, &alice, now)])
            .await
            .unwrap();
        let logout = [entry(AuditKind::Logout, &alice, now)];
        assert!(store.end_session(&h, &logout).await.unwrap().is_some());
        // Ending it again ends nothing and logs nothing.
        assert!(store.end_session(&h, &logout).await.unwrap().is_none());
        // Nothing to revoke, the same role, a factor change that writes
        // nothing: no entry.
        let revoked = [entry(AuditKind::SessionsRevoked, &alice, now)];
        assert!(store.end_sessions_of(alice.user_id(), None, &revoked).await.unwrap().is_empty());
        let role = [entry(AuditKind::RoleChanged, &alice, now)];
        store.set_role(alice.user_id(), Role::User, &role).await.unwrap();
        let added = [entry(AuditKind::MfaAdded, &alice, now)];
        let none = store.change_factors(alice.user_id(), &added, |_| None::<()>).await.unwrap();
        assert!(none.is_none());
        assert_eq!(kinds(store, &alice).await, [AuditKind::Logout, AuditKind::Login]);
        // A user made with an entry has it in their own log, acted by them.
        let made = AuditRecord::new(AuditKind::UserCreated, UserId::from_u64(0), Actor::User(0), now);
        let bob = store
            .create_user(
                NewUser {
                    username: &crate::domain::Username::parse("bob").unwrap(),
                    email: &crate::domain::Email::parse("bob@example.com").unwrap(),
                    role: Role::User,
                    password_hash: "x".into(),
                    now_ms: now,
                },
                &[made],
            )
            .await
            .unwrap();
        let query = AuditQuery { user: Some(bob.user_id()), limit: 10, ..AuditQuery::default() };
        let got = store.activity(&query).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.user_id, bob.id);
        assert_eq!(got[0].1.actor, Actor::User(bob.id));
        // A removed user's log stays, with the removal in it.
        let removal = [AuditRecord::new(AuditKind::UserRemoved, bob.user_id(), Actor::Admin(None), now)];
        store.remove_user(bob.user_id(), &removal).await.unwrap();
        assert_eq!(kinds(store, &bob).await, [AuditKind::UserRemoved, AuditKind::UserCreated]);
        assert!(store.check().await.unwrap().problems.is_empty());
    }

    async fn a_log_pages_newest_first_and_holds_only_its_users_entries(store: &Store) {
        let alice = add_user(store, "alice").await;
        let bob = add_user(store, "bob").await;
        let mut all = Vec::new();
        for n in 0..7u64 {
            let who = if n % 2 == 0 { &alice } else { &bob };
            let kind = if n == 3 { AuditKind::LoginFailed } else { AuditKind::Login };
            all.push(entry(kind, who, 1_000 + n));
        }
        store.record(&all).await.unwrap();
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let query = AuditQuery { user: Some(alice.user_id()), before, limit: 2, ..AuditQuery::default() };
            let page = store.activity(&query).await.unwrap();
            if page.is_empty() {
                break;
            }
            before = page.last().map(|(id, _)| *id);
            seen.extend(page.into_iter().map(|(_, e)| (e.user_id, e.time_ms)));
        }
        let id = alice.id;
        assert_eq!(seen, [(id, 1006), (id, 1004), (id, 1002), (id, 1000)]);
        // Everyone's, newest first, and by kind.
        let query = AuditQuery { limit: 3, ..AuditQuery::default() };
        let times: Vec<u64> = store.activity(&query).await.unwrap().iter().map(|(_, e)| e.time_ms).collect();
        assert_eq!(times, [1006, 1005, 1004]);
        let query = AuditQuery { kind: Some(AuditKind::LoginFailed), limit: 10, ..AuditQuery::default() };
        let failed = store.activity(&query).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].1.user_id, failed[0].1.time_ms), (bob.id, 1003));
        // Everyone's, paged two at a time, misses and repeats nothing.
        let mut count = 0;
        let mut before = None;
        loop {
            let query = AuditQuery { before, limit: 2, ..AuditQuery::default() };
            let page = store.activity(&query).await.unwrap();
            if page.is_empty() {
                break;
            }
            before = page.last().map(|(id, _)| *id);
            count += page.len();
        }
        assert_eq!(count, 7);
    }

    async fn entries_past_keep_are_pruned_and_then_those_that_age_later(store: &Store) {
        let alice = add_user(store, "alice").await;
        let now = now_ms();
        let day = 86_400_000;
        let old: Vec<_> = (0..3).map(|n| entry(AuditKind::Login, &alice, now - 100 * day + n)).collect();
        store.record(&old).await.unwrap();
        let fresh: Vec<_> = (0..5).map(|n| entry(AuditKind::Logout, &alice, now - 10 + n)).collect();
        store.record(&fresh).await.unwrap();
        // A cap nothing reaches: only age prunes.
        let keep = AuditRetention { keep_ms: 90 * day, per_user: 1000 };
        assert_eq!(store.prune_activity(now, keep).await.unwrap(), 3, "the three too old");
        assert_eq!(kinds(store, &alice).await, [AuditKind::Logout; 5]);
        assert_eq!(store.prune_activity(now, keep).await.unwrap(), 0);
        // 91 days on, the rest is due too (on Redis: the log was rescored
        // to its oldest entry left, not past it).
        let later = now + 91 * day;
        assert_eq!(store.prune_activity(later, keep).await.unwrap(), 5);
        assert!(kinds(store, &alice).await.is_empty());
    }

    async fn a_log_past_the_cap_keeps_its_newest(store: &Store) {
        let alice = add_user(store, "alice").await;
        let now = now_ms();
        let fresh: Vec<_> = (0..5).map(|n| entry(AuditKind::Logout, &alice, now - 10 + n)).collect();
        store.record(&fresh).await.unwrap();
        let keep = AuditRetention { keep_ms: 86_400_000, per_user: 4 };
        assert_eq!(store.prune_activity(now, keep).await.unwrap(), 1, "one past the cap");
        let query = AuditQuery { user: Some(alice.user_id()), limit: 10, ..AuditQuery::default() };
        let times: Vec<u64> = store.activity(&query).await.unwrap().iter().map(|(_, e)| e.time_ms).collect();
        assert_eq!(times, [now - 6, now - 7, now - 8, now - 9]);
        // Nothing grew since: the next pass does nothing.
        assert_eq!(store.prune_activity(now, keep).await.unwrap(), 0);
    }

    async fn the_pruner_logs_each_session_it_ends(store: &Store) {
        let alice = add_user(store, "alice").await;
        let h = TokenHash::from_bytes([2; 32]);
        store.create_session(&h, &session(&alice, 5), &[]).await.unwrap();
        assert_eq!(store.prune_ended(now_ms()).await.unwrap(), 1);
        let query = AuditQuery { user: Some(alice.user_id()), limit: 10, ..AuditQuery::default() };
        let got = store.activity(&query).await.unwrap();
        assert_eq!(got.len(), 1);
        let e = &got[0].1;
        assert_eq!((e.kind, e.actor), (AuditKind::SessionExpired, Actor::System));
        assert_eq!(e.session_id.as_deref(), Some(h.public_id().as_str()));
    }
}
