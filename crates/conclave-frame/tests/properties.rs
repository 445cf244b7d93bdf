//! Property tests: opening never panics, sealing round-trips.

mod common;

use conclave_frame::fuzzing::ALL_CODECS;
use conclave_frame::{Codec, FrameConfig, FrameCrypto, FrameError};
use proptest::prelude::*;

fn pair() -> (FrameCrypto, FrameCrypto) {
    let members = [0, 1];
    let mut a = FrameCrypto::new(FrameConfig::default());
    let mut b = FrameCrypto::new(FrameConfig::default());
    a.set_epoch(3, &[0x5c; 16], 0, &members, 0).expect("epoch");
    b.set_epoch(3, &[0x5c; 16], 1, &members, 0).expect("epoch");
    (a, b)
}

fn codec() -> impl Strategy<Value = Codec> {
    prop::sample::select(ALL_CODECS.to_vec())
}

/// Bytes biased towards the structures the parsers look at: zero runs, start codes, small
/// SFrame headers.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            2 => Just(0u8),
            1 => Just(1u8),
            1 => Just(3u8),
            1 => Just(0x65u8),
        ],
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn open_never_panics(data in tricky_bytes(), now in 0u64..10_000) {
        let (_, mut b) = pair();
        for codec in ALL_CODECS {
            let _ = b.open(codec, &data, now);
        }
        conclave_frame::fuzzing::open_frame(&data);
    }

    #[test]
    fn open_never_panics_on_mutated_frames(
        codec in codec(),
        frame in tricky_bytes(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut a, mut b) = pair();
        let Ok(mut sealed) = a.seal(codec, &frame) else { return Ok(()); };
        for (index, value) in edits {
            let i = index.index(sealed.len());
            sealed[i] = value;
        }
        let len = cut.index(sealed.len() + 1);
        let _ = b.open(codec, &sealed[..len], 1);
    }

    #[test]
    fn seal_open_round_trip(codec in codec(), frame in tricky_bytes()) {
        let (mut a, mut b) = pair();
        match a.seal(codec, &frame) {
            Ok(sealed) => {
                let opened = b.open(codec, &sealed, 1).expect("sealed frame opens");
                prop_assert_eq!(opened.frame, frame);
                prop_assert_eq!(opened.sender_leaf, 0);
                prop_assert_eq!(opened.epoch, 3);
            }
            Err(err) => {
                // only codecs with a clear prefix can refuse a frame, and only a too-short one
                prop_assert!(matches!(err, FrameError::Malformed(_)));
                match codec {
                    Codec::Vp8 => {
                        let needed = match frame.first() {
                            Some(b) if b & 1 == 0 => 10,
                            Some(_) => 3,
                            None => 1,
                        };
                        prop_assert!(frame.len() < needed);
                    }
                    Codec::H264 => prop_assert!(frame.windows(4).any(|w| w[..3] == [0, 0, 1]
                        && matches!(w[3] & 0x1f, 1 | 5))),
                    _ => prop_assert!(false, "{:?} refused a frame", codec),
                }
            }
        }
    }

    #[test]
    fn vp8_frames_long_enough_always_seal(body in prop::collection::vec(any::<u8>(), 10..200)) {
        let (mut a, mut b) = pair();
        let sealed = a.seal(Codec::Vp8, &body).expect("seal");
        let clear = if body[0] & 1 == 0 { 10 } else { 3 };
        prop_assert_eq!(&sealed[..clear], &body[..clear]);
        prop_assert_eq!(b.open(Codec::Vp8, &sealed, 0).expect("open").frame, body);
    }
}
