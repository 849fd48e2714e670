//! Several `sessiond serve` processes on one real redis-server, and on a
//! three-node Redis Cluster, acting as one server; Redis failing under
//! them; a sled site migrated onto Redis. Skipped with one line without
//! redis-server, except in CI.

use std::time::{Duration, Instant};

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sessiond::local_redis::{LocalCluster, LocalRedis};

use crate::helpers::*;

/// A redis-server of this test's own, or `None` (said) without one.
pub(super) fn redis() -> Option<LocalRedis> {
    installed(LocalRedis::start().map(|started| started.map_err(|e| e.to_string())))
}

/// This test process's Redis Cluster (three nodes), or `None` (said)
/// without redis-server.
fn cluster() -> Option<Cluster> {
    installed(LocalCluster::shared().map(|url| url.clone().map(Cluster)))
}

/// What started, or `None` with one line if redis-server is not installed
/// (a failure in CI).
fn installed<T>(started: Option<Result<T, String>>) -> Option<T> {
    match started {
        Some(started) => Some(started.unwrap_or_else(|e| panic!("redis-server starts: {e}"))),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "redis-server is not installed; CI must install it (apt-get install redis-server)"
            )
        }
        None => {
            eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
            None
        }
    }
}

/// A Redis Cluster, by the URL of one node.
struct Cluster(String);

/// Where instances keep their data: one redis-server or a cluster.
pub(super) trait Backing {
    /// The `[storage]` lines that point at it.
    fn storage(&self) -> String;
}

impl Backing for LocalRedis {
    fn storage(&self) -> String {
        format!("redis_url = {:?}", self.url())
    }
}

impl Backing for Cluster {
    fn storage(&self) -> String {
        format!("redis_url = {:?}\nredis_cluster = true", self.0)
    }
}

/// A test on its own redis-server and its twin on the shared cluster, one
/// body (`$body`, taking the `Backing`) for both.
macro_rules! on_redis_and_cluster {
    ($on_redis:ident, $on_cluster:ident, $body:ident) => {
        #[tokio::test]
        async fn $on_redis() {
            let Some(redis) = redis() else { return };
            $body(&redis).await;
        }

        #[tokio::test]
        async fn $on_cluster() {
            let Some(cluster) = cluster() else { return };
            $body(&cluster).await;
        }
    };
}

/// Two instances on `redis` under `prefix` (the first one's site, for the
/// CLI); `extra` is appended TOML.
fn two_instances(redis: &impl Backing, prefix: &str, extra: &str) -> (Site, Server, Server) {
    let site = site_on(redis, prefix, extra);
    let (a, b) = (site.start(&[]), site_on(redis, prefix, extra).start(&[]));
    (site, a, b)
}

/// A site on `redis` under `prefix`; `extra` is appended TOML.
pub(super) fn site_on(redis: &impl Backing, prefix: &str, extra: &str) -> Site {
    Site::with_storage(
        &format!(
            "backend = \"redis\"\n{}\nredis_key_prefix = {prefix:?}\nredis_timeout = \"500ms\"",
            redis.storage()
        ),
        extra,
    )
}

/// `sessiond check` on the site's store finds every index in agreement.
fn assert_check_clean(site: &Site) {
    let (status, out) = site.run(&["check"], &[], "");
    assert!(status.success(), "{out}");
}

