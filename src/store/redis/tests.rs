//! What only the Redis backend promises: Redis can reclaim what sessions
//! leave behind, whatever happens to the pruner.

use super::*;
use crate::domain::TokenHash;
use crate::store::test_support::{add_user, TestStore};
use crate::store::{now_ms, Backend};

#[tokio::test]
async fn session_keys_and_the_per_user_index_expire_after_the_last_deadline() {
    let Some(test) = TestStore::redis().await else {
        return;
    };
    let Backend::Redis(redis) = &test.store.backend else {
        panic!("a Redis store");
    };
    let user = add_user(&test.store, "alice").await;
    let now = now_ms();
    for (n, hours) in [(1u8, 1u64), (2, 5), (3, 2)] {
        let deadline = now + hours * 3_600_000;
        let session = SessionRecord {
            user_id: user.id,
            created_at_ms: now,
            last_seen_at_ms: now,
            absolute_expires_at_ms: deadline,
            idle_expires_at_ms: deadline,
            user_agent: String::new(),
            ip: "127.0.0.1".into(),
            remember: true,
            amr: vec![crate::domain::Amr::Pwd],
        };
        let hash = TokenHash::from_bytes([n; 32]);
        test.store
            .create_session(&hash, &session, &[])
            .await
            .unwrap();
        let ttl: i64 = redis
            .run(
                redis::cmd("PTTL").arg(
                    redis
                        .shared
                        .keys
                        .session(user.id, &crate::domain::hex(&[n; 32])),
                ),
            )
            .await
            .unwrap();
        let wanted = (deadline + KEY_GRACE_MS - now) as i64;
        assert!(
            (wanted - 60_000..=wanted).contains(&ttl),
            "session {n}: {ttl} ms"
        );
    }
    // The index outlives the latest session (5 h), not the last made (2 h).
    let ttl: i64 = redis
        .run(redis::cmd("PTTL").arg(redis.shared.keys.user_sessions(user.id)))
        .await
        .unwrap();
    let wanted = (5 * 3_600_000 + KEY_GRACE_MS) as i64;
    assert!((wanted - 60_000..=wanted).contains(&ttl), "index: {ttl} ms");
    test.close().await;
}

#[tokio::test]
async fn data_in_the_layout_before_cluster_support_is_refused_in_one_line() {
    let Some(url) = crate::store::test_support::redis_url() else {
        return;
    };
    let prefix = format!("old-layout-{}:", std::process::id());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Layout 1 kept its schema version here, without the {all} tag.
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}schema_version"))
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let config = crate::config::StorageConfig {
        backend: crate::config::Backend::Redis,
        redis_url: url,
        redis_key_prefix: prefix.clone(),
        ..crate::config::StorageConfig::default()
    };
    let Err(e) = RedisStore::open(&config, false).await else {
        panic!("opened data in the earlier layout");
    };
    let e = e.to_string();
    assert!(e.contains("key layout") && e.contains(&prefix), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[tokio::test]
async fn an_index_entry_leading_to_no_one_is_taken_over_by_the_next_registration() {
    for test in [TestStore::redis().await, TestStore::redis_cluster().await]
        .into_iter()
        .flatten()
    {
        let Backend::Redis(redis) = &test.store.backend else {
            panic!("a Redis store");
        };
        // What a crash could leave: a name pointing at a user who is not there.
        let entry = redis.shared.keys.name("ghost");
        let _: () = redis
            .run(redis::cmd("SET").arg(&entry).arg(999))
            .await
            .unwrap();
        assert!(test.store.user_by_name("ghost").await.unwrap().is_none());
        let user = add_user(&test.store, "ghost").await;
        let found = test.store.user_by_name("GHOST").await.unwrap().unwrap();
        assert_eq!(found.id, user.id);
        assert!(test.store.check().await.unwrap().problems.is_empty());
        test.close().await;
    }
}
