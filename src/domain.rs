//! The vocabulary every layer shares: values parsed once at the edge, so no
//! layer behind it handles a raw, unchecked string.
//!
//! Each type has a private field and is built only by `parse`, whose error
//! names the offending field the way the API reports it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an input value was refused; `field` is the API's name for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    /// The JSON field name the client sent.
    pub field: &'static str,
    /// A sentence for a person.
    pub reason: String,
}

impl InvalidField {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A user name as registered: 3-32 of `[A-Za-z0-9_.-]`, unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Accepts a name the contract allows, or says which rule it breaks.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let len = raw.chars().count();
        if !(3..=32).contains(&len) {
            return Err(InvalidField::new(
                "username",
                "must be 3 to 32 characters long",
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(InvalidField::new(
                "username",
                "may contain only letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The form uniqueness is checked in: "Alice" and "alice" are one name.
    pub fn key(&self) -> String {
        name_key(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The index key of a user name, as typed at login or as stored.
pub fn name_key(raw: &str) -> String {
    raw.to_ascii_lowercase()
}

/// The index key of an e-mail address, as typed at login or as stored.
pub fn email_key(raw: &str) -> String {
    raw.to_lowercase()
}

/// An e-mail address, checked only as far as a mail system would agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` with no spaces, at most 254 characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let invalid = || InvalidField::new("email", "must be an address like name@example.com");
        // No spaces and no control characters (the OpenAPI pattern says the
        // same: `\s` and `\x00-\x1f\x7f-\x9f`).
        let unprintable = |c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}';
        if raw.is_empty() || raw.len() > 254 || raw.chars().any(unprintable) {
            return Err(invalid());
        }
        let (local, domain) = raw.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The form uniqueness is checked in.
    pub fn key(&self) -> String {
        email_key(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A chat room name: 1-64 of `[a-z0-9_-]`, so it can prefix store keys
/// followed by a zero byte without two rooms ever sharing a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

impl RoomName {
    /// Accepts a name the contract allows.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidField::new(
                "room",
                "must be 1 to 64 of lower-case letters, digits, '_' and '-'",
            ))
        }
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A password accepted by the length policy; never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Applies the configured bounds, counted in characters (ASVS 2.1.2).
    pub fn parse(
        raw: String,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<Self, InvalidField> {
        let len = raw.chars().count();
        if len < min {
            return Err(InvalidField::new(
                field,
                format!("must be at least {min} characters long"),
            ));
        }
        if len > max {
            return Err(InvalidField::new(
                field,
                format!("must be at most {max} characters long"),
            ));
        }
        Ok(Self(raw))
    }

    /// A password as typed at login: checked against a hash, never against
    /// the policy, so a policy change does not lock anyone out.
    pub fn unchecked(raw: String) -> Self {
        Self(raw)
    }

    /// The bytes to hash or verify.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// What a user may do; checked on every request against the stored user, so
/// a change holds from the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Uses the service.
    User,
    /// Also manages users.
    Admin,
}

impl Role {
    /// Accepts the contract's spelling.
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        match raw {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err(InvalidField::new("role", "must be \"user\" or \"admin\"")),
        }
    }

    /// Whether this role may do what `required` may: admins may do
    /// everything users may.
    pub fn includes(self, required: Role) -> bool {
        self == Role::Admin || required == Role::User
    }

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a session was authenticated, as RFC 8176 names it: the Session
/// object's `amr`, forward auth's `X-Auth-Amr`, and what "made with a
/// second factor" is decided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    /// A password.
    Pwd,
    /// A one-time code: TOTP, or a recovery code.
    Otp,
    /// A hardware-bound key (WebAuthn).
    Hwk,
    /// A software key (WebAuthn, where the authenticator says so).
    Swk,
    /// The user was verified by the authenticator (PIN, biometrics).
    User,
}

impl Amr {
    /// The RFC 8176 value.
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Pwd => "pwd",
            Amr::Otp => "otp",
            Amr::Hwk => "hwk",
            Amr::Swk => "swk",
            Amr::User => "user",
        }
    }

    /// Whether a session made with these counts as two factors: a second
    /// step after the password, or a passkey that verified its user.
    pub fn is_multi_factor(amr: &[Amr]) -> bool {
        let has = |a| amr.contains(&a);
        (has(Amr::Pwd) && (has(Amr::Otp) || has(Amr::Hwk) || has(Amr::Swk)))
            || ((has(Amr::Hwk) || has(Amr::Swk)) && has(Amr::User))
    }
}

/// A user's id: a number that only grows, so paging by id never skips a user
/// registered meanwhile. Shown to clients as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(u64);

impl UserId {
    /// Wraps a number handed out by the store.
    pub const fn from_u64(n: u64) -> Self {
        Self(n)
    }

    /// The number itself, as records keep it.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The key prefix the store sorts by.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Reads a key prefix written by `to_be_bytes`.
    pub fn from_be_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?)))
    }

    /// Reads the public form; anything else is simply no user.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 16 {
            return None;
        }
        u64::from_str_radix(raw, 16).ok().map(Self)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A session token's key: its login time, then 24 bytes of its SHA-256
