//! The codes a person types: TOTP (RFC 6238 with `totp-rs`, the settings
//! every authenticator app reads) and recovery codes.

use qrcode::render::svg;
use qrcode::QrCode;
use rand_core::{OsRng, RngCore};
use totp_rs::{Algorithm, Builder, Totp};

/// Bytes of a TOTP secret: 160 bits, RFC 4226's recommendation.
pub const SECRET_BYTES: usize = 20;
/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;
/// Recovery codes per batch.
pub const RECOVERY_CODES: usize = 10;

/// A fresh TOTP secret from the OS random source.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut secret);
    secret
}

/// The authenticator for `secret`: SHA-1, 6 digits, 30 s, one step of skew
/// either way; `account` and `issuer` label it in the app.
fn totp(secret: &[u8], account: &str, issuer: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(issuer.replace(':', "_")))
        .build()
        .ok()
}

/// The step `code` belongs to if it is right at `now_secs` (within one
/// step either way); `None` for a wrong or malformed code.
pub fn totp_step(secret: &[u8], code: &str, now_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "x", "x")?.check(&code, now_secs)
}

/// The code of `secret` at `now_secs` (for tests and the bench).
pub fn totp_code(secret: &[u8], now_secs: u64) -> String {
    totp(secret, "x", "x")
        .map(|t| t.generate(now_secs).to_string())
        .unwrap_or_default()
}

/// What an enrolment shows: the secret in base32, the `otpauth://` URI
/// and that URI as a QR code in SVG (made here: no third-party asset, so
/// the page's CSP holds).
pub fn enrolment(secret: &[u8], account: &str, issuer: &str) -> Option<(String, String, String)> {
    let t = totp(secret, account, issuer)?;
    let uri = t.to_url().ok()?;
    let svg = QrCode::new(uri.as_bytes())
        .ok()?
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Some((t.secret().to_base32(), uri, svg))
}

/// Letters of a recovery code: lower-case base32 without 0/1/8/9
/// look-alikes (RFC 4648's alphabet), 5 bits each.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A batch of recovery codes: 16 letters each (80 bits from the OS),
/// shown as four groups of four.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 16];
            OsRng.fill_bytes(&mut bytes);
            let letters: Vec<char> = bytes
                .iter()
                .map(|b| ALPHABET[usize::from(b & 31)] as char)
                .collect();
            letters
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// A typed recovery code as it is MACed: lower case, no dashes or spaces.
pub fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_right_for_its_step_and_one_either_side_only() {
        let secret = new_secret();
        let now = 1_000_000_000;
        let code = totp_code(&secret, now);
        assert_eq!(totp_step(&secret, &code, now), Some(now / 30));
        assert_eq!(totp_step(&secret, &code, now + 30), Some(now / 30));
        assert_eq!(totp_step(&secret, &code, now + 90), None);
        assert_eq!(totp_step(&secret, "12345", now), None);
        assert_eq!(totp_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn rfc_6238_test_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59: 94287082 (8 digits); its
        // last 6 digits are the 6-digit code.
        assert_eq!(totp_code(b"12345678901234567890", 59), "287082");
    }

    #[test]
    fn enrolment_gives_uri_and_svg() {
        let (b32, uri, svg) = enrolment(&new_secret(), "alice", "sessiond").unwrap();
        assert_eq!(b32.len(), 32);
        assert!(uri.starts_with("otpauth://totp/sessiond:alice?"), "{uri}");
        assert!(uri.contains(&format!("secret={b32}")));
        assert!(svg.contains("<svg"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalise() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert_eq!(codes[0].len(), 19);
        assert_eq!(
            normalise_recovery(&codes[0].to_uppercase().replace('-', " ")),
            codes[0].replace('-', "")
        );
    }
}
