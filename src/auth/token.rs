//! Session tokens: 32 bytes from the OS random source, known only to the
//! client (inside its signed cookie) and never stored.

use std::fmt;

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::domain::{hex, TokenHash};

/// A session's bearer secret. Not `Debug`-printable, not `Clone`.
pub struct SessionToken([u8; 32]);

impl SessionToken {
    /// A fresh token: 256 bits from the OS.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads the form `encode` writes; anything else is no token.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 64 {
            return None;
        }
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(raw.as_bytes().chunks_exact(2)) {
            *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Self(bytes))
    }

    /// The cookie's payload (before signing).
    pub fn encode(&self) -> String {
        hex(&self.0)
    }

    /// The only form the store sees.
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_bytes(Sha256::digest(self.0).into())
    }
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
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a.encode(), b.encode());
        let back = SessionToken::parse(&a.encode()).unwrap();
        assert_eq!(back.hash(), a.hash());
    }

    #[test]
    fn parse_refuses_other_shapes() {
        assert!(SessionToken::parse("abc").is_none());
        assert!(SessionToken::parse(&"g".repeat(64)).is_none());
        assert!(SessionToken::parse(&"é".repeat(32)).is_none());
    }

    #[test]
    fn debug_hides_token() {
        let t = SessionToken::generate();
        assert!(!format!("{t:?}").contains(&t.encode()));
    }
}
