//! The session cookie: signed with HMAC so a forged or altered cookie costs
//! one HMAC and no database read; verified with the current secret, then
//! with each old one, so rotating the secret logs nobody out.
//!
//! The signature is the `cookie` crate's signed-jar format (base64 of
//! HMAC-SHA256 over the value, then the value), computed here with each key
//! scheduled once: the jar re-keyed HMAC, copied the cookie and allocated on
//! every request, a fifth of `/me`'s own work.

use std::io::Write;
use std::path::Path;

use base64::prelude::{Engine, BASE64_STANDARD};
use cookie::{Cookie, Key};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use super::token::SessionToken;
use super::AuthError;
use crate::config::{Config, Environment, SameSite, Secret};
use crate::domain::hex;

/// Shortest secret production accepts (and key expansion needs).
const MIN_SECRET_BYTES: usize = 32;

/// Issues, reads and clears the session cookie.
#[derive(Clone)]
pub struct SessionCookies {
    name: String,
    /// The first signs; all verify.
    signers: Vec<Signer>,
    /// The keys behind them, current first: other keys are derived from
    /// them (`derive`), so rotating the secret rotates those too.
    keys: Vec<Key>,
    secure: bool,
    same_site: cookie::SameSite,
}

impl SessionCookies {
    /// Builds the signing keys from `SESSION_SECRET` (and `_OLD`), or in
    /// development from `<data_dir>/dev-secret`, created on first start.
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        Self::check_config(config)?;
        let env = config.server.environment;
        let current = match &config.secrets.current {
            Some(secret) => key_from(secret, env, "SESSION_SECRET")?,
            None => key_from(&dev_secret(&config.storage.data_dir)?, env, "dev-secret")?,
        };
        let mut keys = vec![current];
        for old in &config.secrets.old {
            keys.push(key_from(old, env, "SESSION_SECRET_OLD")?);
        }
        Ok(Self {
            name: config.session.cookie_name.clone(),
            signers: keys.iter().map(Signer::new).collect(),
            keys,
            secure: config.session.cookie_secure(env),
            same_site: match config.session.same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            },
        })
    }

    /// The refusals that need no disk: production without a secret, and
    /// any configured secret too short for its environment.
    pub fn check_config(config: &Config) -> Result<(), AuthError> {
        if config.server.environment != Environment::Production {
            return Ok(());
        }
        let Some(current) = &config.secrets.current else {
            return Err(AuthError::Config(
                "SESSION_SECRET is not set: production needs a secret of at least 32 bytes".into(),
            ));
        };
        let named = std::iter::once(("SESSION_SECRET", current))
            .chain(config.secrets.old.iter().map(|s| ("SESSION_SECRET_OLD", s)));
        for (name, secret) in named {
            if secret.expose().len() < MIN_SECRET_BYTES {
                return Err(AuthError::Config(format!(
                    "{name} is too short: production needs a secret of at least {MIN_SECRET_BYTES} bytes"
                )));
            }
        }
        Ok(())
    }

    /// The token in a `Cookie` request header, if one of our cookies there
    /// carries a valid signature. Pairs split as the `cookie` crate splits
    /// them: on `;`, then the first `=`, each side trimmed.
    pub fn token_from_header(&self, header: &str) -> Option<SessionToken> {
        header
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| name.trim() == self.name)
            .find_map(|(_, value)| self.verify(value.trim()))
    }

    fn verify(&self, signed: &str) -> Option<SessionToken> {
        self.signers
            .iter()
            .find_map(|signer| signer.verify(signed))
            .and_then(SessionToken::parse)
    }

    /// 32-byte keys for `purpose`, one per secret (current first), by
    /// HKDF-SHA-256 from each secret's master key: what seals TOTP secrets
    /// and keys recovery-code HMACs, never the cookie's own keys.
    pub fn derive(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|key| {
                let mut out = [0u8; 32];
                hkdf::Hkdf::<Sha256>::new(None, key.master())
                    .expand(purpose.as_bytes(), &mut out)
                    .expect("32 bytes is a valid HKDF-SHA-256 length");
                out
            })
            .collect()
    }

    /// A `Set-Cookie` value carrying `token`, living `max_age_secs`, or
    /// until the browser closes when `None` (a session not remembered).
    pub fn issue(&self, token: &SessionToken, max_age_secs: Option<u64>) -> String {
        self.build(self.signers[0].sign(&token.encode()), max_age_secs)
    }

    /// A `Set-Cookie` value that makes the browser forget the session.
    pub fn clear(&self) -> String {
        self.build(String::new(), Some(0))
    }

    fn build(&self, value: String, max_age_secs: Option<u64>) -> String {
        let mut cookie = Cookie::build((self.name.clone(), value))
            .path("/")
            .http_only(true)
            .same_site(self.same_site)
            .secure(self.secure);
        if let Some(secs) = max_age_secs {
            cookie = cookie.max_age(cookie::time::Duration::seconds(
                i64::try_from(secs).unwrap_or(i64::MAX),
            ));
        }
        cookie.build().to_string()
    }
}

