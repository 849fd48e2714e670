//! The Redis backend against sled in the same run: `/me`, logins, the
//! login storm, and a room whose members are split over two instances;
//! then `/me` on a three-node Redis Cluster. It starts its own
//! redis-servers (fsync'd AOF, as `durability = "sync"` requires) and the
//! servers: one on sled, two on Redis, one on the cluster.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sessiond::local_redis::{LocalCluster, LocalRedis};

use super::{
    cores, http_load, login_requests, procs, register_and_login, row, storm_windows, ws_load, Row,
    Scale,
};

/// The rows, or one row saying why there are none.
pub async fn rows(scale: &Scale, dir: &Path) -> Vec<Row> {
    let redis = match LocalRedis::start() {
        Some(Ok(redis)) => redis,
        Some(Err(e)) => panic!("{e}"),
        None => {
            return vec![row(
                "Redis backend",
                "skipped: redis-server is not installed".into(),
                "reported",
                None,
            )]
        }
    };
    eprintln!("Redis backend: servers and users ...");
    let storage = format!(
        "backend = \"redis\"\nredis_url = {:?}\nredis_key_prefix = \"bench:\"",
        redis.url()
    );
    let sled = procs::start_sessiond_with(&dir.join("sled"), "").await;
    let a = procs::start_sessiond_with(&dir.join("redis"), &storage).await;
    let b = procs::start_sessiond_with(&dir.join("redis"), &storage).await;
    let members = scale.fan_out_members;
    let users = scale.storm_users.max(members.div_ceil(16));
    let sled_cookies = register_and_login(sled.addr, "bench", users).await;
    let redis_cookies = register_and_login(a.addr, "bench", users).await;

    let mut rows = vec![
        me(
            "GET /api/auth/me requests/s on Redis vs on sled, same run",
            scale,
            (sled.addr, &sled_cookies),
            (a.addr, &redis_cookies),
        )
        .await,
        logins(scale, sled.addr, a.addr).await,
        storm(scale, a.addr, &redis_cookies).await,
    ];
    rows.push(fan_out(scale, a.addr, b.addr, &redis_cookies).await);
    a.stop();
    b.stop();
    drop(redis);
    rows.push(on_cluster(scale, dir, sled.addr, &sled_cookies).await);
    sled.stop();
    rows
}

/// `/me` on a three-node Redis Cluster (two round trips: the token, then
/// the user's slot) against sled, same run.
async fn on_cluster(scale: &Scale, dir: &Path, sled: SocketAddr, sled_cookies: &[String]) -> Row {
    let what = "GET /api/auth/me requests/s on a 3-node Redis Cluster vs on sled, same run";
    let cluster = match LocalCluster::start() {
        Some(Ok(cluster)) => cluster,
        Some(Err(e)) => panic!("{e}"),
        None => {
            return row(
                what,
                "skipped: redis-server is not installed".into(),
                "reported",
                None,
            )
        }
    };
    eprintln!("/me on a Redis Cluster ...");
    let storage = format!(
        "backend = \"redis\"\nredis_url = {:?}\nredis_cluster = true\nredis_key_prefix = \"bench:\"",
        cluster.url()
    );
    let c = procs::start_sessiond_with(&dir.join("cluster"), &storage).await;
    let cookies = register_and_login(c.addr, "bench", sled_cookies.len()).await;
    let mut row = me(what, scale, (sled, sled_cookies), (c.addr, &cookies)).await;
    row.target = "reported".into();
    row.met = None;
    c.stop();
    row
}

fn me_requests(cookies: &[String]) -> Vec<Vec<u8>> {
    cookies
        .iter()
        .map(|c| http_load::get("/api/auth/me", Some(c)))
        .collect()
}

