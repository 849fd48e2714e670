#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sessiond::fuzzing::config_text(data);
});
