//! Join tickets: decode, round trip, verify.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    conclave_identity::fuzzing::fuzz_ticket(data);
});
