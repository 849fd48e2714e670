//! argon2id hashing on a dedicated pool of one low-priority thread per
//! core, so a login storm queues here instead of stalling every request.

use std::sync::Arc;

use std::cell::RefCell;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand_core::OsRng;

use super::argon2id;
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

impl Passwords {
    /// Builds the hasher; computes the dummy hash once.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| AuthError::Unexpected(format!("argon2 parameters: {e}")))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dummy = hash_blocking(&params, "sessiond dummy password for unknown users")?;
        Ok(Self {
            params,
            pool: HashPool::new(cores),
            dummy: dummy.into(),
        })
    }

    /// A PHC string for a new password.
    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        let params = self.params.clone();
        let password = password.clone();
        self.on_pool(move || hash_blocking(&params, password.expose()))
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
    /// The argon2 working memory of this pool thread, kept between
    /// verifications: allocating 19 MiB afresh for each one cost more in
    /// page faults and zeroing than the hash itself. One of the two is
    /// used, depending on which implementation the parameters take.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    static FAST_BLOCKS: RefCell<Vec<argon2id::Block>> = const { RefCell::new(Vec::new()) };
}

/// Computes the tag with the AVX2 implementation when it covers these
/// parameters (argon2id, v=19, p=1, on a CPU with AVX2), else with the
/// argon2 crate; both give the same bytes.
fn hash_into(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    if algorithm == Algorithm::Argon2id
        && version == Version::V0x13
        && params.p_cost() == 1
        && (4..=1024).contains(&out.len())
        && argon2id::available()
    {
        FAST_BLOCKS.with(|cell| {
            let mut blocks = cell.borrow_mut();
            argon2id::hash_into(
                password,
                salt,
                params.m_cost(),
                params.t_cost(),
                out,
                &mut blocks,
            );
        });
        return Ok(());
    }
    let needed = params.block_count();
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
            password,
            salt,
            out,
            &mut blocks[..needed],
        )
    })
}

/// Verifies `password` against a PHC string with the parameters inside it
/// (so older hashes keep working), reusing the thread's working memory.
/// Any malformed hash is a mismatch. Public so the benchmark measures
/// exactly what a login runs.
pub fn verify_blocking(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let hashed = hash_into(algorithm, version, &params, password, salt, &mut out);
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// A PHC string for `password` under a fresh salt: argon2id, v=19,
/// `params`.
fn hash_blocking(params: &Params, password: &str) -> Result<String, AuthError> {
    let failed = |e: &dyn std::fmt::Display| AuthError::Unexpected(format!("hashing failed: {e}"));
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let mut out = [0u8; 32];
    hash_into(
        Algorithm::Argon2id,
        Version::V0x13,
        params,
        password.as_bytes(),
        salt_raw,
        &mut out,
    )
    .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params.try_into().map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
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

    #[test]
    fn hashes_made_elsewhere_with_other_parameters_verify() {
        let params = Params::new(128, 2, 1, None).unwrap();
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let phc = hash_blocking(other.params(), "a password from before").unwrap();
        assert!(verify_blocking(b"a password from before", &phc));
        assert!(!verify_blocking(b"a password from after", &phc));
        assert!(!verify_blocking(
            b"a password from before",
            "$argon2id$v=19$m=128,t=2,p=1$garbage"
        ));
    }

    /// PHC strings are interchangeable with the argon2 crate both ways,
    /// at cheap parameters and at the defaults (the AVX2 path, where the
    /// CPU has it).
    #[test]
    fn hashes_interchange_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        for (m, t) in [(256, 2), (19456, 2)] {
            let argon = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(m, t, 1, None).unwrap(),
            );
            let salt = SaltString::generate(&mut OsRng);
            let theirs = argon
                .hash_password(b"written by the crate", &salt)
                .unwrap()
                .to_string();
            assert!(verify_blocking(b"written by the crate", &theirs), "m={m}");
            assert!(!verify_blocking(b"written by the crate!", &theirs), "m={m}");

            let ours = hash_blocking(argon.params(), "written by sessiond").unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(argon
                .verify_password(b"written by sessiond", &parsed)
                .is_ok());
            assert!(argon
                .verify_password(b"written by someone", &parsed)
                .is_err());
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
