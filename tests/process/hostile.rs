//! Hostile clients over raw TCP: the server answers 4xx or closes the
//! connection, never 5xx, and stays healthy for everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

/// Sends raw bytes; returns what came back before the server closed or
/// went quiet.
fn raw(server: &Server, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> Option<u16> {
    response.get(9..12)?.parse().ok()
}

async fn still_healthy(server: &Server) {
    let res = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_request_lines_get_400_or_a_closed_connection() {
    let site = Site::new("");
    let server = site.start(&[]);
    for junk in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ] {
        let answer = raw(&server, junk);
        if let Some(status) = status_of(&answer) {
            assert!((400..500).contains(&status), "{junk:?} -> {answer}");
        }
    }
    still_healthy(&server).await;
}

#[tokio::test]
async fn oversized_headers_are_refused_not_crashed_on() {
    let site = Site::new("");
    let server = site.start(&[]);
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let answer = raw(&server, huge.as_bytes());
    if let Some(status) = status_of(&answer) {
        assert!((400..500).contains(&status), "{answer}");
    }
    still_healthy(&server).await;
}

#[tokio::test]
async fn a_body_longer_than_announced_is_not_taken_as_json() {
    let site = Site::new("");
    let server = site.start(&[]);
    let body = r#"{"username":"alice","password":"correct horse battery staple"}"#;
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{body}"
    );
    let answer = raw(&server, request.as_bytes());
    let first = status_of(&answer).expect("an answer to the first request");
    assert_eq!(first, 400, "the 10 announced bytes are not JSON: {answer}");
    assert!(!answer.contains(" 500 "), "{answer}");
    still_healthy(&server).await;
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let site = Site::new("");
    let server = site.start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    // One header byte every second; the header read timeout is 10 s.
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        if stream.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        if let Ok(0) = stream.read(&mut buf) {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after {:?}", started.elapsed());
    still_healthy(&server).await;
}
