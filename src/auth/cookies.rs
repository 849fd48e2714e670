//! The session cookie: signed with HMAC so a forged or altered cookie costs
//! one HMAC and no database read; verified with the current secret, then
//! with each old one, so rotating the secret logs nobody out.

use std::io::Write;
use std::path::Path;

use cookie::{Cookie, CookieJar, Key};
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
    keys: Vec<Key>,
    secure: bool,
    same_site: cookie::SameSite,
}

impl SessionCookies {
    /// Builds the signing keys from `SESSION_SECRET` (and `_OLD`), or in
    /// development from `<data_dir>/dev-secret`, created on first start.
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        let env = config.server.environment;
        let current = match &config.secrets.current {
            Some(secret) => key_from(secret, env, "SESSION_SECRET")?,
            None if env == Environment::Production => {
                return Err(AuthError::Config(
                    "SESSION_SECRET is not set: production needs a secret of at least 32 bytes"
                        .into(),
                ))
            }
            None => key_from(&dev_secret(&config.storage.data_dir)?, env, "dev-secret")?,
        };
        let mut keys = vec![current];
        for old in &config.secrets.old {
            keys.push(key_from(old, env, "SESSION_SECRET_OLD")?);
        }
        Ok(Self {
            name: config.session.cookie_name.clone(),
            keys,
            secure: config.session.cookie_secure(env),
            same_site: match config.session.same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            },
        })
    }

    /// The token in a `Cookie` request header, if one of our cookies there
    /// carries a valid signature.
    pub fn token_from_header(&self, header: &str) -> Option<SessionToken> {
        Cookie::split_parse(header)
            .filter_map(Result::ok)
            .filter(|c| c.name() == self.name)
            .find_map(|c| self.verify(c.value()))
    }

    fn verify(&self, signed: &str) -> Option<SessionToken> {
        let jar = CookieJar::new();
        self.keys.iter().find_map(|key| {
            let cookie = Cookie::new(self.name.clone(), signed.to_owned());
            let verified = jar.signed(key).verify(cookie)?;
            SessionToken::parse(verified.value())
        })
    }

    /// A `Set-Cookie` value carrying `token`, living `max_age_secs`.
    pub fn issue(&self, token: &SessionToken, max_age_secs: u64) -> String {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.keys[0])
            .add(Cookie::new(self.name.clone(), token.encode()));
        let signed = jar
            .get(&self.name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        self.build(signed, max_age_secs)
    }

    /// A `Set-Cookie` value that makes the browser forget the session.
    pub fn clear(&self) -> String {
        self.build(String::new(), 0)
    }

    fn build(&self, value: String, max_age_secs: u64) -> String {
        Cookie::build((self.name.clone(), value))
            .path("/")
            .http_only(true)
            .same_site(self.same_site)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age_secs).unwrap_or(i64::MAX),
            ))
            .build()
            .to_string()
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
    let mut bytes = [0u8; 48];
    OsRng.fill_bytes(&mut bytes);
    let text = hex(&bytes);
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
        let set = c.issue(&token, 60);
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
    fn old_secret_still_verifies_but_unknown_does_not() {
        let token = SessionToken::generate(1_000);
        let before = SessionCookies::from_config(&config(A, &[])).unwrap();
        let header = format!("connect.sid={}", value_of(&before.issue(&token, 60)));
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
        let set = cookies.issue(&SessionToken::generate(1_000), 86400);
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
        let header = format!("connect.sid={}", value_of(&first.issue(&token, 60)));
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
