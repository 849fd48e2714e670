#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sessiond::fuzzing::websocket_stream(data);
});
