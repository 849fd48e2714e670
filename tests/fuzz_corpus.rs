//! Replays the fuzz targets' seeds and every input a fuzzer ever crashed
//! on (`fuzz/regressions/<target>/`), so `cargo test` guards the fixes
//! without libFuzzer. See README "Fuzzing".

use std::path::Path;

use sessiond::fuzzing;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("cookie_header", |d| {
        fuzzing::cookie_header(d);
    }),
    ("record_bytes", |d| {
        fuzzing::record_bytes(d);
    }),
    ("websocket_stream", |d| {
        fuzzing::websocket_stream(d);
    }),
    ("config_text", |d| {
        fuzzing::config_text(d);
    }),
];

fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("readable fuzz input dir").path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable input"),
            )
        })
        .collect();
    files.sort();
    files
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
        .join(name);
    std::fs::read(path).expect("seed file exists")
}

#[test]
fn every_seed_and_past_crash_input_runs_clean() {
    let mut ran = 0;
    for (target, run) in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for (path, bytes) in seeds.iter().chain(&inputs("regressions", target)) {
            let outcome = std::panic::catch_unwind(|| run(bytes));
            assert!(outcome.is_ok(), "{target} panicked on {path}");
            ran += 1;
        }
    }
    println!("replayed {ran} fuzz inputs");
}

#[test]
fn the_genuine_cookie_is_accepted_and_any_changed_byte_of_it_is_not() {
    let genuine = fuzzing::seed_cookie_header();
    assert_eq!(seed("cookie_header", "genuine"), genuine.as_bytes());
    assert!(fuzzing::cookie_header(genuine.as_bytes()));

    let value_at = genuine.find("connect.sid=").expect("cookie present") + "connect.sid=".len();
    for i in value_at..genuine.len() {
        let mut forged = genuine.clone().into_bytes();
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        assert!(
            !fuzzing::cookie_header(&forged),
            "changing byte {i} still verified"
        );
    }
}

#[test]
fn the_seeds_reach_past_the_first_check() {
    for name in ["user", "session", "message"] {
        assert_eq!(
            fuzzing::record_bytes(&seed("record_bytes", name)),
            1,
            "{name}"
        );
    }
    let frames = seed("websocket_stream", "join_send_leave");
    assert_eq!(fuzzing::websocket_stream(&frames), 3);
    assert_eq!(
        fuzzing::websocket_stream(&seed("websocket_stream", "fragmented")),
        1
    );
    assert!(fuzzing::config_text(&seed("config_text", "full")));
    assert!(!fuzzing::config_text(&seed("config_text", "bad_key")));
}