/// (`SessionToken::hash`). The only form of a token the store ever sees,
/// so a copy of the database lets nobody in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps a digest computed by the auth layer.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a digest back from a store key.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Reads a digest back from its lower-case hex form (a Redis key's
    /// tail), as `hex` wrote it.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        match base16ct::lower::decode(text, &mut out) {
            Ok(decoded) if decoded.len() == 32 => Some(Self(out)),
            _ => None,
        }
    }

    /// The digest, as the store keys it.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id the API shows: derived from the hash one more time, so it
    /// names a session without being usable as any stored key or token.
    pub fn public_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"sessiond public session id\0")
            .chain_update(self.0)
            .finalize();
        hex(&digest[..16])
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.public_id())
    }
}

/// Lower-case hex, for ids and tokens: `base16ct` (RustCrypto's
/// constant-time encoder), which `sessiond-bench --only crates` measured
/// at 11 ns for a 16-byte id against 20 ns for the loop we had.
pub fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// Unix millis as RFC 3339 in UTC (`2026-12-01T02:44:39.305Z`).
pub fn rfc3339(ms: u64) -> String {
    Rfc3339::new(ms).as_str().to_owned()
}

/// `rfc3339` on the stack, for writers that need no `String` (JSON
/// answers, log lines): computed with Howard Hinnant's days-to-civil
/// algorithm instead of a formatter. Kept over the crates because it is
/// cheaper on the request path: `sessiond-bench --only crates` measured
/// 19 ns a time against 96 ns with `time`'s formatter and 51 ns with
/// `humantime` (BENCHMARKS.md). Years past 9999 are clamped, as the
/// four-digit form cannot hold them.
pub struct Rfc3339([u8; 24]);

impl Rfc3339 {
    /// The time `ms` after the Unix epoch.
    pub fn new(ms: u64) -> Self {
        Self(rfc3339_bytes(ms))
    }

    /// The text; always ASCII.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

fn rfc3339_bytes(ms: u64) -> [u8; 24] {
    const LAST: u64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.min(LAST);
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, hour);
    put(14, 2, minute);
    put(17, 2, second);
    put(20, 3, millis);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn reference(ms: u64) -> String {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    }

    #[test]
    fn times_read_as_humantime_writes_them() {
        let mut ms = 0u64;
        // Every day boundary around leap years and centuries, then a
        // stride through the four-digit years.
        for _ in 0..200_000 {
            for probe in [ms, ms + 86_399_999] {
                assert_eq!(rfc3339(probe), reference(probe), "{probe}");
            }
            ms += if ms < 13_000_000_000_000 {
                86_400_000
            } else {
                1_234_567_890_123
            };
            if ms > 253_402_300_799_999 {
                break;
            }
        }
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn username_length_bounds() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn username_charset() {
        assert!(Username::parse("a.b_c-D9").is_ok());
        assert!(Username::parse("bad name").is_err());
        assert!(Username::parse("émile").is_err());
        assert_eq!(Username::parse("x").unwrap_err().field, "username");
    }

    #[test]
    fn username_key_ignores_case() {
        assert_eq!(Username::parse("Alice").unwrap().key(), "alice");
    }

    #[test]
    fn email_shape() {
        assert!(Email::parse("a@example.com").is_ok());
        assert!(Email::parse("no-at-sign").is_err());
        assert!(Email::parse("@example.com").is_err());
        assert!(Email::parse("a@").is_err());
        assert!(Email::parse("a b@example.com").is_err());
        // Control characters, C0 and C1 (U+0085 among them), are refused
        // as the OpenAPI pattern refuses them.
        assert!(Email::parse("\u{1f}@\u{85}").is_err());
        assert!(Email::parse("a@ex\u{7f}ample.com").is_err());
        assert_eq!(Email::parse("A@Ex.com").unwrap().key(), "a@ex.com");
    }

    #[test]
    fn password_bounds_count_characters() {
        let ok = |s: &str| Password::parse(s.to_owned(), "password", 3, 4).is_ok();
        assert!(!ok("ab"));
        assert!(ok("äöü"));
        assert!(ok("abcd"));
        assert!(!ok("abcde"));
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::unchecked("hunter2hunter2".into());
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn role_round_trip() {
        assert_eq!(Role::parse("admin").unwrap(), Role::Admin);
        assert_eq!(Role::parse("user").unwrap().as_str(), "user");
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn user_id_public_form_round_trips() {
        let id = UserId::from_u64(42);
        assert_eq!(id.to_string(), "000000000000002a");
        assert_eq!(UserId::parse(&id.to_string()), Some(id));
        assert_eq!(UserId::parse("zz"), None);
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn a_token_hash_reads_back_from_its_hex_and_nothing_else() {
        let h = TokenHash::from_bytes([0xa5; 32]);
        assert_eq!(TokenHash::from_hex(&hex(h.as_bytes())), Some(h));
        for bad in [
            "",
            "a5",
            &"A5".repeat(32),
            &"a5".repeat(33),
            &"g5".repeat(32),
        ] {
            assert_eq!(TokenHash::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn room_names() {
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse("a-b_9").is_ok());
        assert!(RoomName::parse(&"a".repeat(64)).is_ok());
        assert!(RoomName::parse(&"a".repeat(65)).is_err());
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("General").is_err());
        assert!(RoomName::parse("a b").is_err());
        assert!(RoomName::parse("a\0b").is_err());
    }

    #[test]
    fn public_id_is_not_the_hash() {
        let h = TokenHash::from_bytes([7; 32]);
        let id = h.public_id();
        assert_eq!(id.len(), 32);
        assert!(!hex(h.as_bytes()).contains(&id));
        assert_eq!(id, TokenHash::from_bytes([7; 32]).public_id());
    }
}