async fn get(server: &Server, path: &str, cookie: &str) -> (StatusCode, Value) {
    let res = server
        .client
        .get(server.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> StatusCode {
    let mut req = server
        .client
        .request(method, server.url(path))
        .header(COOKIE, cookie);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().status()
}

async fn user_id(server: &Server, admin: &str, name: &str) -> String {
    let (_, body) = get(server, "/api/admin/users?limit=200", admin).await;
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{name} is listed"))
}

on_redis_and_cluster!(
    two_instances_act_as_one_server,
    on_a_cluster_two_instances_act_as_one_server,
    two_instances_act_as_one_server_on
);

async fn two_instances_act_as_one_server_on(redis: &impl Backing) {
    let prefix = format!("one-{}:", unique());
    let (site_a, site_b) = (site_on(redis, &prefix, ""), site_on(redis, &prefix, ""));
    let (a, b) = (site_a.start(&[]), site_b.start(&[]));
    // The CLI works beside running servers, on either site's config.
    let (status, err) = site_b.user_add("root", "admin", PASSWORD);
    assert!(status.success(), "{err}");
    a.register("alice").await;
    b.register("bob").await;

    // A login on A is valid on B (the development secret is shared).
    let alice = a.login_cookie("alice").await;
    assert_eq!(b.me(&alice).await, StatusCode::OK);
    let bob = b.login_cookie("bob").await;
    let root = a.login_cookie("root").await;

    // A message sent on A reaches B's room members, and both histories.
    let mut alice_ws = connect(&a, &alice).await;
    let mut bob_ws = connect(&b, &bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        say(ws, json!({"type": "join", "room": "general"})).await;
        assert_eq!(next_json(ws).await["type"], "joined");
    }
    say(
        &mut alice_ws,
        json!({"type": "message", "room": "general", "text": "hi from A"}),
    )
    .await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let got = next_json(ws).await;
        assert_eq!(
            (got["type"].as_str(), got["text"].as_str()),
            (Some("message"), Some("hi from A"))
        );
    }
    for server in [&a, &b] {
        let (status, body) = get(server, "/api/chat/rooms/general/messages", &bob).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["messages"][0]["text"], "hi from A");
    }

    // A role change on A holds on B's next request.
    let bob_id = user_id(&a, &root, "bob").await;
    assert_eq!(
        get(&b, "/api/admin/stats", &bob).await.0,
        StatusCode::FORBIDDEN
    );
    let path = format!("/api/admin/users/{bob_id}");
    let promoted = send(
        &a,
        reqwest::Method::PATCH,
        &path,
        &root,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(promoted, StatusCode::OK);
    assert_eq!(get(&b, "/api/admin/stats", &bob).await.0, StatusCode::OK);

    // A logout on B closes A's socket with 4401 within a second.
    let started = Instant::now();
    assert_eq!(b.logout(&alice).await, StatusCode::NO_CONTENT);
    assert_eq!(
        close_code(&mut alice_ws, Duration::from_secs(1)).await,
        Some(4401)
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(a.me(&alice).await, StatusCode::UNAUTHORIZED);

    // An admin's removal on A closes B's sockets.
    let removed = send(&a, reqwest::Method::DELETE, &path, &root, None).await;
    assert_eq!(removed, StatusCode::NO_CONTENT);
    assert_eq!(
        close_code(&mut bob_ws, Duration::from_secs(1)).await,
        Some(4401)
    );
    assert_eq!(b.me(&bob).await, StatusCode::UNAUTHORIZED);

    assert_check_clean(&site_a);
}

on_redis_and_cluster!(
    racing_registrations_on_two_instances_make_one_user,
    on_a_cluster_racing_registrations_on_two_instances_make_one_user,
    racing_registrations_on_two_instances_make_one_user_on
);

async fn racing_registrations_on_two_instances_make_one_user_on(redis: &impl Backing) {
    let (_site, a, b) = two_instances(redis, &format!("race-{}:", unique()), "");
    for round in 0..20 {
        let name = format!("same{round}");
        let body =
            json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
        let register = |server: &Server| {
            server
                .client
                .post(server.url("/api/auth/register"))
                .json(&body)
                .send()
        };
        let (x, y) = tokio::join!(register(&a), register(&b));
        let mut statuses = [x.unwrap().status(), y.unwrap().status()];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "round {round}"
        );
    }
}

on_redis_and_cluster!(
    two_admins_demoting_each_other_on_two_instances_leave_one,
    on_a_cluster_two_admins_demoting_each_other_on_two_instances_leave_one,
    two_admins_demoting_each_other_on_two_instances_leave_one_on
);

async fn two_admins_demoting_each_other_on_two_instances_leave_one_on(redis: &impl Backing) {
    let (site, a, b) = two_instances(redis, &format!("admins-{}:", unique()), "");
    for name in ["ann", "ben"] {
        let (status, err) = site.user_add(name, "admin", PASSWORD);
        assert!(status.success(), "{err}");
    }
    let (ann, ben) = (a.login_cookie("ann").await, b.login_cookie("ben").await);
    let (ann_id, ben_id) = (
        user_id(&a, &ann, "ann").await,
        user_id(&a, &ann, "ben").await,
    );
    for round in 0..10 {
        let demote = |server: &Server, cookie: String, id: String| {
            let req = server
                .client
                .patch(server.url(&format!("/api/admin/users/{id}")))
                .header(COOKIE, cookie)
                .json(&json!({"role": "user"}));
            async move { req.send().await.unwrap().status() }
        };
        let (x, y) = tokio::join!(
            demote(&a, ann.clone(), ben_id.clone()),
            demote(&b, ben.clone(), ann_id.clone())
        );
        // Exactly one demotion wins; the other is refused as the last admin.
        let ok = [x, y].iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, 1, "round {round}: {x} {y}");
        let (_, users) = get(
            &a,
            "/api/admin/users",
            if x == StatusCode::OK { &ann } else { &ben },
        )
        .await;
        let admins = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "admin")
            .count();
        assert_eq!(admins, 1, "round {round}");
        // Promote both again for the next round, through the CLI.
        for name in ["ann", "ben"] {
            let (status, err) = site.run(&["user", "set-role", name, "admin"], &[], "");
            assert!(status.success(), "{err}");
        }
    }
    assert_check_clean(&site);
}

