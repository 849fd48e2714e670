//! The argon2 floor: the server's own verification (`auth::verify_blocking`,
//! working memory reused as on its pool threads) run directly, with no
//! HTTP or queueing around it.

use std::time::{Duration, Instant};

use argon2_rust::params::Memory;
use argon2_rust::{Algorithm, Argon2, Params, Version};
use sessiond::auth::verify_blocking;
use sessiond::config::AuthConfig;

const PASSWORD: &[u8] = b"bench password 123";

/// A stored hash at the default parameters.
fn stored() -> String {
    let c = AuthConfig::default();
    let params = Params::builder()
        .memory(Memory::kib(c.argon2_memory_kib as u64))
        .passes(c.argon2_iterations)
        .lanes(c.argon2_parallelism)
        .build()
        .unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(PASSWORD, b"sessiond-bench-salt")
        .unwrap()
}

fn median_ms(samples: usize, mut once: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            once();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median milliseconds of one verification on one core, as the server
/// does it.
pub fn verify_ms(samples: usize) -> f64 {
    let phc = stored();
    median_ms(samples, || assert!(verify_blocking(PASSWORD, &phc)))
}

/// Verifications per second on `threads` threads for `duration`.
pub fn verifications_per_sec(threads: usize, duration: Duration) -> f64 {
    let phc = stored();
    let started = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let phc = phc.as_str();
                scope.spawn(move || {
                    let mut n = 0;
                    while started.elapsed() < duration {
                        assert!(verify_blocking(PASSWORD, phc));
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
