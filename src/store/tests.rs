//! The store's own promises, one set of test bodies run against every
//! backend: sled in a temp dir, and a real redis-server and a real
//! three-node Redis Cluster when redis-server is installed (in CI it must
//! be).

use super::test_support::{add_user, on_every_backend, TestStore};
use super::*;
use crate::domain::{Email, Role, TokenHash, Username};

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
        amr: vec![crate::domain::Amr::Pwd],
    }
}

fn hash(n: u8) -> TokenHash {
    TokenHash::from_bytes([n; 32])
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

on_every_backend! {
    async fn names_and_emails_are_unique_ignoring_case(store: &Store) {
        add_user(store, "alice").await;
        let again = store.create_user(NewUser {
            username: &Username::parse("ALICE").unwrap(),
            email: &Email::parse("other@example.com").unwrap(),
            role: Role::User,
            password_hash: "x".into(),
            now_ms: 1,
        }, &[]).await;
        assert!(matches!(again, Err(StoreError::UsernameTaken)));
        let again = store.create_user(NewUser {
            username: &Username::parse("bob").unwrap(),
            email: &Email::parse("Alice@Example.com").unwrap(),
            role: Role::User,
            password_hash: "x".into(),
            now_ms: 1,
        }, &[]).await;
        assert!(matches!(again, Err(StoreError::EmailTaken)));
        assert!(store.user_by_name("alice").await.unwrap().is_some());
        assert!(store.user_by_email("alice@example.com").await.unwrap().is_some());
    }

    async fn a_verified_new_email_moves_its_index_and_frees_the_old_one(store: &Store) {
        let alice = add_user(store, "alice").await.user_id();
        add_user(store, "bob").await;
        let taken = store.verify_email(alice, "alice@example.com", "BOB@example.com", &[]).await;
        assert!(matches!(taken, Err(StoreError::EmailTaken)), "{taken:?}");
        // A change made for an address the user no longer has does nothing.
        let stale = store.verify_email(alice, "old@example.com", "new@example.com", &[]).await;
        assert!(stale.unwrap().is_none());
        assert!(store.user_by_email("new@example.com").await.unwrap().is_none());
        let moved = store
            .verify_email(alice, "alice@example.com", "Alice@New.example", &[])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved.email, "Alice@New.example");
        assert!(moved.email_verified);
        let found = store.user_by_email("alice@new.example").await.unwrap().unwrap();
        assert_eq!(found.id, moved.id);
        assert!(store.user_by_email("alice@example.com").await.unwrap().is_none());
        assert!(store.user_by_email("bob@example.com").await.unwrap().is_some());
        // Only the spelling changes: the same index entry stays.
        store
            .verify_email(alice, "alice@new.example", "alice@new.example", &[])
            .await
            .unwrap()
            .unwrap();
        assert!(store.user_by_email("ALICE@new.example").await.unwrap().is_some());
        let freed = store.create_user(NewUser {
            username: &Username::parse("carol").unwrap(),
            email: &Email::parse("alice@example.com").unwrap(),
            role: Role::User,
            password_hash: "x".into(),
            now_ms: 1,
        }, &[]).await;
        assert!(freed.is_ok(), "{freed:?}");
        assert!(store.check().await.unwrap().problems.is_empty());
    }

    async fn user_ids_only_grow(store: &Store) {
        let a = add_user(store, "aaa").await;
        let b = add_user(store, "bbb").await;
        assert!(b.id > a.id);
    }

    async fn two_changes_to_one_user_at_once_both_hold(store: &Store) {
        // An admin besides alice, so alice may be demoted.
        store
            .create_user(NewUser {
                username: &Username::parse("root").unwrap(),
                email: &Email::parse("root@example.com").unwrap(),
                role: Role::Admin,
                password_hash: "x".into(),
                now_ms: 1,
            }, &[])
            .await
            .unwrap();
        let alice = add_user(store, "alice").await.user_id();
        for round in 0..20 {
            let role = if round % 2 == 0 { Role::Admin } else { Role::User };
            let hash = format!("hash-{round}");
            let (r, p) = tokio::join!(
                store.set_role(alice, role, &[]),
                store.set_password_hash(alice, &hash, &[])
            );
            r.unwrap();
            p.unwrap();
            let user = store.user(alice).await.unwrap().unwrap();
            assert_eq!((user.role, user.password_hash.as_str()), (role, hash.as_str()), "round {round}");
        }
        assert!(store.check().await.unwrap().problems.is_empty());
    }


    async fn a_touch_after_the_end_writes_nothing(store: &Store) {
        let user = add_user(store, "alice").await;
        store
            .create_session(&hash(1), &session(&user, 10_000), &[])
            .await.unwrap();
        assert!(store.end_session(&hash(1), &[]).await.unwrap().is_some());
        assert!(store.touch_session(&hash(1), 5, 100).await.unwrap().is_none());
        assert!(store.session(&hash(1)).await.unwrap().is_none());
        assert_eq!(
            store.next_deadline_ms().await.unwrap(),
            None,
            "no expiry entry left"
        );
        assert_eq!(store.session_count().await.unwrap(), 0);
    }

    async fn touch_moves_the_expiry_entry(store: &Store) {
        let user = add_user(store, "alice").await;
        let mut s = session(&user, 10_000);
        s.idle_expires_at_ms = 100;
        store.create_session(&hash(1), &s, &[]).await.unwrap();
        assert_eq!(store.next_deadline_ms().await.unwrap(), Some(100));
        let touched = store.touch_session(&hash(1), 50, 500).await.unwrap().unwrap();
        assert_eq!(touched.idle_expires_at_ms, 550);
        assert_eq!(store.next_deadline_ms().await.unwrap(), Some(550));
        assert_eq!(
            store.prune_ended(200).await.unwrap(),
            0,
            "the old deadline is gone"
        );
    }

    async fn a_pass_spanning_many_batches_removes_every_ended_session_and_no_other(store: &Store) {
        let user = add_user(store, "alice").await;
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
            store.create_session(&key(n), &record, &[]).await.unwrap();
        }
        store
            .touch_session(&key(touched), 1, 5000)
            .await.unwrap()
            .unwrap();
        assert_eq!(store.prune_ended(1699).await.unwrap(), 699);
        for n in 0..1000u16 {
            let ended = 1000 + u64::from(n * 7 % 1000) <= 1699 && n != touched;
            assert_eq!(store.session(&key(n)).await.unwrap().is_none(), ended, "{n}");
        }
        assert_eq!(store.session_count().await.unwrap(), 301);
        assert_eq!(store.next_deadline_ms().await.unwrap(), Some(1700));
        assert!(store.check().await.unwrap().problems.is_empty());
    }

    async fn prune_removes_exactly_the_ended_sessions(store: &Store) {
        let user = add_user(store, "alice").await;
        for n in 0..10u8 {
            store
                .create_session(&hash(n), &session(&user, 1000 + u64::from(n) * 100), &[])
                .await.unwrap();
        }
        assert_eq!(store.prune_ended(1450).await.unwrap(), 5);
        assert_eq!(store.session_count().await.unwrap(), 5);
        assert_eq!(store.pruned_total(), 5);
        for n in 0..10u8 {
            assert_eq!(
                store.session(&hash(n)).await.unwrap().is_some(),
                n >= 5,
                "session {n}"
            );
        }
        assert_eq!(store.next_deadline_ms().await.unwrap(), Some(1500));
    }

    async fn a_session_for_a_missing_user_is_refused(store: &Store) {
        let mut ghost = add_user(store, "alice").await;
        ghost.id += 100;
        let refused = store.create_session(&hash(1), &session(&ghost, 10), &[]).await;
        assert!(matches!(refused, Err(StoreError::NoSuchUser)));
        assert_eq!(store.next_deadline_ms().await.unwrap(), None);
    }


    async fn every_removal_path_reports_its_sessions(store: &Store) {
        let mut events = store.subscribe();
        let alice = add_user(store, "alice").await;
        let bob = add_user(store, "bob").await;
        for (n, user, deadline) in [
            (1, &alice, 10_000),
            (2, &alice, 10_000),
            (3, &bob, 10_000),
            (4, &bob, 50),
        ] {
            store
                .create_session(&hash(n), &session(user, deadline), &[])
                .await.unwrap();
        }
        store.end_session(&hash(1), &[]).await.unwrap();
        store.prune_ended(100).await.unwrap();
        store.end_sessions_of(alice.user_id(), None, &[]).await.unwrap();
        store.remove_user(bob.user_id(), &[]).await.unwrap();
        let mut seen = Vec::new();
        let wait = std::time::Duration::from_secs(2);
        while seen.len() < 4 {
            match tokio::time::timeout(wait, events.recv()).await {
                Ok(Some(StoreEvent::Ended(h))) => seen.push(h),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        assert_eq!(seen, vec![hash(1), hash(4), hash(2), hash(3)]);
    }

    async fn removing_a_user_frees_the_name_and_takes_the_sessions(store: &Store) {
        let alice = add_user(store, "alice").await;
        store
            .create_session(&hash(1), &session(&alice, 10_000), &[])
            .await.unwrap();
        let removed = store.remove_user(alice.user_id(), &[]).await.unwrap();
        assert_eq!(removed.sessions, vec![hash(1)]);
        assert!(store.user_by_name("alice").await.unwrap().is_none());
        assert!(store.session(&hash(1)).await.unwrap().is_none());
        assert!(store.check().await.unwrap().problems.is_empty());
        add_user(store, "alice").await;
    }



    async fn identities_link_to_one_user_and_go_with_them(store: &Store) {
        let ann = add_user(store, "ann").await;
        let bob = add_user(store, "bob").await;
        let id = identity("uid-1");
        store.link_identity(ann.user_id(), &id, &[]).await.unwrap();
        store.link_identity(ann.user_id(), &id, &[]).await.unwrap();
        assert!(matches!(
            store.link_identity(bob.user_id(), &id, &[]).await,
            Err(StoreError::IdentityTaken)
        ));
        assert_eq!(
            store.identity_owner(&id.issuer, &id.subject).await.unwrap(),
            Some(ann.user_id())
        );
        assert_eq!(
            store.identities_of(ann.user_id()).await.unwrap(),
            vec![id.clone()]
        );
        assert!(store.check().await.unwrap().problems.is_empty());
        store.remove_user(ann.user_id(), &[]).await.unwrap();
        assert_eq!(store.identity_owner(&id.issuer, &id.subject).await.unwrap(), None);
        assert!(store.check().await.unwrap().problems.is_empty());
        store.link_identity(bob.user_id(), &id, &[]).await.unwrap();
        assert!(store.check().await.unwrap().problems.is_empty());
    }

    async fn a_passwordless_users_last_identity_stays(store: &Store) {
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
                &[],
            )
            .await.unwrap();
        assert!(!user.has_password());
        let only = identity("uid-c").public_id();
        assert!(matches!(
            store.unlink_identity(user.user_id(), &only, &[]).await,
            Err(StoreError::LastIdentity)
        ));
        store
            .link_identity(user.user_id(), &identity("uid-c2"), &[])
            .await.unwrap();
        assert!(store
            .unlink_identity(user.user_id(), &only, &[])
            .await.unwrap()
            .is_some());
        assert!(store
            .unlink_identity(user.user_id(), &only, &[])
            .await.unwrap()
            .is_none());
        assert!(store.check().await.unwrap().problems.is_empty());
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
            &[],
        ).await;
        assert!(matches!(taken, Err(StoreError::IdentityTaken)));
    }

    async fn messages_posted_at_once_each_get_an_id_and_keep_their_order(store: &Store) {
        let user = add_user(store, "talker").await.user_id();
        let room = crate::domain::RoomName::parse("busy").unwrap();
        // Ids are taken before the room's append: concurrent posts can
        // reach the room out of id order, and must then take new ids.
        let posts = (0..64).map(|n| {
            let text = format!("message {n}");
            let room = &room;
            async move { store.post_message(room, user, "talker", &text, 1).await }
        });
        let posted = futures_util::future::try_join_all(posts).await.unwrap();
        let history = store.messages(&room, None, 100).await.unwrap();
        assert_eq!(history.len(), 64);
        assert!(history.windows(2).all(|w| w[0].id < w[1].id));
        let mut ids: Vec<u64> = posted.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        let stored: Vec<u64> = history.iter().map(|m| m.id).collect();
        assert_eq!(ids, stored);
    }

    async fn a_totp_step_is_accepted_once_even_by_racing_writers(store: &Store) {
        let user = add_user(store, "otp").await;
        let id = user.user_id();
        // No TOTP yet: nothing to accept.
        assert!(!store.accept_totp_step(id, 5, 1).await.unwrap());
        store
            .change_factors(id, &[], |f| {
                f.totp = Some(TotpFactor {
                    id: "t".into(),
                    sealed_secret: vec![1, 2, 3],
                    created_at_ms: 1,
                    last_used_at_ms: 0,
                    last_step: 10,
                });
                Some(())
            })
            .await
            .unwrap()
            .unwrap();
        assert!(!store.accept_totp_step(id, 10, 2).await.unwrap(), "the enrolment's step");
        let racers = (0..8).map(|_| store.accept_totp_step(id, 11, 3));
        let won = futures_util::future::join_all(racers)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(won, 1);
        assert!(!store.accept_totp_step(id, 11, 4).await.unwrap());
        assert!(store.accept_totp_step(id, 12, 5).await.unwrap());
        let stored = store.user(id).await.unwrap().unwrap();
        assert_eq!(stored.factors.totp.unwrap().last_step, 12);
        // A change declined writes nothing; a user gone is named.
        assert!(store.change_factors(id, &[], |_| None::<()>).await.unwrap().is_none());
        store.remove_user(id, &[]).await.unwrap();
        assert!(matches!(
            store.accept_totp_step(id, 13, 6).await,
            Err(StoreError::NoSuchUser)
        ));
    }

    async fn a_recovery_code_is_used_once(store: &Store) {
        let user = add_user(store, "rec").await;
        let id = user.user_id();
        store
            .change_factors(id, &[], |f| {
                f.recovery = vec![[1; 32], [2; 32]];
                Some(())
            })
            .await
            .unwrap();
        let racers = (0..4).map(|_| store.use_recovery_code(id, &[2; 32]));
        let used: Vec<_> = futures_util::future::join_all(racers)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(used.iter().filter(|u| u.is_some()).count(), 1);
        assert_eq!(used.iter().flatten().next(), Some(&1));
        assert_eq!(store.use_recovery_code(id, &[3; 32]).await.unwrap(), None);
        assert_eq!(store.use_recovery_code(id, &[1; 32]).await.unwrap(), Some(0));
    }

    async fn a_key_counter_only_rises_and_a_synced_key_stays_at_zero(store: &Store) {
        let user = add_user(store, "keys").await;
        let id = user.user_id();
        let key = |fid: &str, cred: u8| KeyFactor {
            id: fid.into(),
            name: "key".into(),
            credential_id: vec![cred],
            credential: vec![cred, 0],
            counter: 0,
            created_at_ms: 1,
            last_used_at_ms: 0,
        };
        store
            .change_factors(id, &[], |f| {
                f.keys = vec![key("hw", 1), key("synced", 2)];
                Some(())
            })
            .await
            .unwrap();
        assert!(store.accept_key_use(id, "hw", 5, b"five", 2).await.unwrap());
        // The same assertion twice, racing: one passes.
        let racers = (0..4).map(|_| store.accept_key_use(id, "hw", 6, b"six", 3));
        let won = futures_util::future::join_all(racers)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(won, 1);
        // A clone that counts from where the copy was taken, or from 0.
        assert!(!store.accept_key_use(id, "hw", 4, b"clone", 4).await.unwrap());
        assert!(!store.accept_key_use(id, "hw", 0, b"clone", 4).await.unwrap());
        // A synced passkey always says 0.
        for at in 5..8 {
            assert!(store.accept_key_use(id, "synced", 0, b"s", at).await.unwrap());
        }
        assert!(!store.accept_key_use(id, "gone", 9, b"x", 9).await.unwrap());
        let stored = store.user(id).await.unwrap().unwrap().factors.keys;
        assert_eq!((stored[0].counter, &stored[0].credential[..]), (6, &b"six"[..]));
        assert_eq!((stored[1].counter, stored[1].last_used_at_ms), (0, 7));
    }

    async fn a_queued_mail_is_claimed_by_one_sender_until_its_claim_lapses(store: &Store) {
        let mail = |to: &str, due: u64| MailRecord {
            to: to.into(),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            queued_at_ms: 1,
            attempts: 0,
            next_attempt_ms: due,
        };
        let now = now_ms();
        let first = store.queue_mail(&mail("a@example.com", now)).await.unwrap();
        store.queue_mail(&mail("later@example.com", now + 60_000)).await.unwrap();
        // Senders racing: one gets the due mail; none gets the later one.
        let racers = (0..4).map(|_| store.claim_mail(now, 30_000));
        let claimed: Vec<_> = futures_util::future::join_all(racers)
            .await
            .into_iter()
            .filter_map(|c| c.unwrap())
            .collect();
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        assert_eq!((claimed[0].0, claimed[0].1.to.as_str()), (first, "a@example.com"));
        // A sender that died mid-send: the mail comes back once the claim
        // lapses; put back for later, it waits; finished, it is gone.
        let (id, mut again) = store.claim_mail(now + 30_001, 30_000).await.unwrap().unwrap();
        assert_eq!(id, first);
        again.attempts = 1;
        again.next_attempt_ms = now + 120_000;
        store.retry_mail(id, &again).await.unwrap();
        assert!(store.claim_mail(now + 61_000, 1).await.unwrap().unwrap().1.to.starts_with("later"));
        let queued = store.queued_mails().await.unwrap();
        assert_eq!(queued.len(), 2);
        assert!(queued.iter().any(|(i, m)| *i == first && m.attempts == 1));
        store.finish_mail(first).await.unwrap();
        // Put back after it was finished: stays finished.
        store.retry_mail(first, &again).await.unwrap();
        assert_eq!(store.queued_mails().await.unwrap().len(), 1);
        assert!(store.claim_mail(now + 200_000, 1).await.unwrap().is_some());
        assert!(store.check().await.unwrap().problems.is_empty());
    }

    async fn a_ticket_is_taken_once_and_not_after_its_deadline(store: &Store) {
        let user = add_user(store, "tix").await;
        let key = TicketKey::User(TicketKind::Pending, user.user_id());
        let live = TicketRecord { deadline_ms: now_ms() + 60_000, body: vec![7] };
        store.put_ticket(&key, &live).await.unwrap();
        assert_eq!(store.ticket(&key).await.unwrap(), Some(live.clone()));
        // Another kind, another id: another ticket.
        let other = TicketKey::Id(TicketKind::Passkey, [9; 32]);
        assert_eq!(store.ticket(&other).await.unwrap(), None);
        let racers = (0..4).map(|_| store.take_ticket(&key));
        let taken = futures_util::future::join_all(racers)
            .await
            .into_iter()
            .filter(|t| t.as_ref().unwrap().is_some())
            .count();
        assert_eq!(taken, 1);
        assert_eq!(store.ticket(&key).await.unwrap(), None);
        // A newer one replaces the older; an ended one is refused and
        // pruned.
        store.put_ticket(&key, &live).await.unwrap();
        let newer = TicketRecord { deadline_ms: now_ms() + 90_000, body: vec![8] };
        store.put_ticket(&key, &newer).await.unwrap();
        assert_eq!(store.ticket(&key).await.unwrap().unwrap().body, vec![8]);
        let ended = TicketRecord { deadline_ms: now_ms() - 1, body: vec![9] };
        store.put_ticket(&other, &ended).await.unwrap();
        assert_eq!(store.ticket(&other).await.unwrap(), None);
        assert_eq!(store.take_ticket(&other).await.unwrap(), None);
        store.prune_ended(now_ms()).await.unwrap();
        assert_eq!(store.ticket(&key).await.unwrap().unwrap().body, vec![8]);
    }

    async fn a_ticket_changes_by_compare_and_swap_once_per_reading(store: &Store) {
        let key = TicketKey::Id(TicketKind::OidcGrant, [3; 32]);
        let first = TicketRecord { deadline_ms: now_ms() + 60_000, body: vec![1] };
        assert!(store.swap_ticket(&key, None, Some(&first)).await.unwrap());
        // Made already: a second "there is none" loses.
        assert!(!store.swap_ticket(&key, None, Some(&first)).await.unwrap());
        // Four writers read `first`; one of them replaces it.
        let racers = (2..6u8).map(|n| {
            let next = TicketRecord { deadline_ms: now_ms() + 60_000, body: vec![n] };
            let first = first.clone();
            async move { store.swap_ticket(&key, Some(&first), Some(&next)).await.unwrap() }
        });
        let won = futures_util::future::join_all(racers).await;
        assert_eq!(won.iter().filter(|w| **w).count(), 1);
        let now = store.ticket(&key).await.unwrap().unwrap();
        assert_ne!(now.body, vec![1]);
        // Removal is a swap to nothing, and only from what is there.
        assert!(!store.swap_ticket(&key, Some(&first), None).await.unwrap());
        assert!(store.swap_ticket(&key, Some(&now), None).await.unwrap());
        assert_eq!(store.ticket(&key).await.unwrap(), None);
        // An ended ticket counts as none.
        let ended = TicketRecord { deadline_ms: now_ms() - 1, body: vec![9] };
        store.put_ticket(&key, &ended).await.unwrap();
        assert!(store.swap_ticket(&key, None, Some(&first)).await.unwrap());
        assert!(store.check().await.unwrap().problems.is_empty());
    }

    async fn check_names_factors_that_cannot_be_right(store: &Store) {
        let user = add_user(store, "chk").await;
        let id = user.user_id();
        assert!(store.check().await.unwrap().problems.is_empty());
        store
            .change_factors(id, &[], |f| {
                f.recovery = vec![[1; 32]];
                Some(())
            })
            .await
            .unwrap();
        let report = store.check().await.unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains("recovery codes without a second factor"));
        store
            .change_factors(id, &[], |f| {
                f.recovery.clear();
                Some(())
            })
            .await
            .unwrap();
        assert!(store.check().await.unwrap().problems.is_empty());
        let key = KeyFactor {
            id: "k".into(),
            name: "key".into(),
            credential_id: vec![1],
            credential: vec![1],
            counter: 0,
            created_at_ms: 1,
            last_used_at_ms: 0,
        };
        store
            .change_factors(id, &[], |f| {
                f.keys = vec![key.clone(), KeyFactor { id: "j".into(), ..key.clone() }];
                Some(())
            })
            .await
            .unwrap();
        let report = store.check().await.unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains("a key repeats"));
    }
}

