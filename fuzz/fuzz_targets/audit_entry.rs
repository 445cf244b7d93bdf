//! Audit entries as exported (JSON lines), and hex digests. A digest that parses must
//! print as the same hex, up to case.
#![no_main]

use std::str::FromStr as _;

use conclave_audit::{Entry, Hash};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = serde_json::from_slice::<Entry>(data) {
        let _ = entry.compute_hash();
        let _ = serde_json::to_vec(&entry).expect("an entry serialises");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(hash) = Hash::from_str(text) {
            assert!(
                hash.to_string().eq_ignore_ascii_case(text),
                "hash round trip"
            );
        }
    }
});
