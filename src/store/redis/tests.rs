//! What only the Redis backend promises: Redis can reclaim what sessions
//! leave behind, whatever happens to the pruner.

use super::*;
use crate::domain::{Email, Role, TokenHash, Username};
use crate::store::test_support::TestStore;
use crate::store::{now_ms, Backend};

#[tokio::test]
async fn session_keys_and_the_per_user_index_expire_after_the_last_deadline() {
    let Some(test) = TestStore::redis().await else {
        return;
    };
    let Backend::Redis(redis) = &test.store.backend else {
        panic!("a Redis store");
    };
    let user = test
        .store
        .create_user(NewUser {
            username: &Username::parse("alice").unwrap(),
            email: &Email::parse("alice@example.com").unwrap(),
            role: Role::User,
            password_hash: "x".into(),
            now_ms: 1,
        })
        .await
        .unwrap();
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
        };
        let hash = TokenHash::from_bytes([n; 32]);
        test.store.create_session(&hash, &session).await.unwrap();
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
