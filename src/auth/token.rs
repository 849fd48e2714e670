//! Session tokens: the login time and 32 bytes from the OS random source,
//! known only to the client (inside its signed cookie) and never stored.
//!
//! The store keys a session by [`TokenHash`]: the login time, then 24
//! bytes of the token's SHA-256. Sessions therefore sit in the order they
//! were opened, so the ones that end together (the oldest, by
//! `absolute_timeout`) share leaves of the B-trees, and removing them
//! rewrites few pages instead of one page per session. Tokens issued before
//! that (the random part alone) still parse, and hash as they always did.

use std::fmt;

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::domain::{hex, TokenHash};

/// Hex digits of a token issued before the time prefix.
const LEGACY_LEN: usize = 64;
/// Hex digits of a token: 8 bytes of login time, 32 random.
const LEN: usize = 80;

/// A session's bearer secret. Not `Debug`-printable, not `Clone`.
pub struct SessionToken {
    /// Login time in Unix ms; `None` for a token from before the prefix.
    issued_ms: Option<u64>,
    secret: [u8; 32],
}

impl SessionToken {
    /// A fresh token for a session opened at `now_ms`: 256 random bits
    /// from the OS behind the time.
    pub fn generate(now_ms: u64) -> Self {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        Self {
            issued_ms: Some(now_ms),
            secret,
        }
    }

    /// Reads the form `encode` writes, either generation; anything else is
    /// no token.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.as_bytes();
        let (issued_ms, secret) = match raw.len() {
            LEGACY_LEN => (None, raw),
            LEN => {
                let mut time = [0u8; 8];
                decode_hex(&raw[..16], &mut time)?;
                (Some(u64::from_be_bytes(time)), &raw[16..])
            }
            _ => return None,
        };
        let mut bytes = [0u8; 32];
        decode_hex(secret, &mut bytes)?;
        Some(Self {
            issued_ms,
            secret: bytes,
        })
    }

    /// The cookie's payload (before signing).
    pub fn encode(&self) -> String {
        match self.issued_ms {
            Some(ms) => hex(&ms.to_be_bytes()) + &hex(&self.secret),
            None => hex(&self.secret),
        }
    }

    /// The only form the store sees: the login time in front, so keys
    /// sort by it; a legacy token's plain SHA-256.
    pub fn hash(&self) -> TokenHash {
        let Some(ms) = self.issued_ms else {
            return TokenHash::from_bytes(Sha256::digest(self.secret).into());
        };
        let time = ms.to_be_bytes();
        let digest = Sha256::new()
            .chain_update(time)
            .chain_update(self.secret)
            .finalize();
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&time);
        key[8..].copy_from_slice(&digest[..24]);
        TokenHash::from_bytes(key)
    }
}

/// Lower- or upper-case hex into `out`, which it must fill exactly. By
/// table and without a branch per digit: random digits made a `match`
/// mispredict on about every other one. Kept over `base16ct`'s decoder
/// (which `domain::hex` uses to encode): a cookie's 80 digits read in 21 ns
/// here against 43 ns (`sessiond-bench --only crates`, BENCHMARKS.md).
fn decode_hex(raw: &[u8], out: &mut [u8]) -> Option<()> {
    const INVALID: u8 = 0x80;
    const TABLE: [u8; 256] = {
        let mut table = [INVALID; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            table[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    if raw.len() != out.len() * 2 {
        return None;
    }
    let mut seen = 0;
    for (byte, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
        let (high, low) = (TABLE[pair[0] as usize], TABLE[pair[1] as usize]);
        seen |= high | low;
        *byte = high << 4 | low;
    }
    (seen & INVALID == 0).then_some(())
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_round_trip() {
        let a = SessionToken::generate(1_000);
        let b = SessionToken::generate(1_000);
        assert_ne!(a.encode(), b.encode());
        assert_ne!(a.hash(), b.hash());
        let back = SessionToken::parse(&a.encode()).unwrap();
        assert_eq!(back.hash(), a.hash());
        assert_eq!(a.encode().len(), LEN);
    }

    #[test]
    fn keys_sort_by_login_time() {
        let times = [0, 1, 999, 1_764_556_279_305, 1_764_556_279_306, u64::MAX];
        let keys: Vec<_> = times
            .iter()
            .map(|&t| SessionToken::generate(t).hash())
            .collect();
        for pair in keys.windows(2) {
            assert!(pair[0].as_bytes() < pair[1].as_bytes());
        }
    }

    #[test]
    fn a_token_from_before_the_time_prefix_keeps_its_session() {
        let legacy = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let token = SessionToken::parse(legacy).unwrap();
        assert_eq!(token.encode(), legacy);
        let bytes: Vec<u8> = (0..32).map(|i| (i % 16) * 0x11).collect();
        let old_hash = TokenHash::from_bytes(Sha256::digest(&bytes).into());
        assert_eq!(token.hash(), old_hash);
    }

    #[test]
    fn parse_refuses_other_shapes() {
        assert!(SessionToken::parse("abc").is_none());
        assert!(SessionToken::parse(&"g".repeat(64)).is_none());
        assert!(SessionToken::parse(&"é".repeat(32)).is_none());
        assert!(SessionToken::parse(&"é".repeat(40)).is_none());
        assert!(SessionToken::parse(&"0".repeat(72)).is_none());
        assert!(SessionToken::parse(&format!("+{}", "0".repeat(79))).is_none());
    }

    #[test]
    fn hex_decoding_agrees_with_the_standard_library_on_every_pair() {
        for high in 0..=255u8 {
            for low in 0..=255u8 {
                let pair = [high, low];
                let mut out = [0u8];
                let ours = decode_hex(&pair, &mut out).map(|()| out[0]);
                let expected = (high.is_ascii_hexdigit() && low.is_ascii_hexdigit())
                    .then(|| u8::from_str_radix(std::str::from_utf8(&pair).unwrap(), 16).unwrap());
                assert_eq!(ours, expected, "{pair:?}");
            }
        }
    }

    #[test]
    fn debug_hides_token() {
        let t = SessionToken::generate(1_000);
        assert!(!format!("{t:?}").contains(&t.encode()));
    }
}
