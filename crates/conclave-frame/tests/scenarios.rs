//! Call scenarios: several members, epoch changes, replays, forgeries, tampering.

mod common;

use common::*;
use conclave_frame::{Codec, FrameConfig, FrameCrypto, FrameError};

const SECRET: [u8; 16] = [0x11; 16];
const SECRET_2: [u8; 16] = [0x22; 16];

fn sample_frames() -> Vec<(Codec, Vec<u8>)> {
    vec![
        (Codec::Vp8, vp8_key_frame(300)),
        (Codec::Vp8, vp8_delta_frame(120)),
        (Codec::Opus, opus_frame(100)),
        (Codec::H264, h264_frame(400)),
        (Codec::Vp9, payload(200, 9)),
        (Codec::Av1, payload(200, 10)),
        (Codec::Unknown, payload(50, 11)),
    ]
}

/// The clear prefix is exactly the documented one, and no 8-byte run of the rest of the
/// plaintext appears in the sealed output.
fn assert_layout(codec: Codec, frame: &[u8], sealed: &[u8]) {
    let n = expected_prefix(codec, frame);
    assert_eq!(&sealed[..n], &frame[..n], "{codec:?} clear prefix");
    if n < frame.len() {
        // the first sealed byte after the prefix is the SFrame header, not the plaintext
        let rest = &frame[n..];
        let sealed_rest = &sealed[n..];
        for window in rest.windows(8) {
            assert!(
                !sealed_rest.windows(8).any(|w| w == window),
                "{codec:?} plaintext leaked"
            );
        }
    }
}

fn everyone_opens_everyone(n: u32) {
    let mut members = group(n, 5, &SECRET, 0);
    let frames = sample_frames();
    for sender in 0..n as usize {
        for (codec, frame) in &frames {
            let sealed = members[sender].seal(*codec, frame).expect("seal");
            assert_layout(*codec, frame, &sealed);
            for (receiver, crypto) in members.iter_mut().enumerate() {
                if receiver == sender {
                    continue;
                }
                let opened = crypto.open(*codec, &sealed, 10).expect("open");
                assert_eq!(opened.frame, *frame);
                assert_eq!(opened.sender_leaf, sender as u32);
                assert_eq!(opened.epoch, 5);
            }
        }
    }
}

#[test]
fn two_members_open_each_others_frames() {
    everyone_opens_everyone(2);
}

#[test]
fn fifty_members_open_each_others_frames() {
    everyone_opens_everyone(50);
}

#[test]
fn nothing_works_before_an_epoch() {
    let mut c = FrameCrypto::new(FrameConfig::default());
    assert_eq!(c.seal(Codec::Opus, b"x"), Err(FrameError::NoKey));
    assert_eq!(
        c.open(Codec::Opus, b"xxxxxxxxxxxxxxxxxxxxxxx", 0),
        Err(FrameError::NoKey)
    );
}

#[test]
fn replayed_frame_is_refused() {
    let mut g = group(2, 1, &SECRET, 0);
    let sealed = g[0].seal(Codec::Opus, &opus_frame(60)).expect("seal");
    g[1].open(Codec::Opus, &sealed, 1).expect("first open");
    assert_eq!(
        g[1].open(Codec::Opus, &sealed, 2),
        Err(FrameError::Replayed)
    );
}

#[test]
fn out_of_order_frames_open_once() {
    let mut g = group(2, 1, &SECRET, 0);
    let sealed: Vec<_> = (0..5)
        .map(|_| g[0].seal(Codec::Opus, &opus_frame(20)).expect("seal"))
        .collect();
    for i in [4, 1, 0, 3, 2] {
        g[1].open(Codec::Opus, &sealed[i], 1)
            .expect("open out of order");
    }
    for s in &sealed {
        assert_eq!(g[1].open(Codec::Opus, s, 2), Err(FrameError::Replayed));
    }
}

#[test]
fn failed_open_does_not_poison_the_replay_window() {
    let mut g = group(2, 1, &SECRET, 0);
    let sealed = g[0].seal(Codec::Opus, &opus_frame(60)).expect("seal");
    let mut bad = sealed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        g[1].open(Codec::Opus, &bad, 1),
        Err(FrameError::Authentication)
    );
    g[1].open(Codec::Opus, &sealed, 2)
        .expect("genuine frame still opens");
}

