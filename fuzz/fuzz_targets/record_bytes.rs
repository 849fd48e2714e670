#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sessiond::fuzzing::record_bytes(data);
});
