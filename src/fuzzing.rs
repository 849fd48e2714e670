//! Entry points for the fuzz targets in `fuzz/` and for the regression
//! test that replays their corpus in `cargo test`.
//!
//! Each takes arbitrary bytes, runs the same code the server runs on
//! untrusted input, and panics only when a property below is broken: a
//! panic is what the fuzzer reports, so none of this code may panic on
//! input alone.

use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
use tokio_tungstenite::tungstenite::Message;

use crate::auth::{SessionCookies, SessionToken};
use crate::config::{Config, Secret};
use crate::store::codec;
use crate::store::{MessageRecord, SessionRecord, UserRecord};
use crate::ws::ClientFrame;

/// The token whose genuinely signed cookie seeds the cookie corpus.
pub const SEED_TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The fixed secret the cookie target signs with (not a real one).
const FUZZ_SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-fuzzing-secret";

fn cookies() -> &'static SessionCookies {
    static COOKIES: OnceLock<SessionCookies> = OnceLock::new();
    COOKIES.get_or_init(|| {
        let mut config = Config::default();
        config.secrets.current = Some(Secret::new(FUZZ_SECRET.to_vec()));
        SessionCookies::from_config(&config).expect("a 44-byte secret is accepted")
    })
}

/// The `Cookie` header a browser holding `SEED_TOKEN`'s cookie sends.
pub fn seed_cookie_header() -> String {
    let token = SessionToken::parse(SEED_TOKEN).expect("SEED_TOKEN is 64 hex digits");
    format!("theme=dark; {}", signed_pair(&token))
}

fn signed_pair(token: &SessionToken) -> String {
    let set_cookie = cookies().issue(token, Some(60));
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// Cookie parsing and signature checking: a header yields a token only if
/// it carries that token's genuine signed value; nothing else gets in.
/// Returns whether a token was accepted.
pub fn cookie_header(data: &[u8]) -> bool {
    let Ok(header) = std::str::from_utf8(data) else {
        return false;
    };
    let Some(token) = cookies().token_from_header(header) else {
        return false;
    };
    let pair = signed_pair(&token);
    let value = pair.split_once('=').map(|(_, v)| v).unwrap_or_default();
    assert!(
        header.contains(value),
        "a token was accepted without its genuine signature"
    );
    true
}

/// Record decoding: every stored record type either decodes or gives a
/// `CodecError`, and what decodes encodes back to the same value.
/// Returns how many of the three record types the bytes decoded as.
pub fn record_bytes(data: &[u8]) -> usize {
    [
        round_trip::<UserRecord>(data),
        round_trip::<SessionRecord>(data),
        round_trip::<MessageRecord>(data),
    ]
    .into_iter()
    .filter(|decoded| *decoded)
    .count()
}

fn round_trip<T>(data: &[u8]) -> bool
where
    T: crate::store::codec::Record + PartialEq + std::fmt::Debug,
{
    let Ok(record) = codec::decode::<T>(data) else {
        return false;
    };
    let again: T =
        codec::decode(&codec::encode(&record)).expect("a record this build encoded must decode");
    assert_eq!(record, again);
    true
}

/// WebSocket frames as a client sends them, read with the chat socket's
/// own settings, and every text message parsed as a chat frame.
/// Returns how many chat frames parsed.
pub fn websocket_stream(data: &[u8]) -> usize {
    let stream = Duplex {
        input: Cursor::new(data),
    };
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(crate::ws::socket_config()));
    let mut parsed = 0;
    // Each read consumes input or fails; the input is finite.
    while let Ok(message) = ws.read() {
        if let Message::Text(text) = message {
            parsed += usize::from(ClientFrame::parse(text.as_bytes()).is_ok());
        }
    }
    parsed
}

/// Config files: parse and validate, never panic. Returns whether the
/// text is a valid config.
pub fn config_text(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    Config::parse(text, "fuzz").is_ok_and(|config| config.validate().is_ok())
}

/// A client's bytes in, the server's replies dropped.
struct Duplex<'a> {
    input: Cursor<&'a [u8]>,
}

impl Read for Duplex<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