/// One signing key with its HMAC key schedule done, so each request
/// clones a ready state instead of hashing the key again.
#[derive(Clone)]
struct Signer(Hmac<Sha256>);

/// Base64 characters of an HMAC-SHA256 tag, padding included.
const TAG_CHARS: usize = 44;

impl Signer {
    fn new(key: &Key) -> Self {
        // HMAC takes keys of any length; `signing()` is 32 bytes.
        Self(Hmac::new_from_slice(key.signing()).expect("HMAC accepts any key length"))
    }

    fn sign(&self, value: &str) -> String {
        let tag = self.0.clone().chain_update(value).finalize().into_bytes();
        let mut signed = BASE64_STANDARD.encode(tag);
        signed.push_str(value);
        signed
    }

    /// The value behind a genuine tag; the comparison is constant-time.
    fn verify<'a>(&self, signed: &'a str) -> Option<&'a str> {
        if !signed.is_char_boundary(TAG_CHARS) {
            return None;
        }
        let (tag, value) = signed.split_at(TAG_CHARS);
        // The decoder wants room for its estimate, 33 bytes for 44 chars;
        // a genuine tag fills 32.
        let mut bytes = [0u8; 33];
        let n = BASE64_STANDARD.decode_slice(tag, &mut bytes).ok()?;
        self.0
            .clone()
            .chain_update(value)
            .verify_slice(&bytes[..n])
            .ok()?;
        Some(value)
    }
}

fn key_from(secret: &Secret, env: Environment, name: &str) -> Result<Key, AuthError> {
    let bytes = secret.expose();
    if bytes.len() >= MIN_SECRET_BYTES {
        return Ok(Key::derive_from(bytes));
    }
    if env == Environment::Production {
        return Err(AuthError::Config(format!(
            "{name} is too short: production needs a secret of at least {MIN_SECRET_BYTES} bytes"
        )));
    }
    tracing::warn!(
        "{name} is shorter than {MIN_SECRET_BYTES} bytes; acceptable only in development"
    );
    let stretched: [u8; 32] = Sha256::digest(bytes).into();
    Ok(Key::derive_from(&stretched))
}

