//! Bytes from the delivery service as a member of a two-member group receives them:
//! MLS messages, proposals, commits, Welcomes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    conclave_e2ee::fuzzing::delivered(data);
});
