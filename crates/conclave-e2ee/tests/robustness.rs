//! Layer 4: arbitrary and mutated input never panics.

#![allow(missing_docs)]

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        conclave_e2ee::fuzzing::delivered(&data);
    }

    #[test]
    fn mutated_messages_never_panic(kind in 0u8..4, position in any::<usize>(), xor in 1u8..=255) {
        conclave_e2ee::fuzzing::mutated(kind, position, xor);
    }
}

#[test]
fn structured_prefixes_never_panic() {
    // MLS message headers: version 1, each wire format, then junk.
    for wire_format in 0u8..8 {
        for tail in [&[][..], &[0; 8][..], &[0xff; 64][..]] {
            let mut data = vec![0, 1, 0, wire_format];
            data.extend_from_slice(tail);
            conclave_e2ee::fuzzing::delivered(&data);
        }
    }
}
