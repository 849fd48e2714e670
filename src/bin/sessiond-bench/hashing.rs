//! The argon2 floor: the same crate and parameters the server uses, run
//! directly, with no HTTP or queueing around it.

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sessiond::config::AuthConfig;

fn argon() -> Argon2<'static> {
    let c = AuthConfig::default();
    let params = Params::new(
        c.argon2_memory_kib,
        c.argon2_iterations,
        c.argon2_parallelism,
        None,
    )
    .unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn sample_hash(argon: &Argon2<'_>) -> String {
    let salt = SaltString::encode_b64(b"sessiond-bench-salt").unwrap();
    argon
        .hash_password(b"bench password 123", &salt)
        .unwrap()
        .to_string()
}

/// Median milliseconds of one verification on one core.
pub fn verify_ms(samples: usize) -> f64 {
    let argon = argon();
    let phc = sample_hash(&argon);
    let parsed = PasswordHash::new(&phc).unwrap();
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            argon
                .verify_password(b"bench password 123", &parsed)
                .unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Verifications per second on `threads` threads for `duration`.
pub fn verifications_per_sec(threads: usize, duration: Duration) -> f64 {
    let argon = argon();
    let phc = sample_hash(&argon);
    let started = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (argon, phc) = (argon.clone(), phc.clone());
                scope.spawn(move || {
                    let parsed = PasswordHash::new(&phc).unwrap();
                    let mut n = 0;
                    while started.elapsed() < duration {
                        argon
                            .verify_password(b"bench password 123", &parsed)
                            .unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64()
}