#[test]
fn non_member_forgery_is_refused() {
    let mut g = group(3, 1, &SECRET, 0);
    // an outsider with another secret, claiming to be member 1
    let mut outsider = FrameCrypto::new(FrameConfig::default());
    outsider
        .set_epoch(1, &[0x99; 16], 1, &[0, 1, 2], 0)
        .expect("epoch");
    let forged = outsider
        .seal(Codec::Vp8, &vp8_delta_frame(80))
        .expect("seal");
    assert_eq!(
        g[0].open(Codec::Vp8, &forged, 1),
        Err(FrameError::Authentication)
    );
    // whose frames fail can still be told (as the frame claims it, unauthenticated)
    assert_eq!(g[0].claimed_sender(Codec::Vp8, &forged), Some(1));
    assert_eq!(g[0].claimed_sender(Codec::Opus, &[1, 2, 3]), None);

    // an outsider naming a leaf absent from the epoch
    let mut stranger = FrameCrypto::new(FrameConfig::default());
    stranger
        .set_epoch(1, &[0x99; 16], 7, &[7], 0)
        .expect("epoch");
    let forged = stranger.seal(Codec::Opus, &opus_frame(30)).expect("seal");
    assert_eq!(
        g[0].open(Codec::Opus, &forged, 1),
        Err(FrameError::UnknownSender { leaf: 7 })
    );
}

#[test]
fn previous_epoch_opens_within_grace_only() {
    let mut g = group(3, 1, &SECRET, 0);
    let old_frames: Vec<_> = (0..3)
        .map(|_| g[0].seal(Codec::Opus, &opus_frame(40)).expect("seal"))
        .collect();
    // everyone moves to epoch 2 at t = 1000
    let members = [0, 1, 2];
    for (leaf, c) in g.iter_mut().enumerate() {
        c.set_epoch(2, &SECRET_2, leaf as u32, &members, 1_000)
            .expect("epoch 2");
    }
    let opened = g[1]
        .open(Codec::Opus, &old_frames[0], 2_999)
        .expect("inside grace");
    assert_eq!(opened.epoch, 1);
    assert_eq!(
        g[1].open(Codec::Opus, &old_frames[1], 3_000),
        Err(FrameError::StaleEpoch)
    );
    // the keys are gone for good, even if the clock were to go back
    assert_eq!(
        g[1].open(Codec::Opus, &old_frames[2], 1_500),
        Err(FrameError::StaleEpoch)
    );
    // the new epoch works
    let sealed = g[0].seal(Codec::Opus, &opus_frame(40)).expect("seal");
    assert_eq!(
        g[2].open(Codec::Opus, &sealed, 5_000).expect("open").epoch,
        2
    );
}

#[test]
fn grace_period_is_configurable() {
    let config = FrameConfig {
        grace_ms: 10,
        ..FrameConfig::default()
    };
    let mut a = FrameCrypto::new(config);
    let mut b = FrameCrypto::new(config);
    a.set_epoch(1, &SECRET, 0, &[0, 1], 0).expect("epoch");
    b.set_epoch(1, &SECRET, 1, &[0, 1], 0).expect("epoch");
    let old = a.seal(Codec::Opus, &opus_frame(10)).expect("seal");
    b.set_epoch(2, &SECRET_2, 1, &[0, 1], 100).expect("epoch");
    assert_eq!(b.open(Codec::Opus, &old, 110), Err(FrameError::StaleEpoch));
}

#[test]
fn frames_of_an_epoch_not_yet_installed_are_unknown() {
    let mut g = group(2, 1, &SECRET, 0);
    g[0].set_epoch(2, &SECRET_2, 0, &[0, 1], 10).expect("epoch");
    let sealed = g[0].seal(Codec::Opus, &opus_frame(10)).expect("seal");
    assert_eq!(
        g[1].open(Codec::Opus, &sealed, 11),
        Err(FrameError::UnknownEpoch)
    );
}

#[test]
fn removed_member_cannot_open_the_new_epoch() {
    let mut g = group(3, 1, &SECRET, 0);
    // member 2 is removed: 0 and 1 move to epoch 2 without it, member 2 never gets SECRET_2
    for (leaf, member) in g.iter_mut().enumerate().take(2) {
        member
            .set_epoch(2, &SECRET_2, leaf as u32, &[0, 1], 100)
            .expect("epoch 2");
    }
    let sealed = g[0].seal(Codec::Vp8, &vp8_key_frame(200)).expect("seal");
    assert!(g[2].open(Codec::Vp8, &sealed, 101).is_err());
    // even if it guessed the next epoch number and reused the old secret
    g[2].set_epoch(2, &SECRET, 2, &[0, 1, 2], 100)
        .expect("epoch");
    assert_eq!(
        g[2].open(Codec::Vp8, &sealed, 102),
        Err(FrameError::Authentication)
    );
    // and the remaining members refuse its frames in the new epoch
    let from_removed = g[2].seal(Codec::Opus, &opus_frame(20)).expect("seal");
    assert_eq!(
        g[1].open(Codec::Opus, &from_removed, 103),
        Err(FrameError::UnknownSender { leaf: 2 })
    );
    assert_eq!(
        g[1].open(Codec::Vp8, &sealed, 103)
            .expect("member opens")
            .epoch,
        2
    );
}

