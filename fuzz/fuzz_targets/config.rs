//! `conclave.toml`: parse, resolve profiles, validate.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = conclave_server::fuzzing::config(data);
});
