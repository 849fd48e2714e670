//! The crash loop: concurrent clients register, log in, log out, revoke and
//! chat while the server is SIGKILLed at random moments and restarted on the
//! same data dir. Each client keeps a ledger of what the server answered;
//! after every kill, `sessiond check` must pass and every acknowledged
//! change must still hold.
//!
//! `cargo test --test process crash_loop` kills 5 times; the full run is
//! `CRASHLOOP_KILLS=30 cargo test --release --test process crash_loop -- --nocapture`
//! (`CRASHLOOP_SEED` replays a run).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

const WORKERS: usize = 4;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// xorshift64*: reproducible from the printed seed, no extra crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fate {
    /// Its login answered 200 and nothing has tried to end it.
    Live,
    /// An ending of it answered.
    Ended,
    /// An ending was sent but its answer never came: either is right.
    Unsure,
}

struct Tracked {
    user: usize,
    cookie: String,
    fate: Fate,
}

/// What one client was told, across all rounds.
struct Ledger {
    worker: usize,
    rng: Rng,
    users: Vec<String>,
    sessions: Vec<Tracked>,
    chat_registered: bool,
    /// The chat user's cookie; never logged out, so its socket stays up.
    chat: Option<String>,
    messages: Vec<String>,
    next_name: u32,
    acknowledged: u64,
}

impl Ledger {
    fn new(worker: usize, seed: u64) -> Self {
        Ledger {
            worker,
            rng: Rng(seed ^ (worker as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            users: Vec::new(),
            sessions: Vec::new(),
            chat_registered: false,
            chat: None,
            messages: Vec::new(),
            next_name: 0,
            acknowledged: 0,
        }
    }

    fn room(&self) -> String {
        format!("crash-{}", self.worker)
    }

    fn live_session(&mut self) -> Option<usize> {
        let live: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].fate == Fate::Live)
            .collect();
        (!live.is_empty()).then(|| live[self.rng.below(live.len() as u64) as usize])
    }
}

/// Why a round of load stopped: the server is gone (expected) or it
/// answered something no client should ever see.
#[derive(Debug)]
enum Stop {
    Gone,
    Wrong(String),
}

impl From<reqwest::Error> for Stop {
    fn from(_: reqwest::Error) -> Self {
        Stop::Gone
    }
}

fn cookie_of(res: &reqwest::Response) -> String {
    let set = res.headers()[SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

fn expect(status: StatusCode, wanted: StatusCode, what: &str) -> Result<(), Stop> {
    if status == wanted {
        Ok(())
    } else {
        Err(Stop::Wrong(format!("{what} answered {status}")))
    }
}

async fn register(http: &reqwest::Client, base: &str, name: &str) -> Result<(), Stop> {
    let res = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
        .send()
        .await?;
    expect(res.status(), StatusCode::CREATED, "register")
}

async fn login(http: &reqwest::Client, base: &str, name: &str) -> Result<String, Stop> {
    let res = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await?;
    expect(res.status(), StatusCode::OK, "login")?;
    Ok(cookie_of(&res))
}

async fn chat_socket(base_addr: &str, cookie: &str, room: &str) -> Result<Ws, Stop> {
    let mut req = format!("ws://{base_addr}/ws/chat")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|_| Stop::Gone)?;
    let join = json!({"type": "join", "room": room}).to_string();
    ws.send(Message::text(join)).await.map_err(|_| Stop::Gone)?;
    match next_json(&mut ws).await? {
        v if v["type"] == "joined" => Ok(ws),
        other => Err(Stop::Wrong(format!("join answered {other}"))),
    }
}

async fn next_json(ws: &mut Ws) -> Result<Value, Stop> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return Err(Stop::Gone),
        }
    }
}

/// Sends a request that ends the sessions `which`: they are unsure from
/// the moment it leaves, and ended once `wanted` comes back.
async fn end_sessions(
    ledger: &mut Ledger,
    which: &[usize],
    request: reqwest::RequestBuilder,
    wanted: StatusCode,
) -> Result<(), Stop> {
    for &i in which {
        ledger.sessions[i].fate = Fate::Unsure;
    }
    let res = request.send().await?;
    expect(res.status(), wanted, "ending sessions")?;
    for &i in which {
        ledger.sessions[i].fate = Fate::Ended;
    }
    ledger.acknowledged += 1;
    Ok(())
}