/// Alternated halves (sled, Redis, sled, Redis), so drift weighs on both.
async fn me(
    what: &str,
    scale: &Scale,
    (sled, sled_cookies): (SocketAddr, &[String]),
    (redis, redis_cookies): (SocketAddr, &[String]),
) -> Row {
    eprintln!("{what} ...");
    let half = Duration::from_secs(scale.http_secs).div_f64(2.0);
    let (mut on_sled, mut on_redis, mut errors) = (0.0, 0.0, 0);
    let (mut p99_sled, mut p99_redis) = (0.0f64, 0.0f64);
    for _ in 0..2 {
        let mut s = http_load::run(
            sled,
            me_requests(sled_cookies),
            scale.http_connections,
            half,
        )
        .await;
        let mut r = http_load::run(
            redis,
            me_requests(redis_cookies),
            scale.http_connections,
            half,
        )
        .await;
        on_sled += s.per_second();
        on_redis += r.per_second();
        p99_sled = p99_sled.max(s.quantile_ms(0.99));
        p99_redis = p99_redis.max(r.quantile_ms(0.99));
        errors += s.errors + r.errors;
    }
    let ratio = on_redis / on_sled;
    row(
        what,
        format!(
            "{:.0}/s vs {:.0}/s = {ratio:.2}x (p99 {p99_redis:.2} ms vs {p99_sled:.2} ms; {errors} errors)",
            on_redis / 2.0,
            on_sled / 2.0
        ),
        ">= 0.50x",
        Some(ratio >= 0.5 && errors == 0),
    )
}

async fn logins(scale: &Scale, sled: SocketAddr, redis: SocketAddr) -> Row {
    eprintln!("logins on Redis vs on sled ...");
    let half = Duration::from_secs(scale.storm_secs).div_f64(2.0);
    let (mut on_sled, mut on_redis) = (0.0, 0.0);
    for _ in 0..2 {
        on_sled += http_load::run(sled, login_requests(scale), cores() * 4, half)
            .await
            .per_second();
        on_redis += http_load::run(redis, login_requests(scale), cores() * 4, half)
            .await
            .per_second();
    }
    let ratio = on_redis / on_sled;
    row(
        "logins/s on Redis vs on sled, same run",
        format!(
            "{:.1}/s vs {:.1}/s = {ratio:.2}x",
            on_redis / 2.0,
            on_sled / 2.0
        ),
        ">= 0.90x",
        Some(ratio >= 0.9),
    )
}

/// The storm windows as on sled, against an instance on Redis.
async fn storm(scale: &Scale, addr: SocketAddr, cookies: &[String]) -> Row {
    eprintln!("/me during a login storm, on Redis ...");
    storm_windows(scale, addr, &me_requests(cookies), ", on Redis").await
}

/// Half the members on each instance; the sender on the first.
async fn fan_out(scale: &Scale, a: SocketAddr, b: SocketAddr, cookies: &[String]) -> Row {
    eprintln!("fan-out across two instances ...");
    let half = scale.fan_out_members / 2;
    let (mut members, _) = ws_load::open_many(a, cookies, 0, half, 64).await;
    let (on_b, _) = ws_load::open_many(b, cookies, half, scale.fan_out_members - half, 64).await;
    members.extend(on_b);
    // Two servers' CPU is not one figure: not read here.
    let no_cpu = || (Duration::ZERO, Duration::ZERO);
    let ws_load::Deliveries {
        mut all, mut last, ..
    } = ws_load::fan_out(
        members,
        scale.fan_out_messages,
        Duration::from_millis(60),
        "bench",
        no_cpu,
    )
    .await;
    let p50 = http_load::quantile_ms(&mut all, 0.5);
    row(
        &format!(
            "one message to a {}-member room split over two instances on Redis: delivery p50 / p99",
            scale.fan_out_members
        ),
        format!(
            "{p50:.2} ms / {:.2} ms (all members had it: p50 {:.2} ms; {} deliveries)",
            http_load::quantile_ms(&mut all, 0.99),
            http_load::quantile_ms(&mut last, 0.5),
            all.len()
        ),
        "p50 <= 15 ms",
        Some(p50 <= 15.0),
    )
}
