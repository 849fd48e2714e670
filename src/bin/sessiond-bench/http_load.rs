//! A minimal HTTP/1.1 keep-alive client, so the load costs the shared cores
//! as little as possible, and the load loops built on it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response: status and body.
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends a request and reads its response.
    pub async fn request(&mut self, raw: &[u8]) -> std::io::Result<Response> {
        self.stream.write_all(raw).await?;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return Ok(Response {
                    status,
                    headers: head,
                    body,
                });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `GET path` with optional cookie.
pub fn get(path: &str, cookie: Option<&str>) -> Vec<u8> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}\r\n").into_bytes()
}

/// `POST path` with a JSON body.
pub fn post_json(path: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status of one GET, or `None` if nothing answered.
pub async fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut conn = Conn::open(addr).await.ok()?;
    conn.request(&get(path, None)).await.ok().map(|r| r.status)
}

/// The `name=value` of the session cookie in a response.
pub fn cookie_of(res: &Response) -> Option<String> {
    res.headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("set-cookie")
            .then(|| v.trim().split(';').next().map(str::to_owned))?
    })
}

/// What a load run saw.
#[derive(Default)]
pub struct Load {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The q-quantile latency in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        quantile_ms(&mut self.latencies_us, q)
    }
}

/// The q-quantile of microsecond samples, in milliseconds.
pub fn quantile_ms(samples: &mut [u32], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    f64::from(samples[i]) / 1000.0
}

/// `connections` keep-alive connections each sending its requests (taken
/// round-robin from `requests`) back to back for `duration`.
pub async fn run(
    addr: SocketAddr,
    requests: Vec<Vec<u8>>,
    connections: usize,
    duration: Duration,
) -> Load {
    let requests = std::sync::Arc::new(requests);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut load = Load::default();
                let Ok(mut conn) = Conn::open(addr).await else {
                    load.errors += 1;
                    return load;
                };
                let mut n = i;
                while Instant::now() < deadline {
                    let req = &requests[n % requests.len()];
                    n += connections;
                    let t = Instant::now();
                    match conn.request(req).await {
                        Ok(res) if res.status < 400 => {
                            load.ok += 1;
                            load.latencies_us.push(t.elapsed().as_micros() as u32);
                        }
                        Ok(_) => load.errors += 1,
                        Err(_) => {
                            load.errors += 1;
                            match Conn::open(addr).await {
                                Ok(c) => conn = c,
                                Err(_) => break,
                            }
                        }
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for task in tasks {
        let part = task.await.unwrap();
        total.ok += part.ok;
        total.errors += part.errors;
        total.latencies_us.extend(part.latencies_us);
    }
    total.elapsed = started.elapsed();
    total
}
