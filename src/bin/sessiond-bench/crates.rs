//! What our hand-written RFC 3339 formatter costs beside the kept crates
//! that do the same job, per call, on the request path's input (every time
//! in a JSON answer, every log line). The crates are already in the build.
//! (Hex was measured the same way and lost to `base16ct`, which is now
//! used; BENCHMARKS.md has the figures.)

use std::hint::black_box;
use std::time::{Duration, Instant, UNIX_EPOCH};

use sessiond::domain::Rfc3339;

use super::{row, Row};

/// Calls per timing; the median of `ROUNDS` timings is reported.
const CALLS: u32 = 200_000;
const ROUNDS: usize = 7;

fn ns_per_call(mut f: impl FnMut(u64)) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for i in 0..CALLS {
                f(u64::from(i));
            }
            started.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

pub fn rows() -> Vec<Row> {
    eprintln!("our helpers vs crates ...");
    let ms = 1_764_643_479_305u64;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let with_time = |ms: u64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_default()
    };
    let with_humantime = |ms: u64| {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    };
    assert_eq!(Rfc3339::new(ms).as_str(), with_time(ms));
    assert_eq!(Rfc3339::new(ms).as_str(), with_humantime(ms));
    let ours_time = ns_per_call(|i| {
        black_box(Rfc3339::new(black_box(ms + i)).as_str().len());
    });
    let crate_time = ns_per_call(|i| {
        black_box(with_time(black_box(ms + i)));
    });
    let crate_humantime = ns_per_call(|i| {
        black_box(with_humantime(black_box(ms + i)));
    });
    // A cookie's token: 16 hex digits of login time, 64 of secret.
    let token = sessiond::auth::SessionToken::generate(ms).encode();
    let decode_with_crate = |raw: &str| {
        let (mut time, mut secret) = ([0u8; 8], [0u8; 32]);
        let ok = base16ct::mixed::decode(&raw[..16], &mut time).is_ok()
            && base16ct::mixed::decode(&raw[16..], &mut secret).is_ok();
        ok.then_some((u64::from_be_bytes(time), secret))
    };
    assert_eq!(decode_with_crate(&token).map(|(t, _)| t), Some(ms));
    let ours_decode = ns_per_call(|_| {
        black_box(sessiond::auth::SessionToken::parse(black_box(&token)).is_some());
    });
    let crate_decode = ns_per_call(|_| {
        black_box(decode_with_crate(black_box(&token)).is_some());
    });
    let (line_ours, line_default, writer_ours, writer_appender) = log_lines();
    vec![
        row(
            "a request's log line, formatted: ours (log_line) vs tracing-subscriber's format",
            format!(
                "{line_ours:.0} ns vs {line_default:.0} ns = {:.2}x",
                line_ours / line_default
            ),
            "reported",
            None,
        ),
        row(
            "... and handed to a writer thread: ours (log_writer) vs tracing-appender",
            format!(
                "{writer_ours:.0} ns vs {writer_appender:.0} ns = {:.2}x",
                writer_ours / writer_appender
            ),
            "reported",
            None,
        ),
        row(
            "RFC 3339 with milliseconds: ours (domain::Rfc3339) vs time vs humantime",
            format!("{ours_time:.1} ns vs {crate_time:.1} ns vs {crate_humantime:.1} ns"),
            "reported",
            None,
        ),
        row(
            "a cookie's token (80 hex digits) read: ours (SessionToken::parse) vs base16ct",
            format!(
                "{ours_decode:.1} ns vs {crate_decode:.1} ns = {:.2}x",
                ours_decode / crate_decode
            ),
            "reported",
            None,
        ),
    ]
}

/// Nanoseconds per request log line on the calling thread: formatted
/// into a sink by our format and by tracing-subscriber's own (no colour,
/// as the server runs), then our format handed to our batching writer and
/// to tracing-appender's non-blocking one, each draining into a sink.
fn log_lines() -> (f64, f64, f64, f64) {
    use tracing_subscriber::fmt;
    fn per_event(subscriber: impl tracing::Subscriber + Send + Sync + 'static) -> f64 {
        tracing::subscriber::with_default(subscriber, || {
            ns_per_call(|i| {
                tracing::info!(
                    method = %"GET",
                    path = %"/api/auth/me",
                    status = 200u16,
                    latency_us = i,
                    "request"
                );
            })
        })
    }
    let ours = per_event(
        fmt()
            .with_ansi(false)
            .event_format(sessiond::log_line::LogLine)
            .with_writer(std::io::sink)
            .finish(),
    );
    let default = per_event(fmt().with_ansi(false).with_writer(std::io::sink).finish());
    let (writer, guard) = sessiond::log_writer::spawn(std::io::sink()).expect("a thread");
    let with_ours = per_event(
        fmt()
            .with_ansi(false)
            .event_format(sessiond::log_line::LogLine)
            .with_writer(writer)
            .finish(),
    );
    drop(guard);
    let (non_blocking, guard) = tracing_appender::non_blocking(std::io::sink());
    let with_appender = per_event(
        fmt()
            .with_ansi(false)
            .event_format(sessiond::log_line::LogLine)
            .with_writer(non_blocking)
            .finish(),
    );
    drop(guard);
    (ours, default, with_ours, with_appender)
}
