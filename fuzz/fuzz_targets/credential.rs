//! Device credentials, binary and base64: parse, round trip, verify.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    conclave_identity::fuzzing::fuzz_credential(data);
});