/// A backup of either backend restores into an empty store of either
/// backend with every record, id and deadline, and passes `check`; a store
/// that holds data is refused.
#[tokio::test]
async fn a_backup_restores_into_an_empty_store_of_either_backend() {
    for source in TestStore::every_backend().await {
        let from = &source.store;
        let alice = add_user(from, "alice").await;
        let link = identity("subject-1");
        from.link_identity(alice.user_id(), &link, &[])
            .await
            .unwrap();
        let bob = add_user(from, "bob").await;
        from.create_session(&hash(1), &session(&alice, 9_000_000_000_000), &[])
            .await
            .unwrap();
        from.create_session(&hash(2), &session(&bob, 1), &[])
            .await
            .unwrap();
        let room = crate::domain::RoomName::parse("general").unwrap();
        from.post_message(&room, alice.user_id(), "alice", "hello", 5)
            .await
            .unwrap();
        let signed_in =
            AuditRecord::new(AuditKind::Login, alice.user_id(), Actor::User(alice.id), 7);
        from.record(std::slice::from_ref(&signed_in)).await.unwrap();
        // The OIDC provider's lasting records go along; a ceremony's do not.
        let far = TicketRecord {
            deadline_ms: now_ms() + 3_600_000,
            body: vec![4, 2],
        };
        let lasting = [
            TicketKey::Id(TicketKind::OidcKeys, [0; 32]),
            TicketKey::Id(TicketKind::OidcGrant, [7; 32]),
            TicketKey::Id(TicketKind::OidcSession, [8; 32]),
            TicketKey::User(TicketKind::OidcApps, alice.user_id()),
        ];
        for key in &lasting {
            from.put_ticket(key, &far).await.unwrap();
        }
        let pending = TicketKey::User(TicketKind::Pending, alice.user_id());
        from.put_ticket(&pending, &far).await.unwrap();
        let file = from.snapshot(Some("dev".into())).await.unwrap().to_file();
        for target in TestStore::every_backend().await {
            let into = &target.store;
            let report = into
                .restore(Snapshot::from_file(&file).unwrap())
                .await
                .unwrap();
            assert_eq!((report.users, report.sessions, report.messages), (2, 2, 1));
            let back = into
                .user_by_email("ALICE@example.com")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(back, alice);
            assert_eq!(into.identities_of(alice.user_id()).await.unwrap().len(), 1);
            let kept = into.session(&hash(1)).await.unwrap().unwrap();
            assert_eq!(kept.deadline_ms(), 9_000_000_000_000);
            let said = into.messages(&room, None, 10).await.unwrap();
            assert_eq!(said.len(), 1);
            assert_eq!(said[0].text, "hello");
            let log = AuditQuery {
                user: Some(alice.user_id()),
                limit: 10,
                ..AuditQuery::default()
            };
            let kept: Vec<_> = into.activity(&log).await.unwrap();
            // Under its own id, as the backup read it.
            assert_eq!(kept, Snapshot::from_file(&file).unwrap().activity);
            assert_eq!(kept[0].1, signed_in);
            assert_eq!(report.tickets, 4);
            for key in &lasting {
                assert_eq!(
                    into.ticket(key).await.unwrap().as_ref(),
                    Some(&far),
                    "{key:?}"
                );
            }
            assert_eq!(into.ticket(&pending).await.unwrap(), None);
            assert!(into.check().await.unwrap().problems.is_empty());
            // The next user gets a new id, not one of theirs.
            assert!(add_user(into, "carol").await.id > bob.id);
            let again = into.restore(Snapshot::from_file(&file).unwrap()).await;
            assert!(matches!(again, Err(StoreError::NotEmpty)), "{again:?}");
            // Two users with one address (a change ran through the read):
            // refused before a record is written.
            let mut torn = Snapshot::from_file(&file).unwrap();
            torn.users[1].0.email = torn.users[0].0.email.to_uppercase();
            let empty = TestStore::every_backend().await.remove(0);
            let refused = empty.store.restore(torn).await;
            assert!(matches!(refused, Err(StoreError::Backup(_))), "{refused:?}");
            assert!(empty.store.is_empty().await.unwrap());
            empty.close().await;
            target.close().await;
        }
        // A counter read before bob registered, and bob removed while the
        // backup ran (his session read, he not): the restore is still whole.
        for target in TestStore::every_backend().await {
            let into = &target.store;
            let mut torn = Snapshot::from_file(&file).unwrap();
            torn.next_user_id = 1;
            torn.users.retain(|(u, _)| u.id != bob.id);
            // Bob's log was read: his sign-in is in it.
            let his = AuditRecord::new(AuditKind::Login, bob.user_id(), Actor::User(bob.id), 8);
            let id = AuditId {
                ms: 8,
                seq: 1,
                user: bob.id,
            };
            torn.activity.push((id, his));
            let report = into.restore(torn).await.unwrap();
            assert_eq!((report.users, report.sessions, report.orphans), (1, 1, 1));
            assert!(into.check().await.unwrap().problems.is_empty());
            // Nobody new gets bob's id, and with it his log.
            assert!(add_user(into, "dave").await.id > bob.id);
            target.close().await;
        }
        source.close().await;
    }
}
