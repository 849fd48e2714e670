//! Random histories of everything that touches users, sessions and second
//! factors, then
//! `Store::check`: every index agrees exactly with the records, live and
//! after reopening the database. Each history runs on sled and, when
//! redis-server is installed (in CI it must be), on Redis too.

use std::time::Duration;

use proptest::prelude::*;
use sessiond::auth::{Auth, ClientInfo, CurrentSession, LoginName, SessionToken};
use sessiond::config::{Backend, Config, Secret};
use sessiond::domain::{Email, Password, Role, Username};
use sessiond::local_redis::{LocalCluster, LocalRedis};
use sessiond::store::{now_ms, IdentityRecord, KeyFactor, NewUser, Store};

const PASSWORD: &str = "correct horse battery staple";
const USERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Register(usize),
    Login(usize),
    Logout(usize),
    RevokeOthers(usize),
    ChangePassword(usize),
    SetRole(usize, bool),
    RemoveUser(usize),
    AdminRevoke(usize),
    Prune(u64),
    /// A first ID-token sign-in: a passwordless user made with the link.
    SignUpWithIdentity(usize),
    Link(usize, usize),
    Unlink(usize, usize),
    /// Second factors: an authenticator app enrolled and confirmed by a
    /// session, recovery codes made and one used in a sign-in, a factor
    /// removed, a key registered (as its ceremony's end writes it) and
    /// used with a counter, every factor reset by an admin.
    EnrolTotp(usize),
    NewRecovery(usize),
    SignInWithRecovery(usize),
    RemoveFactor(usize),
    AddKey(usize, u8),
    UseKey(usize, u32),
    ResetFactors(usize),
}

/// Identities drawn from a few subjects, so links collide.
const SUBJECTS: usize = 4;

fn identity(subject: usize) -> IdentityRecord {
    IdentityRecord {
        provider: "firebase".into(),
        issuer: "https://securetoken.google.com/p".into(),
        subject: format!("uid-{subject}"),
        email: None,
        linked_at_ms: now_ms(),
    }
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let token = 0..32usize;
    prop_oneof![
        2 => user.clone().prop_map(Op::Register),
        3 => user.clone().prop_map(Op::Login),
        1 => token.clone().prop_map(Op::Logout),
        1 => token.clone().prop_map(Op::RevokeOthers),
        1 => token.prop_map(Op::ChangePassword),
        1 => (user.clone(), any::<bool>()).prop_map(|(u, a)| Op::SetRole(u, a)),
        1 => user.clone().prop_map(Op::RemoveUser),
        1 => user.clone().prop_map(Op::AdminRevoke),
        1 => (0..30u64).prop_map(Op::Prune),
        1 => (0..SUBJECTS).prop_map(Op::SignUpWithIdentity),
        1 => (user.clone(), 0..SUBJECTS).prop_map(|(u, s)| Op::Link(u, s)),
        1 => (user.clone(), 0..SUBJECTS).prop_map(|(u, s)| Op::Unlink(u, s)),
        1 => (0..32usize).prop_map(Op::EnrolTotp),
        1 => (0..32usize).prop_map(Op::NewRecovery),
        1 => user.clone().prop_map(Op::SignInWithRecovery),
        1 => (0..32usize).prop_map(Op::RemoveFactor),
        1 => (user.clone(), 0..3u8).prop_map(|(u, k)| Op::AddKey(u, k)),
        1 => (user.clone(), 0..4u32).prop_map(|(u, c)| Op::UseKey(u, c)),
        1 => user.prop_map(Op::ResetFactors),
    ]
}

