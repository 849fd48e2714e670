#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sessiond::fuzzing::cookie_header(data);
});