on_redis_and_cluster!(
    a_logout_racing_touches_on_another_instance_stays_a_logout,
    on_a_cluster_a_logout_racing_touches_on_another_instance_stays_a_logout,
    a_logout_racing_touches_on_another_instance_stays_a_logout_on
);

async fn a_logout_racing_touches_on_another_instance_stays_a_logout_on(redis: &impl Backing) {
    // Every request touches its session.
    let extra = "[session]\ntouch_interval = \"0s\"\n";
    let (site, a, b) = two_instances(redis, &format!("touch-{}:", unique()), extra);
    a.register("alice").await;
    for round in 0..40 {
        let cookie = a.login_cookie("alice").await;
        let touches = (0..8).map(|_| b.me(&cookie));
        let (_, out) = tokio::join!(futures_util::future::join_all(touches), a.logout(&cookie));
        assert_eq!(out, StatusCode::NO_CONTENT);
        assert_eq!(
            b.me(&cookie).await,
            StatusCode::UNAUTHORIZED,
            "round {round}: alive again on B"
        );
        assert_eq!(
            a.me(&cookie).await,
            StatusCode::UNAUTHORIZED,
            "round {round}: alive again on A"
        );
    }
    let (status, out) = site.run(&["sessions", "list", "--user", "alice"], &[], "");
    assert!(status.success(), "{out}");
    assert_check_clean(&site);
}