#[test]
fn epochs_must_increase() {
    let mut g = group(1, 5, &SECRET, 0);
    assert_eq!(
        g[0].set_epoch(5, &SECRET, 0, &[0], 1),
        Err(FrameError::EpochNotNewer {
            current: 5,
            offered: 5
        })
    );
    assert!(g[0].set_epoch(4, &SECRET, 0, &[0], 1).is_err());
    assert!(matches!(
        g[0].set_epoch(6, &[1; 8], 0, &[0], 1),
        Err(FrameError::InvalidEpoch(_))
    ));
    assert!(matches!(
        g[0].set_epoch(6, &SECRET, 3, &[0], 1),
        Err(FrameError::InvalidEpoch(_))
    ));
}

#[test]
fn too_short_frames_are_refused_on_sealing() {
    let mut g = group(1, 1, &SECRET, 0);
    assert!(matches!(
        g[0].seal(Codec::Vp8, &[]),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        g[0].seal(Codec::Vp8, &vp8_key_frame(10)[..9]),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        g[0].seal(Codec::Vp8, &[0x31, 0]),
        Err(FrameError::Malformed(_))
    ));
    assert!(g[0].seal(Codec::Vp8, &[0x31, 0, 0]).is_ok());
    assert!(g[0].seal(Codec::Opus, &[]).is_ok());
    assert!(g[0].seal(Codec::H264, &[]).is_ok());
}

#[test]
fn truncated_frames_are_errors_at_every_length() {
    let mut g = group(2, 1, &SECRET, 0);
    for (codec, frame) in sample_frames() {
        let sealed = g[0].seal(codec, &frame).expect("seal");
        for len in 0..sealed.len() {
            assert!(
                g[1].open(codec, &sealed[..len], 1).is_err(),
                "{codec:?} truncated to {len} opened"
            );
        }
        g[1].open(codec, &sealed, 1).expect("untruncated opens");
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    let mut g = group(2, 1, &SECRET, 0);
    let frames = vec![
        (Codec::Vp8, vp8_key_frame(60)),
        (Codec::Vp8, vp8_delta_frame(40)),
        (Codec::Opus, opus_frame(30)),
        (Codec::H264, h264_frame(60)),
        (Codec::Av1, payload(30, 5)),
    ];
    for (codec, frame) in frames {
        let sealed = g[0].seal(codec, &frame).expect("seal");
        for i in 0..sealed.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = sealed.clone();
                bad[i] ^= flip;
                assert!(
                    g[1].open(codec, &bad, 1).is_err(),
                    "{codec:?}: flipping byte {i} by {flip:#x} went unnoticed"
                );
            }
        }
        g[1].open(codec, &sealed, 1).expect("genuine opens");
    }
}

#[test]
fn opening_with_the_wrong_codec_fails_cleanly() {
    let mut g = group(2, 1, &SECRET, 0);
    let sealed = g[0].seal(Codec::Vp8, &vp8_key_frame(100)).expect("seal");
    assert!(g[1].open(Codec::Opus, &sealed, 1).is_err());
    assert!(g[1].open(Codec::H264, &sealed, 1).is_err());
    g[1].open(Codec::Vp8, &sealed, 1)
        .expect("right codec opens");
}

#[test]
fn h264_output_contains_no_start_code_after_the_prefix() {
    let mut g = group(2, 1, &SECRET, 0);
    for len in [0usize, 1, 5, 100, 1000] {
        let frame = h264_frame(len);
        for _ in 0..20 {
            let sealed = g[0].seal(Codec::H264, &frame).expect("seal");
            // the prefix ends with the slice header byte 0xb8; after it no 00 00 0x (x <= 2)
            assert!(
                !sealed[25..]
                    .windows(3)
                    .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
                "start code emulated"
            );
            assert_eq!(
                g[1].open(Codec::H264, &sealed, 1).expect("open").frame,
                frame
            );
        }
    }
    // a frame without a slice keeps its leading start code and NAL header only
    let sps_only = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce];
    let sealed = g[0].seal(Codec::H264, &sps_only).expect("seal");
    assert_eq!(&sealed[..5], &sps_only[..5]);
    assert_eq!(
        g[1].open(Codec::H264, &sealed, 1).expect("open").frame,
        sps_only
    );
}

#[test]
fn key_ids_follow_rfc9605_section_5_2() {
    let c = FrameCrypto::new(FrameConfig::default());
    // context 0, leaf << 4 | epoch mod 16
    assert_eq!(c.key_id(0, 0), 0);
    assert_eq!(c.key_id(3, 5), (5 << 4) | 3);
    assert_eq!(c.key_id(17, 5), (5 << 4) | 1);
    assert_eq!(c.key_id(1, u32::MAX), (u64::from(u32::MAX) << 4) | 1);
}

