//! MLS feeding SFrame: members key their frame encryption from the group, open each
//! other's frames, and a removed member cannot open anything sealed after its removal.

mod common;

use common::Harness;
use conclave_e2ee::Session;
use conclave_frame::{Codec, FrameConfig, FrameCrypto, FrameError};

/// Installs the member's current epoch into its frame crypto, as a client does on
/// every `KeyMaterial` event.
fn key(crypto: &mut FrameCrypto, member: &Session, now_ms: u64) {
    let leaves: Vec<u32> = member.members().iter().map(|m| m.leaf).collect();
    crypto
        .set_epoch(
            member.epoch().expect("in the group"),
            member.sframe_epoch_secret().expect("in the group").expose(),
            member.own_leaf().expect("in the group"),
            &leaves,
            now_ms,
        )
        .expect("a fresh epoch installs");
}

const KEY_FRAME: [u8; 24] = [
    0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
    12, 13, 14,
];

#[test]
fn members_open_each_others_frames_and_a_removed_member_opens_none_after() {
    let mut h = Harness::with_members(3);
    h.assert_consistent();
    let mut cryptos: Vec<FrameCrypto> = (1..=3)
        .map(|n| {
            let mut c = FrameCrypto::new(FrameConfig::default());
            key(&mut c, h.member(n), 0);
            c
        })
        .collect();

    for sender in 0..3 {
        let sealed = cryptos[sender].seal(Codec::Vp8, &KEY_FRAME).expect("seal");
        assert_eq!(
            &sealed[..10],
            &KEY_FRAME[..10],
            "VP8 key-frame header stays clear"
        );
        for receiver in (0..3).filter(|r| *r != sender) {
            let opened = cryptos[receiver]
                .open(Codec::Vp8, &sealed, 1)
                .expect("member opens");
            assert_eq!(opened.frame, KEY_FRAME);
            assert_eq!(
                Some(opened.sender_leaf),
                h.member(sender as u8 + 1).own_leaf()
            );
        }
    }

    let code_before = h.member(1).security_code();
    h.propose_remove(3);
    h.commit_by(1);
    assert_ne!(
        h.member(1).security_code(),
        code_before,
        "the code changes on removal"
    );
    assert_eq!(h.member(1).security_code(), h.member(2).security_code());
    for n in 1..=2 {
        key(&mut cryptos[usize::from(n) - 1], h.member(n), 10);
    }

    // Sealed after the removal: member 2 opens it, the removed member 3, still holding
    // every key it ever had, cannot.
    let sealed = cryptos[0].seal(Codec::Vp8, &KEY_FRAME).expect("seal");
    assert_eq!(
        cryptos[1]
            .open(Codec::Vp8, &sealed, 11)
            .expect("opens")
            .frame,
        KEY_FRAME
    );
    let err = cryptos[2]
        .open(Codec::Vp8, &sealed, 11)
        .expect_err("removed member");
    assert!(
        matches!(
            err,
            FrameError::UnknownEpoch
                | FrameError::Authentication
                | FrameError::UnknownSender { .. }
        ),
        "{err:?}"
    );
}
