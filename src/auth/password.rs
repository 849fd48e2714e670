//! argon2id hashing on a dedicated pool of one low-priority thread per
//! core, so a login storm queues here instead of stalling every request.
//!
//! The hash is `argon2-rust` (a port of the reference C with runtime-picked
//! SIMD, bit-exact with it on the official vectors): its `Hasher` keeps the
//! working memory between hashes, one per pool thread, in an arena it maps
//! with `MADV_HUGEPAGE` itself. PHC strings are the ones the `argon2` crate
//! and the C reference read and write, so every stored hash keeps working.
//!
//! Built without its `zeroize-memory` feature: wiping the 19 MiB arena
//! after every hash made a verification 18% slower here (medians of six
//! interleaved runs: 11.7 ms against 9.9 ms for our former AVX2 code),
//! while without it the two are level (9.9 ms and 9.95 ms over seven and
//! ten runs; logins/s 148-159 either way). The arena holds no more than our
//! own code left behind, and only in this process's memory.

use std::cell::RefCell;
use std::sync::Arc;

use argon2_rust::params::Memory;
use argon2_rust::{decode_phc, Algorithm, Argon2, Hasher, Params, Version};

use super::pool::HashPool;
use super::AuthError;
use crate::config::AuthConfig;
use crate::domain::Password;

/// Hashes and verifies passwords with the configured parameters.
#[derive(Clone)]
pub struct Passwords {
    /// Those of new hashes (argon2id, v=19); stored ones carry their own.
    params: Params,
    pool: Arc<HashPool>,
    /// Verified against when the user does not exist, so both failures cost
    /// the same time: a valid PHC string with the current parameters.
    dummy: Arc<str>,
}

/// The configured parameters as `argon2-rust` takes them; an error names
/// what is out of range.
pub fn params(config: &AuthConfig) -> Result<Params, String> {
    Params::builder()
        .memory(Memory::kib(config.argon2_memory_kib as u64))
        .passes(config.argon2_iterations)
        .lanes(config.argon2_parallelism)
        .build()
        .map_err(|e| e.to_string())
}

impl Passwords {
    /// Builds the hasher; computes the dummy hash once.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let params =
            params(config).map_err(|e| AuthError::Unexpected(format!("argon2 parameters: {e}")))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dummy = hash_blocking(params, "sessiond dummy password for unknown users")?;
        Ok(Self {
            params,
            pool: HashPool::new(cores),
            dummy: dummy.into(),
        })
    }

    /// A PHC string for a new password.
    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        let params = self.params;
        let password = password.clone();
        self.on_pool(move || hash_blocking(params, password.expose()))
            .await?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when there is none, so the answer takes as long either way.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<bool, AuthError> {
        let password = password.clone();
        let known = stored.is_some();
        let phc: Arc<str> = stored.map_or_else(|| self.dummy.clone(), Arc::from);
        let matched = self
            .on_pool(move || verify_blocking(password.expose().as_bytes(), &phc))
            .await?;
        Ok(known && matched)
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        self.pool
            .run(work)
            .await
            .map_err(|_| AuthError::Unexpected("the password hashing pool stopped".into()))
    }
}

thread_local! {
    /// This pool thread's hasher, whose working memory is kept between
    /// hashes: allocating 19 MiB afresh for each one cost more in page
    /// faults and zeroing than the hash itself.
    static HASHER: RefCell<Option<Hasher>> = const { RefCell::new(None) };
}

/// Runs `work` with this thread's hasher set to `argon2`, keeping its
/// memory (it grows to the largest parameters seen).
fn with_hasher<T>(argon2: Argon2, work: impl FnOnce(&mut Hasher) -> T) -> T {
    HASHER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let hasher = match slot.as_mut() {
            Some(hasher) => {
                hasher.set_argon2(argon2);
                hasher
            }
            None => slot.insert(argon2.hasher()),
        };
        work(hasher)
    })
}

/// Verifies `password` against a PHC string with the parameters inside it
/// (so older hashes keep working), reusing the thread's working memory.
/// Any malformed hash is a mismatch. Public so the benchmark measures
/// exactly what a login runs. The tag comparison is constant-time.
pub fn verify_blocking(password: &[u8], phc: &str) -> bool {
    let Ok(decoded) = decode_phc(phc) else {
        return false;
    };
    let argon2 = Argon2::new(decoded.algorithm, decoded.version, decoded.params);
    with_hasher(argon2, |hasher| {
        hasher
            .verify(password, &decoded.salt, &decoded.hash)
            .is_ok()
    })
}

/// A PHC string for `password` under a fresh 16-byte salt from the OS:
/// argon2id, v=19, `params`.
fn hash_blocking(params: Params, password: &str) -> Result<String, AuthError> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    with_hasher(argon2, |hasher| {
        hasher.hash_password_with_random_salt(password.as_bytes())
    })
    .map_err(|e| AuthError::Unexpected(format!("hashing failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> AuthConfig {
        AuthConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            ..AuthConfig::default()
        }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let p = Passwords::new(&cheap()).unwrap();
        let pw = Password::unchecked("correct horse battery".into());
        let phc = p.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(p.verify(&pw, Some(&phc)).await.unwrap());
        let wrong = Password::unchecked("wrong horse battery".into());
        assert!(!p.verify(&wrong, Some(&phc)).await.unwrap());
    }

    /// Every hash stored before the switch verifies: PHC strings written
    /// by sessiond's own argon2id and by the argon2 crate, at the default
    /// and other parameters, argon2i and argon2d too.
    #[test]
    fn hashes_written_before_verify() {
        let fixtures = include_str!("../../tests/fixtures/argon2-hashes.tsv");
        let mut checked = 0;
        for line in fixtures.lines() {
            let mut fields = line.split('\t');
            let (_, password, phc) = (
                fields.next().unwrap(),
                fields.next().unwrap(),
                fields.next().unwrap(),
            );
            assert!(verify_blocking(password.as_bytes(), phc), "{line}");
            assert!(!verify_blocking(b"another password", phc), "{line}");
            checked += 1;
        }
        assert_eq!(checked, 8);
    }

    /// Hashes written now verify with the argon2 crate, at cheap
    /// parameters and at the defaults.
    #[test]
    fn hashes_written_now_verify_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        for (m, t) in [(256, 2), (19456, 2)] {
            let config = AuthConfig {
                argon2_memory_kib: m,
                argon2_iterations: t,
                ..AuthConfig::default()
            };
            let ours = hash_blocking(params(&config).unwrap(), "written by sessiond").unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            let argon = argon2::Argon2::default();
            assert!(argon
                .verify_password(b"written by sessiond", &parsed)
                .is_ok());
            assert!(argon
                .verify_password(b"written by someone", &parsed)
                .is_err());
        }
    }

    #[test]
    fn damaged_or_foreign_strings_are_a_mismatch() {
        for bad in [
            "not a phc string",
            "$argon2id$v=19$m=128,t=2,p=1$garbage",
            "$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA",
            "",
        ] {
            assert!(!verify_blocking(b"whatever", bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let p = Passwords::new(&cheap()).unwrap();
        let pw = Password::unchecked("sessiond dummy password for unknown users".into());
        assert!(!p.verify(&pw, None).await.unwrap());
    }

    #[tokio::test]
    async fn damaged_hash_is_a_mismatch_not_a_panic() {
        let p = Passwords::new(&cheap()).unwrap();
        let pw = Password::unchecked("whatever whatever".into());
        assert!(!p.verify(&pw, Some("not a phc string")).await.unwrap());
    }
}