#[test]
fn debug_output_holds_no_key_material() {
    let g = group(2, 1, &SECRET, 0);
    let text = format!("{:?}", g[0]);
    assert!(text.contains("FrameCrypto"));
    assert!(!text.contains("17, 17"));
    assert!(!text.to_lowercase().contains("1111"));
}

#[test]
fn fuzz_entry_point_survives_odd_inputs() {
    for data in [
        &[][..],
        &[0],
        &[0, 0, 1],
        &[0xff; 40],
        &[0, 0, 1, 0x65, 0, 0, 3],
        &[0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        conclave_frame::fuzzing::open_frame(data);
    }
}

#[test]
fn two_quick_epoch_changes_keep_both_previous_epochs_in_grace() {
    let members = [0, 1];
    let mut g = group(2, 1, &SECRET, 0);
    let from_1 = g[0].seal(Codec::Opus, &opus_frame(10)).expect("seal");
    g[0].set_epoch(2, &SECRET_2, 0, &members, 100)
        .expect("epoch");
    let from_2 = g[0].seal(Codec::Opus, &opus_frame(10)).expect("seal");
    for (epoch, secret, t) in [(2, SECRET_2, 100), (3, [0x33; 16], 500)] {
        g[1].set_epoch(epoch, &secret, 1, &members, t)
            .expect("epoch");
    }
    // epoch 1 retired at 100, epoch 2 at 500
    assert_eq!(
        g[1].open(Codec::Opus, &from_1, 2_000).expect("open").epoch,
        1
    );
    assert_eq!(
        g[1].open(Codec::Opus, &from_2, 2_100).expect("open").epoch,
        2
    );
    let again_from_2 = g[0].seal(Codec::Opus, &opus_frame(10)).expect("seal");
    assert_eq!(
        g[1].open(Codec::Opus, &again_from_2, 2_500),
        Err(FrameError::StaleEpoch)
    );
}

#[test]
fn an_epoch_with_the_same_low_bits_replaces_the_old_one_at_once() {
    // E = 4: epoch 17 shares its low bits with epoch 1 (RFC 9605 §5.2 roll-over rule)
    let mut g = group(2, 1, &SECRET, 0);
    let old = g[0].seal(Codec::Opus, &opus_frame(10)).expect("seal");
    g[1].set_epoch(17, &SECRET_2, 1, &[0, 1], 10)
        .expect("epoch");
    assert_eq!(
        g[1].open(Codec::Opus, &old, 11),
        Err(FrameError::Authentication)
    );
    g[0].set_epoch(17, &SECRET_2, 0, &[0, 1], 10)
        .expect("epoch");
    let new = g[0].seal(Codec::Opus, &opus_frame(10)).expect("seal");
    assert_eq!(g[1].open(Codec::Opus, &new, 12).expect("open").epoch, 17);
}

#[test]
fn a_members_screen_is_its_own_stream() {
    use conclave_frame::Source;
    let mut g = group(2, 3, &SECRET, 0);
    let frame = vp8_delta_frame(120);
    // the first frame of each source: counter 0 under a key of its own, both open
    let camera = g[0].seal(Codec::Vp8, &frame).expect("seal");
    let screen = g[0]
        .seal_from(Source::Screen, Codec::Vp8, &frame)
        .expect("seal");
    assert_ne!(camera, screen);
    let opened = g[1].open(Codec::Vp8, &camera, 1).expect("camera");
    assert_eq!((opened.sender_leaf, opened.source), (0, Source::Main));
    let opened = g[1].open(Codec::Vp8, &screen, 1).expect("screen");
    assert_eq!((opened.sender_leaf, opened.source), (0, Source::Screen));
    assert_eq!(opened.frame, frame);
    assert_eq!(
        g[1].open(Codec::Vp8, &screen, 1),
        Err(FrameError::Replayed),
        "each source has its own replay window"
    );
    assert_eq!(
        g[0].source_key_id(3, 5, Source::Screen),
        (1 << 36) | (5 << 4) | 3
    );
    // a context no source uses is refused before any key is tried
    let kid = (2u64 << 36) | 3; // context 2, leaf 0, epoch 3
    let mut forged = frame[..3].to_vec();
    forged.extend(Vec::from(&sframe::header::SframeHeader::new(kid, 0)));
    forged.extend([0u8; 40]);
    assert_eq!(
        g[1].open(Codec::Vp8, &forged, 1),
        Err(FrameError::Malformed("unknown Key ID context"))
    );
}
