//! The argon2 floor: the same crate and parameters the server uses, run
//! directly (working memory reused, as the server's pool threads do), with
//! no HTTP or queueing around it.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// One verification: the hash recomputed into reused working memory.
fn verify_once(argon: &Argon2<'_>, blocks: &mut [Block]) {
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(
            b"bench password 123",
            b"sessiond-bench-salt",
            &mut out,
            blocks,
        )
        .unwrap();
}

/// Median milliseconds of one verification on one core.
pub fn verify_ms(samples: usize) -> f64 {
    let argon = argon();
    let mut blocks = vec![Block::default(); AuthConfig::default().argon2_memory_kib as usize];
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            verify_once(&argon, &mut blocks);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Verifications per second on `threads` threads for `duration`.
pub fn verifications_per_sec(threads: usize, duration: Duration) -> f64 {
    let argon = argon();
    let started = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let argon = argon.clone();
                scope.spawn(move || {
                    let mut blocks =
                        vec![Block::default(); AuthConfig::default().argon2_memory_kib as usize];
                    let mut n = 0;
                    while started.elapsed() < duration {
                        verify_once(&argon, &mut blocks);
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