#[tokio::test]
async fn failed_logins_count_across_instances() {
    let Some(redis) = redis() else { return };
    let extra = "max_failed_logins_per_account = 4\n";
    let (_site, a, b) = two_instances(&redis, "guess:", extra);
    a.register("alice").await;
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let res = server.login("alice", "wrong password, guess").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // Four guesses spread over two instances fill the limit on both.
    for server in [&a, &b] {
        assert_eq!(
            server.login("alice", PASSWORD).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // A right password on A forgives the account on B too: three guesses
    // there afterwards are three wrong passwords, not a lockout.
    b.register("bob").await;
    for server in [&a, &b, &a] {
        let res = server.login("bob", "wrong password, guess").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(a.login("bob", PASSWORD).await.status(), StatusCode::OK);
    for i in 0..3 {
        let res = b.login("bob", "wrong password, guess").await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "guess {i} after the success"
        );
    }
    assert_eq!(b.login("bob", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn killing_one_instance_leaves_the_other_serving_every_session() {
    let Some(redis) = redis() else { return };
    let (_site, a, b) = two_instances(&redis, "kill:", "");
    a.register("alice").await;
    let cookies = [a.login_cookie("alice").await, b.login_cookie("alice").await];
    a.crash();
    for cookie in &cookies {
        assert_eq!(b.me(cookie).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn redis_down_is_503_and_1013_and_service_resumes_when_it_is_back() {
    let Some(mut redis) = redis() else { return };
    let server = site_on(&redis, "down:", "").start(&[]);
    down_and_back(&server, |up| match up {
        false => redis.kill(),
        true => redis.restart().unwrap(),
    })
    .await;
}

#[tokio::test]
async fn a_redis_cluster_down_is_503_and_1013_and_service_resumes_when_it_is_back() {
    let Some(mut cluster) = installed(LocalCluster::start()) else {
        return;
    };
    let server = site_on(&Cluster(cluster.url()), "down:", "").start(&[]);
    down_and_back(&server, |up| match up {
        false => cluster.kill(),
        true => cluster.restart().unwrap(),
    })
    .await;
}

/// Stops Redis under a serving instance with a socket open (`set(false)`),
/// then starts it again (`set(true)`): 503s, 1013, then service without a
/// restart.
async fn down_and_back(server: &Server, mut set: impl FnMut(bool)) {
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    let mut ws = connect(server, &cookie).await;
    set(false);

    let started = Instant::now();
    let (status, body) = get(server, "/api/auth/me", &cookie).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "storage_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "storage_unavailable"})
    );
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(7)).await,
        Some(1013)
    );

    set(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.me(&cookie).await != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "service did not resume:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(connect_ok(server, &cookie).await);
}

async fn connect_ok(server: &Server, cookie: &str) -> bool {
    let mut ws = connect(server, cookie).await;
    say(&mut ws, json!({"type": "join", "room": "back"})).await;
    next_json(&mut ws).await["type"] == "joined"
}

#[tokio::test]
async fn a_redis_crash_under_logins_and_logouts_loses_nothing_acknowledged() {
    let Some(mut redis) = redis() else { return };
    let server = site_on(&redis, "crash:", "").start(&[]);
    for n in 0..4 {
        server.register(&format!("user{n}")).await;
    }
    let mut live = Vec::new();
    for n in 0..8 {
        live.push(server.login_cookie(&format!("user{}", n % 4)).await);
    }
    let mut ended = Vec::new();
    let mut in_flight_at_the_kill = 0;
    for round in 0..3 {
        let crash = Crash::default();
        // Eight clients log in over and over; two log out at once and two
        // once some logins have been answered; Redis is killed once the
        // first logouts and a few more logins are answered, so the kill
        // never rests on a guess about how fast a request is.
        let logins = (0..8).map(|i| crash.keep_logging_in(&server, format!("user{}", i % 4)));
        let going: Vec<String> = live.drain(..4).collect();
        let logouts =
            (going.iter().enumerate()).map(|(i, cookie)| crash.log_out(&server, cookie, i));
        let killer = async {
            crash.wait_for_answers(4, round).await;
            crash.wait_for_logouts(2, round).await;
            redis.kill();
            crash.killed.set(true);
        };
        let (_, logouts, ()) = tokio::join!(
            futures_util::future::join_all(logins),
            futures_util::future::join_all(logouts),
            killer
        );
        // A logout that was not answered may or may not have happened.
        for (cookie, status) in going.into_iter().zip(logouts) {
            if status == StatusCode::NO_CONTENT {
                ended.push(cookie);
            }
        }
        live.extend(crash.born.take());
        in_flight_at_the_kill += crash.in_flight_at_the_kill.get();
        redis.restart().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            != StatusCode::OK
        {
            assert!(Instant::now() < deadline, "round {round}: not back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for cookie in &live {
            assert_eq!(
                server.me(cookie).await,
                StatusCode::OK,
                "round {round}: an answered login was lost"
            );
        }
        for cookie in &ended {
            assert_eq!(
                server.me(cookie).await,
                StatusCode::UNAUTHORIZED,
                "round {round}: an answered logout was undone"
            );
        }
    }
    // Without requests in flight as Redis died, or with no answered
    // logout, the test would prove less than it says.
    assert!(
        in_flight_at_the_kill > 0,
        "no request was in flight at a kill"
    );
    assert!(!ended.is_empty(), "no logout was answered");
}

/// One round of [`a_redis_crash_under_logins_and_logouts_loses_nothing_acknowledged`]:
/// the clients share one task, so plain cells are enough.
#[derive(Default)]
struct Crash {
    killed: std::cell::Cell<bool>,
    answered: std::cell::Cell<usize>,
    logged_out: std::cell::Cell<usize>,
    in_flight_at_the_kill: std::cell::Cell<usize>,
    /// Cookies of logins answered 200.
    born: std::cell::RefCell<Vec<String>>,
}

impl Crash {
    /// Logs `name` in until a login fails after the kill.
    async fn keep_logging_in(&self, server: &Server, name: String) {
        // Refusals in a row while Redis is up: a reconnect takes a few;
        // seconds of them is a failure, not a reconnect.
        let mut refused_while_up = 0;
        for _ in 0..1000 {
            let sent_before_the_kill = !self.killed.get();
            let res = server.login(&name, PASSWORD).await;
            if sent_before_the_kill && self.killed.get() {
                self.in_flight_at_the_kill
                    .set(self.in_flight_at_the_kill.get() + 1);
            }
            if res.status() == StatusCode::OK {
                let set = res.headers()["set-cookie"].to_str().unwrap();
                self.born
                    .borrow_mut()
                    .push(set.split(';').next().unwrap().to_owned());
                self.answered.set(self.answered.get() + 1);
                refused_while_up = 0;
            } else if self.killed.get() {
                return;
            } else {
                // Just after a restart a pooled connection may still be
                // the old one: refused logins, then it reconnects.
                refused_while_up += 1;
                assert!(
                    refused_while_up < 300,
                    "logins refused for 3 s with Redis up: {}",
                    res.status()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        panic!("logins went on succeeding after Redis was killed");
    }

    /// Logs `cookie` out once `answers` logins have been answered.
    async fn log_out(&self, server: &Server, cookie: &str, answers: usize) -> StatusCode {
        self.wait_for_answers(answers, 0).await;
        let status = server.logout(cookie).await;
        self.logged_out.set(self.logged_out.get() + 1);
        status
    }

    async fn wait_for_logouts(&self, n: usize, round: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.logged_out.get() < n {
            assert!(
                Instant::now() < deadline,
                "round {round}: no logouts answered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn wait_for_answers(&self, n: usize, round: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.answered.get() < n {
            assert!(
                Instant::now() < deadline,
                "round {round}: no logins answered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test]
async fn sync_durability_refuses_a_redis_that_does_not_fsync_each_write() {
    let Some(redis) = redis() else { return };
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("everysec")
        .query_async(&mut conn)
        .await
        .unwrap();
    let site = site_on(&redis, "fsync:", "");
    let (status, err) = site.run(&["serve"], &[], "");
    assert!(!status.success());
    assert!(
        err.contains("appendfsync") && err.contains("always"),
        "{err}"
    );
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.contains("appendfsync"))
            .count(),
        1,
        "{err}"
    );
}

#[tokio::test]
async fn migrate_moves_a_sled_site_onto_redis_and_every_cookie_still_works() {
    let Some(redis) = redis() else { return };
    let sled_site = Site::new("");
    let (status, err) = sled_site.user_add("root", "admin", PASSWORD);
    assert!(status.success(), "{err}");
    let server = sled_site.start(&[]);
    let mut cookies = Vec::new();
    for name in ["alice", "bob", "carol"] {
        server.register(name).await;
        cookies.push(server.login_cookie(name).await);
    }
    let mut ws = connect(&server, &cookies[0]).await;
    say(&mut ws, json!({"type": "join", "room": "general"})).await;
    next_json(&mut ws).await;
    for text in ["one", "two", "three"] {
        say(
            &mut ws,
            json!({"type": "message", "room": "general", "text": text}),
        )
        .await;
        next_json(&mut ws).await;
    }
    drop(ws);
    let (totp, used) = enrol_totp(&server, &cookies[1]).await;
    let (status, log) = server.stop_with("-TERM");
    assert!(status.success(), "{log}");

    let url = redis.url();
    let (status, out) = sled_site.run(&["migrate", "--to", &url, "--prefix", "moved:"], &[], "");
    assert!(status.success(), "{out}");
    let (status, out) = sled_site.run(&["migrate", "--to", &url, "--prefix", "moved:"], &[], "");
    assert!(!status.success());
    assert!(out.contains("already holds data"), "{out}");

    let redis_site = site_on(&redis, "moved:", "");
    let server = redis_site.start(&[]);
    for cookie in &cookies {
        assert_eq!(server.me(cookie).await, StatusCode::OK);
    }
    let (_, body) = get(&server, "/api/chat/rooms/general/messages", &cookies[1]).await;
    let texts: Vec<_> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    // Bob's authenticator came along: asked for, and its used step stays
    // used.
    let pending: Value = server.login("bob", PASSWORD).await.json().await.unwrap();
    let pending = pending["mfa"]["pending"].as_str().unwrap();
    let step = |code: String| {
        server
            .client
            .post(server.url("/api/auth/mfa/totp"))
            .json(&json!({"pending": pending, "code": code}))
            .send()
    };
    assert_eq!(step(used).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        step(totp_at(&totp, 1)).await.unwrap().status(),
        StatusCode::OK
    );
    server.register("dave").await;
    let root = server.login_cookie("root").await;
    let (_, users) = get(&server, "/api/admin/users", &root).await;
    let ids: Vec<_> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids continue: {ids:?}");
    assert_check_clean(&redis_site);
}

#[tokio::test]
async fn the_example_deployment_serves_through_nginx_from_both_instances() {
    let Some(redis) = redis() else { return };
    let Some(nginx) = crate::tools::tool("nginx", "nginx") else {
        return;
    };
    // The example instance settings parse, and name the Redis backend.
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/redis/sessiond.toml"),
    )
    .unwrap();
    let parsed = sessiond::config::Config::parse(&example, "deploy/redis/sessiond.toml").unwrap();
    assert_eq!(parsed.storage.backend, sessiond::config::Backend::Redis);

    let (_site, a, b) = two_instances(&redis, "edge:", "");
    let port = crate::tools::free_port();
    let site = crate::tools::example_config(
        "deploy/redis/nginx.conf",
        &[
            ("127.0.0.1:8081", a.addr.to_string()),
            ("127.0.0.1:8082", b.addr.to_string()),
            ("127.0.0.1:8000", format!("127.0.0.1:{port}")),
        ],
    );
    let _nginx = crate::tools::start_nginx(&nginx, &site, port);
    let front: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{front}{path}");

    for name in ["alice", "bob"] {
        let res = http
            .post(url("/api/auth/register"))
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let login = |name: &'static str| {
        let req = http
            .post(url("/api/auth/login"))
            .json(&json!({"username": name, "password": PASSWORD}));
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        }
    };
    let (alice, bob) = (login("alice").await, login("bob").await);
    // Consecutive requests land on both instances, and each knows the session.
    let mut upstreams = std::collections::HashSet::new();
    for _ in 0..6 {
        let res = http
            .get(url("/api/auth/me"))
            .header(COOKIE, &alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        upstreams.insert(res.headers()["x-upstream"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        upstreams,
        [a.addr.to_string(), b.addr.to_string()]
            .into_iter()
            .collect()
    );

    // The chat through nginx, whichever instance each socket landed on.
    let mut alice_ws = connect_to(front, &alice).await;
    let mut bob_ws = connect_to(front, &bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        say(ws, json!({"type": "join", "room": "lobby"})).await;
        assert_eq!(next_json(ws).await["type"], "joined");
    }
    say(
        &mut alice_ws,
        json!({"type": "message", "room": "lobby", "text": "through nginx"}),
    )
    .await;
    assert_eq!(next_json(&mut bob_ws).await["text"], "through nginx");

    // A revocation through nginx closes the socket, wherever it is.
    let res = http
        .post(url("/api/auth/logout"))
        .header(COOKIE, &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        close_code(&mut bob_ws, Duration::from_secs(1)).await,
        Some(4401)
    );
}

#[tokio::test]
async fn wait_replicas_holds_answers_until_a_replica_has_them() {
    let Some(primary) = redis() else { return };
    let mut replica = LocalRedis::start_replica_of(&primary)
        .expect("redis-server is installed")
        .expect("the replica starts");
    // Until the replica has synced, WAIT would count none.
    let client = ::redis::Client::open(primary.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = ::redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("connected_slaves:1") && info.contains("state=online") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not sync: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let site = Site::with_storage(
        &format!(
            "backend = \"redis\"\nredis_url = {:?}\nredis_timeout = \"2s\"\nredis_wait_replicas = 1",
            primary.url()
        ),
        "",
    );
    let server = site.start(&[]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;

    replica.kill();
    // A write no replica acknowledges waits (1.5 s: WAIT inside the 2 s
    // redis_timeout) and is not answered as done ...
    let login = server.login("alice", PASSWORD);
    tokio::pin!(login);
    let early = tokio::time::timeout(Duration::from_millis(300), &mut login).await;
    assert!(early.is_err(), "the login waits for a replica");
    // ... while reads are answered, not queued behind its WAIT.
    assert_eq!(server.me(&cookie).await, StatusCode::OK);
    assert!(
        futures_util::FutureExt::now_or_never(login.as_mut()).is_none(),
        "a read waited for the write's WAIT"
    );
    assert_eq!(login.await.status(), StatusCode::SERVICE_UNAVAILABLE);

    replica.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.login("alice", PASSWORD).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "logins did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_redis_without_config_is_served_with_one_warning() {
    let Some(redis) = redis() else { return };
    drop(redis);
    let redis = LocalRedis::start_with(&["--rename-command", "CONFIG", ""])
        .unwrap()
        .expect("redis-server starts");
    let server = site_on(&redis, "noconfig:", "").start(&[]);
    server.register("alice").await;
    assert_eq!(
        server.me(&server.login_cookie("alice").await).await,
        StatusCode::OK
    );
    let log = server.log();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("durability is not checked"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
}

#[tokio::test]
async fn a_server_started_before_its_redis_waits_and_then_serves() {
    let Some(redis) = redis() else { return };
    drop(redis);
    let port = sessiond::local_redis::free_port().unwrap();
    let site = Site::with_storage(
        &format!("backend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\"\nredis_timeout = \"300ms\""),
        "",
    );
    let starting = std::thread::spawn(move || {
        let server = site.start(&[]);
        (site, server)
    });
    // Long enough for several retries, which are logged once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !starting.is_finished(),
        "it waits for Redis instead of exiting"
    );
    let _redis = LocalRedis::start_on(port, &[])
        .unwrap()
        .expect("redis-server starts");
    let (_site, server) = starting.join().unwrap();
    server.register("alice").await;
    let log = server.log();
    let waits = log
        .lines()
        .filter(|l| l.contains("Redis is not answering"))
        .count();
    assert_eq!(waits, 1, "{log}");
}

#[tokio::test]
async fn a_cli_command_against_an_unreachable_redis_is_one_line_without_the_password() {
    let port = sessiond::local_redis::free_port().unwrap();
    let site = Site::with_storage(
        &format!(
            "backend = \"redis\"\nredis_url = \"redis://:hunter2-secret@127.0.0.1:{port}/0\"\nredis_timeout = \"300ms\""
        ),
        "",
    );
    let started = Instant::now();
    let (status, err) = site.run(&["user", "list"], &[], "");
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not wait"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("storage.redis_url"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn check_on_redis_names_a_broken_index_and_the_prefix() {
    let Some(redis) = redis() else { return };
    let site = site_on(&redis, "broken:", "");
    let (status, err) = site.user_add("alice", "user", PASSWORD);
    assert!(status.success(), "{err}");
    assert_check_clean(&site);
    // A repair tool (or a stray DEL) loses the e-mail index entry.
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let removed: u32 = ::redis::cmd("DEL")
        .arg("broken:email:alice@example.com")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let out = site.command(&["check"]).output().expect("check runs");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("inconsistent: email: user 1 has no index entry"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 inconsistency found in the Redis prefix \"broken:\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_ending_missed_while_the_channel_was_down_closes_the_socket_once_it_is_back() {
    let Some(redis) = redis() else { return };
    let site = site_on(&redis, "missed:", "");
    let server = site.start(&[]);
    server.register("alice").await;
    let cookie = server.login_cookie("alice").await;
    let mut ws = connect(&server, &cookie).await;
    say(&mut ws, json!({"type": "join", "room": "general"})).await;
    next_json(&mut ws).await;

    // The server loses its subscription and cannot take it again ...
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let admin = |args: &[&str]| {
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd
    };
    let _: () = admin(&["ACL", "SETUSER", "default", "-subscribe"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: u64 = admin(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ... while the session ends elsewhere: its ending is published to
    // nobody.
    let (status, err) = site.run(&["sessions", "revoke", "--user", "alice"], &[], "");
    assert!(status.success(), "{err}");
    assert_eq!(close_code(&mut ws, Duration::from_millis(500)).await, None);
    // Back: the server checks its sockets' sessions again.
    let _: () = admin(&["ACL", "SETUSER", "default", "+subscribe"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(3)).await,
        Some(4401)
    );
}

/// A key prefix no other test uses on a shared Redis.
fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test]
async fn on_a_cluster_check_repair_puts_right_what_a_crash_between_steps_leaves() {
    let Some(cluster) = cluster() else { return };
    let prefix = format!("cut-{}:", unique());
    let site = site_on(&cluster, &prefix, "");
    let server = site.start(&[]);
    let (status, err) = site.user_add("root", "admin", PASSWORD);
    assert!(status.success(), "{err}");
    server.register("carol").await; // user 2
    server.register("dave").await; // user 3
    let dave = server.login_cookie("dave").await;
    assert_check_clean(&site);

    // What a crash between two steps leaves, made by hand on the cluster:
    let client = ::redis::cluster::ClusterClient::new(vec![cluster.0.clone()]).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let mut apply = async |cmd: &mut ::redis::Cmd| {
        let _: ::redis::Value = cmd.query_async(&mut conn).await.unwrap();
    };
    // a registration cut before its last step (listing the user);
    apply(
        ::redis::cmd("ZREM")
            .arg(format!("{prefix}{{all}}:users"))
            .arg(2),
    )
    .await;
    // a removal cut after giving up the name and e-mail;
    apply(::redis::cmd("DEL").arg(format!("{prefix}name:dave"))).await;
    apply(::redis::cmd("DEL").arg(format!("{prefix}email:dave@example.com"))).await;
    // a demotion cut after taking the admin count;
    apply(::redis::cmd("DECR").arg(format!("{prefix}{{all}}:admin_count"))).await;
    // an index entry left leading to a user who does not have it.
    apply(
        ::redis::cmd("SET")
            .arg(format!("{prefix}name:ghost"))
            .arg(2),
    )
    .await;

    let out = site.command(&["check"]).output().expect("check runs");
    assert!(!out.status.success());
    let out = String::from_utf8_lossy(&out.stdout);
    for finding in [
        "users: user 2 is not listed",
        "name: user 3 has no index entry",
        "admin_count is 0 but 1 users are admins",
        "name:ghost points at 2",
    ] {
        assert!(out.contains(finding), "{finding}: {out}");
    }
    let out = site
        .command(&["check", "--repair"])
        .output()
        .expect("check runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_check_clean(&site);

    // Carol's registration was finished, dave's removal too (his session
    // with it), and the last admin is counted again.
    let root = server.login_cookie("root").await;
    user_id(&server, &root, "carol").await;
    assert_eq!(
        server.login("carol", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(server.me(&dave).await, StatusCode::UNAUTHORIZED);
    server.register("dave").await;
    let (status, err) = site.run(&["user", "set-role", "root", "user"], &[], "");
    assert!(!status.success(), "the last admin was demoted: {err}");
}