/// The backends to run each history on: sled, and Redis when it is
/// installed (a fresh prefix per history on this process's redis-server,
/// and on its three-node Redis Cluster).
fn configs(dir: &std::path::Path) -> Vec<Config> {
    let mut all = vec![config(dir)];
    static HISTORY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = HISTORY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match (LocalRedis::shared(), LocalCluster::shared()) {
        (Some(Ok(url)), Some(Ok(cluster))) => {
            for (url, is_cluster) in [(url, false), (cluster, true)] {
                let mut c = config(dir);
                c.storage.backend = Backend::Redis;
                c.storage.redis_url = url.clone();
                c.storage.redis_cluster = is_cluster;
                c.storage.redis_key_prefix = format!("history-{n}:");
                all.push(c);
            }
        }
        (Some(Err(e)), _) | (_, Some(Err(e))) => panic!("{e}"),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "redis-server is not installed; CI must install it (apt-get install redis-server)"
            )
        }
        _ => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "skipped: the Redis runs of the histories (redis-server is not installed)"
                )
            });
        }
    }
    all
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.storage.data_dir = dir.to_owned();
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    c.secrets.current = Some(Secret::new(
        b"prop-secret-prop-secret-prop-secret!".to_vec(),
    ));
    c
}

fn name(n: usize) -> String {
    format!("user{n}")
}