/// A fresh development secret: 48 random bytes, as hex.
pub(super) fn new_dev_secret() -> String {
    let mut bytes = [0u8; 48];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Reads `<data_dir>/dev-secret`, creating it (mode 0600) on first start so
/// cookies survive restarts.
fn dev_secret(data_dir: &Path) -> Result<Secret, AuthError> {
    let path = data_dir.join("dev-secret");
    let unreadable = |e: std::io::Error| {
        AuthError::Config(format!(
            "cannot use the development secret {}: {e}",
            path.display()
        ))
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(Secret::new(text.trim().as_bytes().to_vec())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(unreadable(e)),
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir).map_err(unreadable)?;
    let text = new_dev_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(unreadable)?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(unreadable)?;
    tracing::info!(path = %path.display(), "generated a development secret");
    Ok(Secret::new(text.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str, old: &[&str]) -> Config {
        let mut c = Config::default();
        c.secrets.current = Some(Secret::new(secret.as_bytes().to_vec()));
        c.secrets.old = old
            .iter()
            .map(|s| Secret::new(s.as_bytes().to_vec()))
            .collect();
        c
    }

    fn value_of(set_cookie: &str) -> &str {
        let pair = set_cookie.split(';').next().unwrap();
        pair.split_once('=').unwrap().1
    }

    const A: &str = "a-secret-that-is-long-enough-for-hkdf-0001";
    const B: &str = "b-secret-that-is-long-enough-for-hkdf-0002";

    #[test]
    fn issued_cookie_verifies_and_tampering_fails() {
        let c = SessionCookies::from_config(&config(A, &[])).unwrap();
        let token = SessionToken::generate(1_000);
        let set = c.issue(&token, Some(60));
        let header = format!("connect.sid={}", value_of(&set));
        assert_eq!(c.token_from_header(&header).unwrap().hash(), token.hash());
        let mut forged = value_of(&set).to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert!(c
            .token_from_header(&format!("connect.sid={forged}"))
            .is_none());
        assert!(c
            .token_from_header(&format!("other={}", value_of(&set)))
            .is_none());
    }

    #[test]
    fn signatures_match_the_cookie_crates_signed_jar_both_ways() {
        use cookie::CookieJar;
        let key = key_from(
            &Secret::new(A.as_bytes().to_vec()),
            Environment::Development,
            "A",
        )
        .unwrap();
        let c = SessionCookies::from_config(&config(A, &[])).unwrap();
        let token = SessionToken::generate(1_000);

        let ours = value_of(&c.issue(&token, Some(60))).to_owned();
        let jar = CookieJar::new();
        let verified = jar.signed(&key).verify(Cookie::new("connect.sid", ours));
        assert_eq!(verified.unwrap().value(), token.encode());

        let mut jar = CookieJar::new();
        jar.signed_mut(&key)
            .add(Cookie::new("connect.sid", token.encode()));
        let theirs = jar.get("connect.sid").unwrap().value().to_owned();
        let header = format!("a=1;  connect.sid = {theirs} ; b=2");
        assert_eq!(c.token_from_header(&header).unwrap().hash(), token.hash());
    }

    #[test]
    fn a_truncated_or_garbled_signature_is_no_token() {
        let c = SessionCookies::from_config(&config(A, &[])).unwrap();
        let value = value_of(&c.issue(&SessionToken::generate(1_000), Some(60))).to_owned();
        for bad in [
            &value[..TAG_CHARS],
            &value[..TAG_CHARS - 1],
            &value[1..],
            &value[TAG_CHARS..],
            "é",
            "",
        ] {
            assert!(c.token_from_header(&format!("connect.sid={bad}")).is_none());
        }
        let mut tag_changed = value.clone().into_bytes();
        tag_changed[3] = if tag_changed[3] == b'A' { b'B' } else { b'A' };
        let tag_changed = String::from_utf8(tag_changed).unwrap();
        assert!(c
            .token_from_header(&format!("connect.sid={tag_changed}"))
            .is_none());
    }

    #[test]
    fn old_secret_still_verifies_but_unknown_does_not() {
        let token = SessionToken::generate(1_000);
        let before = SessionCookies::from_config(&config(A, &[])).unwrap();
        let header = format!("connect.sid={}", value_of(&before.issue(&token, Some(60))));
        let rotated = SessionCookies::from_config(&config(B, &[A])).unwrap();
        assert!(rotated.token_from_header(&header).is_some());
        let forgotten = SessionCookies::from_config(&config(B, &[])).unwrap();
        assert!(forgotten.token_from_header(&header).is_none());
    }

    #[test]
    fn production_requires_a_long_secret() {
        let mut c = config("short", &[]);
        c.server.environment = Environment::Production;
        let err = SessionCookies::from_config(&c).err().unwrap().to_string();
        assert!(err.contains("SESSION_SECRET"), "{err}");
        c.secrets.current = None;
        let err = SessionCookies::from_config(&c).err().unwrap().to_string();
        assert!(err.contains("SESSION_SECRET"), "{err}");
    }

    #[test]
    fn attributes_follow_the_contract() {
        let mut c = config(A, &[]);
        c.server.environment = Environment::Production;
        let cookies = SessionCookies::from_config(&c).unwrap();
        let set = cookies.issue(&SessionToken::generate(1_000), Some(86400));
        for part in [
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Max-Age=86400",
        ] {
            assert!(set.contains(part), "{set} lacks {part}");
        }
        assert!(cookies.clear().contains("Max-Age=0"));
    }

    #[test]
    fn dev_secret_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.storage.data_dir = dir.path().to_owned();
        let first = SessionCookies::from_config(&c).unwrap();
        let token = SessionToken::generate(1_000);
        let header = format!("connect.sid={}", value_of(&first.issue(&token, Some(60))));
        let again = SessionCookies::from_config(&c).unwrap();
        assert!(again.token_from_header(&header).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("dev-secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
