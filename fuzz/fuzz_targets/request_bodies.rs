//! Every JSON request body type of the HTTP API.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = conclave_server::fuzzing::request_bodies(data);
});