/// Applies one operation; every refusal (taken name, last admin, ended
/// session, ...) is a legitimate outcome, so only panics and
/// inconsistencies fail the property.
async fn apply(auth: &Auth, tokens: &mut Vec<SessionToken>, codes: &mut Vec<String>, op: Op) {
    let client = ClientInfo {
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: Some("proptest".into()),
    };
    async fn current(auth: &Auth, tokens: &[SessionToken], i: usize) -> Option<CurrentSession> {
        let token = tokens.get(i % tokens.len().max(1))?;
        auth.authenticate(token).await.ok().flatten()
    }
    let store = auth.store();
    match op {
        Op::Register(n) => {
            let _ = auth
                .create_user(
                    Username::parse(&name(n)).unwrap(),
                    Email::parse(&format!("{}@example.com", name(n))).unwrap(),
                    Password::unchecked(PASSWORD.into()),
                    if n == 0 { Role::Admin } else { Role::User },
                    &sessiond::auth::By::operator(),
                )
                .await;
        }
        Op::Login(n) => {
            let login = LoginName::Username(name(n));
            if let Ok(sessiond::auth::SignIn::Session(s)) = auth
                .login(
                    &login,
                    &Password::unchecked(PASSWORD.into()),
                    &client,
                    None,
                    n % 2 == 0,
                )
                .await
            {
                tokens.push(s.token);
            }
        }
        Op::Logout(i) => {
            if let Some(token) = tokens.get(i % tokens.len().max(1)) {
                let _ = auth.end(&token.hash(), &[]).await;
            }
        }
        Op::RevokeOthers(i) => {
            if let Some(c) = current(auth, tokens, i).await {
                auth.end_other_sessions(&c).await.unwrap();
            }
        }
        Op::ChangePassword(i) => {
            if let Some(c) = current(auth, tokens, i).await {
                let same = Password::unchecked(PASSWORD.into());
                if let Ok(s) = auth.change_password(&c, Some(&same), &same, &client).await {
                    tokens.push(s.token);
                }
            }
        }
        Op::SetRole(n, admin) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                let _ = auth
                    .set_role(
                        u.user_id(),
                        if admin { Role::Admin } else { Role::User },
                        &sessiond::auth::By::operator(),
                    )
                    .await;
            }
        }
        Op::RemoveUser(n) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                let _ = auth
                    .remove_user(u.user_id(), &sessiond::auth::By::operator())
                    .await;
            }
        }
        Op::AdminRevoke(n) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                let _ = auth
                    .end_sessions_of(u.user_id(), &sessiond::auth::By::operator())
                    .await;
            }
        }
        Op::Prune(hours) => {
            store
                .prune_ended(now_ms() + hours * 3_600_000)
                .await
                .unwrap();
        }
        Op::SignUpWithIdentity(s) => {
            // Named after a registered user's slot, so names collide too.
            let _ = store
                .create_user_linked(
                    NewUser {
                        username: &Username::parse(&name(s)).unwrap(),
                        email: &Email::parse(&format!("{}@example.com", name(s))).unwrap(),
                        role: Role::User,
                        password_hash: String::new(),
                        now_ms: now_ms(),
                    },
                    Some(&identity(s)),
                    &[],
                )
                .await;
        }
        Op::Link(n, s) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                let _ = store.link_identity(u.user_id(), &identity(s), &[]).await;
            }
        }
        Op::Unlink(n, s) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                let _ = store
                    .unlink_identity(u.user_id(), &identity(s).public_id(), &[])
                    .await;
            }
        }
        Op::EnrolTotp(i) => {
            if let Some(c) = current(auth, tokens, i).await {
                if let Ok(e) = auth.totp_enrol(&c).await {
                    let secret = totp_rs::Secret::try_from_base32(&e.secret).unwrap();
                    let code = sessiond::auth::mfa::totp_code(secret.as_bytes(), now_ms() / 1000);
                    let _ = auth.totp_confirm(&c, &code).await;
                }
            }
        }
        Op::NewRecovery(i) => {
            if let Some(c) = current(auth, tokens, i).await {
                if let Ok(made) = auth.new_recovery_codes(&c).await {
                    *codes = made;
                }
            }
        }
        Op::SignInWithRecovery(n) => {
            let login = LoginName::Username(name(n));
            let password = Password::unchecked(PASSWORD.into());
            if let Ok(sessiond::auth::SignIn::SecondStep(p)) =
                auth.login(&login, &password, &client, None, true).await
            {
                if let Some(code) = codes.pop() {
                    let proof = sessiond::auth::Proof::Recovery(code);
                    if let Ok(s) = auth.second_step(&p.token, &proof, &client).await {
                        tokens.push(s.token);
                    }
                }
            }
        }
        Op::RemoveFactor(i) => {
            if let Some(c) = current(auth, tokens, i).await {
                let listed = sessiond::auth::mfa::list_factors(&c.user.factors);
                if let Some(f) = listed.first() {
                    let _ = auth.remove_factor(&c, &f.id).await;
                }
            }
        }
        Op::AddKey(n, k) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                let key = KeyFactor {
                    id: format!("key{k}"),
                    name: "key".into(),
                    credential_id: vec![k],
                    credential: vec![k],
                    counter: 0,
                    created_at_ms: now_ms(),
                    last_used_at_ms: 0,
                };
                let _ = store
                    .change_factors(u.user_id(), &[], |f| {
                        if f.keys.iter().any(|old| old.id == key.id) {
                            return None;
                        }
                        f.keys.push(key.clone());
                        Some(())
                    })
                    .await;
            }
        }
        Op::UseKey(n, counter) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                if let Some(k) = u.factors.keys.first() {
                    let _ = store
                        .accept_key_use(u.user_id(), &k.id, counter, b"used", now_ms())
                        .await;
                }
            }
        }
        Op::ResetFactors(n) => {
            if let Ok(Some(u)) = store.user_by_name(&name(n)).await {
                let _ = auth
                    .reset_factors(u.user_id(), &sessiond::auth::By::operator())
                    .await;
            }
        }
    }
}

async fn assert_consistent(store: &Store, when: &str) {
    let report = store.check().await.unwrap();
    assert!(report.problems.is_empty(), "{when}: {:#?}", report.problems);
}

/// sled releases its files a moment after the last handle drops.
async fn reopen(config: &Config) -> Store {
    for _ in 0..400 {
        if let Ok(store) = Store::open(&config.storage).await {
            return store;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the database could not be reopened");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn indexes_agree_with_records(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for config in configs(dir.path()) {
            runtime.block_on(async {
                let store = Store::open(&config.storage).await.unwrap();
                let auth = Auth::new(&config, store.clone()).await.unwrap();
                let (mut tokens, mut codes) = (Vec::new(), Vec::new());
                for op in ops.clone() {
                    apply(&auth, &mut tokens, &mut codes, op).await;
                }
                assert_consistent(&store, "live").await;
                drop(auth);
                store.close().await.unwrap();
                let reopened = reopen(&config).await;
                assert_consistent(&reopened, "after reopening").await;
                reopened.close().await.unwrap();
            });
        }
    }
}
