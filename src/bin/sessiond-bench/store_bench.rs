//! What the pruner, start-up and the disk cost at scale, measured on the
//! real store in a temp dir.

use std::path::Path;
use std::time::{Duration, Instant};

use sessiond::auth::SessionToken;
use sessiond::config::StorageConfig;
use sessiond::domain::{Email, Role, Username};
use sessiond::store::{now_ms, NewUser, SessionRecord, Store};

/// Opens the store in `data_dir`, retrying while a previous handle in this
/// process lets go of its files.
pub async fn open(data_dir: &Path) -> Store {
    let config = StorageConfig {
        data_dir: data_dir.to_owned(),
        ..StorageConfig::default()
    };
    for _ in 0..1000 {
        if let Ok(store) = Store::open(&config).await {
            return store;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("cannot open the store in {}", data_dir.display());
}

/// Waits until no handle in this process holds the database, then opens
/// and closes it, so it is sealed as a stopped server leaves it.
pub async fn wait_until_free(data_dir: &Path) {
    open(data_dir).await.close().await.unwrap();
    assert!(
        data_dir.join("db.sealed").exists(),
        "the store in {} did not close cleanly",
        data_dir.display()
    );
}

const HOUR: u64 = 3_600_000;

/// Stores `total` sessions of one user, the first `ended` of them already
/// past their deadline, through the store's own transactions. Their
/// deadlines spread evenly over the hour before the returned `now`.
pub async fn populate(data_dir: &Path, total: u64, ended: u64) -> (Store, u64) {
    let store = open(data_dir).await;
    let user = store
        .create_user(
            NewUser {
                username: &Username::parse("bench").unwrap(),
                email: &Email::parse("bench@example.com").unwrap(),
                role: Role::User,
                password_hash: "unused".into(),
                now_ms: now_ms(),
            },
            &[],
        )
        .await
        .unwrap();
    let now = now_ms();
    for i in 0..total {
        // Ended sessions were opened 24-25 hours ago, stayed active and
        // reached `absolute_timeout` in the last hour; the rest were opened
        // now. Keys come from tokens made as the server makes them.
        let (created, last_seen) = if i < ended {
            (now - 25 * HOUR + i * HOUR / ended, now - HOUR)
        } else {
            (now, now)
        };
        let record = SessionRecord {
            user_id: user.id,
            created_at_ms: created,
            last_seen_at_ms: last_seen,
            absolute_expires_at_ms: created + 24 * HOUR,
            idle_expires_at_ms: last_seen + 2 * HOUR,
            user_agent: "sessiond-bench/1.0 (a typical user agent string of middling length)"
                .into(),
            ip: "127.0.0.1".into(),
            remember: true,
            amr: vec![sessiond::domain::Amr::Pwd],
        };
        let hash = SessionToken::generate(created).hash();
        store.create_session(&hash, &record, &[]).await.unwrap();
    }
    (store, now)
}

/// Microseconds to prune `ended` ended sessions among `total` stored,
/// `rounds` times (as the load figures keep latencies): the store holds `rounds` bands of `ended`, by deadline, and each
/// round prunes one band with the clock at its end. The store is flushed
/// before each: a pruner meets a store at rest, not one still writing out
/// a bulk load behind it.
pub async fn prune_times(dir: &Path, total: u64, ended: u64, rounds: u64) -> Vec<u32> {
    let (store, now) = populate(dir, total, ended * rounds).await;
    let mut times = Vec::new();
    for round in 1..=rounds {
        // This band's deadlines are at or before the cut-off, the next
        // band's after it.
        let cutoff = now - HOUR + round * HOUR / rounds - 1;
        store.commit_durably().await.unwrap();
        let started = Instant::now();
        let pruned = store.prune_ended(cutoff).await.unwrap();
        times.push(started.elapsed().as_micros() as u32);
        assert_eq!(pruned, ended, "round {round}");
    }
    // Closed, not dropped: the flush task holds sled open until then.
    store.close().await.unwrap();
    times
}

/// Bytes under `path`.
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Microseconds per login's store write (the session, then the durable
/// commit a login waits for), `n` logins of one user, with and without the
/// `login` entry the security log writes in the same transaction or
/// script; alternated in `rounds` halves so drift weighs on both. Answers
/// the medians (without, with).
pub async fn login_write_costs(store: &Store, n: u64, rounds: usize) -> (f64, f64) {
    use sessiond::auth::{By, ClientInfo};
    use sessiond::store::AuditKind;
    let name = format!("w{}", now_ms() % 1_000_000_000);
    let user = store
        .create_user(
            NewUser {
                username: &Username::parse(&name).unwrap(),
                email: &Email::parse(&format!("{name}@example.com")).unwrap(),
                role: Role::User,
                password_hash: "unused".into(),
                now_ms: now_ms(),
            },
            &[],
        )
        .await
        .unwrap();
    let mut plain = Vec::new();
    let mut logged = Vec::new();
    for round in 0..rounds * 2 {
        let with_entry = round % 2 == 1;
        let started = Instant::now();
        for _ in 0..n {
            let now = now_ms();
            let record = SessionRecord {
                user_id: user.id,
                created_at_ms: now,
                last_seen_at_ms: now,
                absolute_expires_at_ms: now + 24 * HOUR,
                idle_expires_at_ms: now + 2 * HOUR,
                user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".into(),
                ip: "127.0.0.1".into(),
                remember: true,
                amr: vec![sessiond::domain::Amr::Pwd],
            };
            let hash = SessionToken::generate(now).hash();
            // The entry a real login writes, made as it makes it.
            let entries = if with_entry {
                let client = ClientInfo {
                    ip: [127, 0, 0, 1].into(),
                    user_agent: Some(record.user_agent.clone()),
                };
                let by = By::client(user.user_id(), &client);
                vec![by
                    .entry(AuditKind::Login, user.user_id())
                    .session(hash.public_id())
                    .detail("pwd")]
            } else {
                Vec::new()
            };
            store
                .create_session(&hash, &record, &entries)
                .await
                .unwrap();
            store.commit_durably().await.unwrap();
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        if with_entry {
            logged.push(per);
        } else {
            plain.push(per);
        }
    }
    (median(&mut plain), median(&mut logged))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