/// One client's load until the server dies under it.
async fn run_client(ledger: &mut Ledger, addr: &str) -> Result<(), Stop> {
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let chat_name = format!("chat{}", ledger.worker);
    if !ledger.chat_registered {
        register(&http, &base, &chat_name).await?;
        ledger.chat_registered = true;
    }
    let chat_cookie = match ledger.chat.clone() {
        Some(cookie) => cookie,
        None => {
            let cookie = login(&http, &base, &chat_name).await?;
            ledger.chat = Some(cookie.clone());
            cookie
        }
    };
    let mut ws = chat_socket(addr, &chat_cookie, &ledger.room()).await?;
    loop {
        match ledger.rng.below(100) {
            0..=19 => {
                let name = format!("w{}n{}", ledger.worker, ledger.next_name);
                ledger.next_name += 1;
                register(&http, &base, &name).await?;
                ledger.users.push(name);
                ledger.acknowledged += 1;
            }
            20..=44 if !ledger.users.is_empty() => {
                let user = ledger.rng.below(ledger.users.len() as u64) as usize;
                let cookie = login(&http, &base, &ledger.users[user]).await?;
                ledger.sessions.push(Tracked {
                    user,
                    cookie,
                    fate: Fate::Live,
                });
                ledger.acknowledged += 1;
            }
            45..=59 => {
                let Some(i) = ledger.live_session() else {
                    continue;
                };
                let logout = http
                    .post(format!("{base}/api/auth/logout"))
                    .header(COOKIE, &ledger.sessions[i].cookie);
                end_sessions(ledger, &[i], logout, StatusCode::NO_CONTENT).await?;
            }
            60..=69 => {
                let Some(keep) = ledger.live_session() else {
                    continue;
                };
                let user = ledger.sessions[keep].user;
                let others: Vec<usize> = (0..ledger.sessions.len())
                    .filter(|&i| i != keep && ledger.sessions[i].user == user)
                    .filter(|&i| ledger.sessions[i].fate == Fate::Live)
                    .collect();
                let revoke = http
                    .delete(format!("{base}/api/auth/sessions"))
                    .header(COOKIE, &ledger.sessions[keep].cookie);
                end_sessions(ledger, &others, revoke, StatusCode::OK).await?;
            }
            _ => {
                let text = format!("m{}-{}", ledger.worker, ledger.messages.len());
                let frame = json!({"type": "message", "room": ledger.room(), "text": text});
                ws.send(Message::text(frame.to_string()))
                    .await
                    .map_err(|_| Stop::Gone)?;
                let echo = next_json(&mut ws).await?;
                if echo["type"] == "error" && echo["code"] == "rate_limited" {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                if echo["text"] != text.as_str() {
                    return Err(Stop::Wrong(format!("sent {text}, got {echo}")));
                }
                ledger.messages.push(text);
                ledger.acknowledged += 1;
            }
        }
    }
}

/// Checks the ledger against a freshly restarted server; returns what was
/// lost, one line each.
async fn audit(ledger: &Ledger, addr: &str) -> Vec<String> {
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let mut lost = Vec::new();
    for name in &ledger.users {
        if let Err(e) = login(&http, &base, name).await {
            lost.push(format!("registered user {name} cannot log in: {e:?}"));
        }
    }
    for s in &ledger.sessions {
        let status = http
            .get(format!("{base}/api/auth/me"))
            .header(COOKIE, &s.cookie)
            .send()
            .await
            .unwrap()
            .status();
        let wanted = match s.fate {
            Fate::Live => StatusCode::OK,
            Fate::Ended => StatusCode::UNAUTHORIZED,
            Fate::Unsure => continue,
        };
        if status != wanted {
            let user = &ledger.users[s.user];
            lost.push(format!(
                "a {:?} session of {user} answered {status}",
                s.fate
            ));
        }
    }
    if let Some(cookie) = &ledger.chat {
        let stored = match history(&http, &base, cookie, &ledger.room()).await {
            Ok(stored) => stored,
            Err(status) => {
                lost.push(format!("the chat user's history answered {status}"));
                Vec::new()
            }
        };
        for text in &ledger.messages {
            if !stored.contains(text) {
                lost.push(format!("message {text} was broadcast but is not stored"));
            }
        }
    }
    lost
}

async fn history(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    room: &str,
) -> Result<Vec<String>, StatusCode> {
    let mut texts = Vec::new();
    let mut before = String::new();
    loop {
        let res = http
            .get(format!(
                "{base}/api/chat/rooms/{room}/messages?limit=200{before}"
            ))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        if res.status() != StatusCode::OK {
            return Err(res.status());
        }
        let page: Value = res.json().await.unwrap();
        let messages = page["messages"].as_array().unwrap();
        for m in messages {
            texts.push(m["text"].as_str().unwrap().to_owned());
        }
        match messages.first() {
            Some(oldest) if messages.len() == 200 => {
                before = format!("&before={}", oldest["id"].as_str().unwrap());
            }
            _ => return Ok(texts),
        }
    }
}

fn seed() -> u64 {
    std::env::var("CRASHLOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_loses_nothing_acknowledged() {
    let kills: u32 = std::env::var("CRASHLOOP_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed = seed();
    println!("crash loop: {kills} kills, CRASHLOOP_SEED={seed}");
    let site = Site::new("");
    let mut timing = Rng(seed | 1);
    let mut ledgers: Vec<Ledger> = (0..WORKERS).map(|w| Ledger::new(w, seed)).collect();
    let mut lost = Vec::new();
    for round in 1..=kills {
        let server = site.start(&[]);
        let addr = server.addr.to_string();
        if round > 1 {
            for ledger in &ledgers {
                lost.extend(audit(ledger, &addr).await);
            }
        }
        let clients: Vec<_> = ledgers
            .drain(..)
            .map(|mut ledger| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    let stop = run_client(&mut ledger, &addr).await;
                    (ledger, stop)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200 + timing.below(1300))).await;
        server.crash();
        for client in clients {
            let (ledger, stop) = client.await.unwrap();
            match stop {
                Err(Stop::Gone) => {}
                Err(Stop::Wrong(what)) => panic!("round {round}: {what}"),
                Ok(()) => unreachable!("a client only stops when the server goes"),
            }
            ledgers.push(ledger);
        }
        let (status, report) = site.run(&["check"], &[], "");
        assert!(
            status.success(),
            "round {round}: sessiond check failed:\n{report}"
        );
    }
    let server = site.start(&[]);
    let addr = server.addr.to_string();
    for ledger in &ledgers {
        lost.extend(audit(ledger, &addr).await);
    }
    let acknowledged: u64 = ledgers.iter().map(|l| l.acknowledged).sum();
    let sessions = ledgers.iter().map(|l| l.sessions.len()).sum::<usize>();
    let messages = ledgers.iter().map(|l| l.messages.len()).sum::<usize>();
    println!(
        "crash loop: kills {kills}, operations acknowledged {acknowledged} \
         (sessions {sessions}, messages {messages}), lost {}",
        lost.len()
    );
    assert!(acknowledged > 0, "the load never got an answer");
    assert!(lost.is_empty(), "lost after a crash:\n{}", lost.join("\n"));
}
