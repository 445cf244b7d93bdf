//! Known-answer tests: RFC 9605 Appendix C through the `sframe` primitives this crate builds on,
//! and this crate's own MLS-derived vectors (test_vectors/mls_sframe.json).

mod common;

use common::{hex, to_hex};
use conclave_frame::{Codec, FrameConfig, FrameCrypto};
use serde::{Deserialize, Serialize};
use sframe::{
    frame::{EncryptedFrame, MediaFrame, SingleUseCounter},
    header::SframeHeader,
    key::{DecryptionKey, EncryptionKey},
    CipherSuite,
};

#[derive(Deserialize)]
struct Rfc9605 {
    header: Vec<HeaderVector>,
    sframe: Vec<SframeVector>,
}

#[derive(Deserialize)]
struct HeaderVector {
    kid: u64,
    ctr: u64,
    encoded: String,
}

#[derive(Deserialize)]
struct SframeVector {
    cipher_suite: u16,
    kid: u64,
    ctr: u64,
    base_key: String,
    metadata: String,
    pt: String,
    ct: String,
}

fn rfc9605() -> Rfc9605 {
    serde_json::from_str(include_str!("../test_vectors/rfc9605.json")).expect("vector file parses")
}

fn cipher_suite(id: u16) -> CipherSuite {
    match id {
        1 => CipherSuite::AesCtr128HmacSha256_80,
        2 => CipherSuite::AesCtr128HmacSha256_64,
        3 => CipherSuite::AesCtr128HmacSha256_32,
        4 => CipherSuite::AesGcm128Sha256,
        5 => CipherSuite::AesGcm256Sha512,
        other => panic!("unknown cipher suite {other}"),
    }
}

#[test]
fn rfc9605_c1_header_encodings() {
    let vectors = rfc9605().header;
    assert!(vectors.len() > 200);
    for v in vectors {
        let encoded = hex(&v.encoded);
        let header = SframeHeader::new(v.kid, v.ctr);
        assert_eq!(Vec::from(&header), encoded, "kid {} ctr {}", v.kid, v.ctr);
        let parsed = SframeHeader::deserialize(&encoded).expect("vector header parses");
        assert_eq!((parsed.key_id(), parsed.counter()), (v.kid, v.ctr));
    }
}

#[test]
fn rfc9605_c3_sframe_encryption() {
    let vectors = rfc9605().sframe;
    assert_eq!(vectors.len(), 5);
    for v in vectors {
        let suite = cipher_suite(v.cipher_suite);
        let base_key = hex(&v.base_key);
        let metadata = hex(&v.metadata);
        let pt = hex(&v.pt);
        let ct = hex(&v.ct);

        let enc = EncryptionKey::derive_from(suite, v.kid, &base_key).expect("derive");
        let media =
            MediaFrame::try_with_meta_data(&mut SingleUseCounter::new(v.ctr), &pt, &metadata)
                .expect("frame");
        let sealed = media.encrypt(&enc).expect("encrypt");
        assert_eq!(sealed.meta_data(), metadata.as_slice());
        assert_eq!(to_hex(sealed.sframe_cipher_text()), v.ct, "suite {suite}");

        let dec = DecryptionKey::derive_from(suite, v.kid, &base_key).expect("derive");
        let received = EncryptedFrame::try_with_meta_data(&ct, &metadata).expect("parse");
        let opened = received.decrypt(&dec).expect("decrypt");
        assert_eq!(opened.payload(), pt.as_slice(), "suite {suite}");
    }
}

/// One known-answer vector of this crate: MLS epoch secret, epoch and sender leaf in, Key ID and
/// the sealed first frame (counter 0) out.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct MlsVector {
    epoch_secret: String,
    epoch: u64,
    sender_leaf: u32,
    epoch_bits: u8,
    kid: u64,
    codec: String,
    counter: u64,
    frame: String,
    sealed: String,
}

#[derive(Serialize, Deserialize)]
struct MlsVectorFile {
    _origin: String,
    vectors: Vec<MlsVector>,
}

fn compute(secret: &[u8], epoch: u64, leaf: u32, codec: &str, frame: &[u8]) -> MlsVector {
    let mut sender = FrameCrypto::new(FrameConfig::default());
    sender
        .set_epoch(epoch, secret, leaf, &[leaf], 0)
        .expect("epoch");
    let sealed = sender.seal(Codec::from_name(codec), frame).expect("seal");
    MlsVector {
        epoch_secret: to_hex(secret),
        epoch,
        sender_leaf: leaf,
        epoch_bits: sender.config().epoch_bits,
        kid: sender.key_id(epoch, leaf),
        codec: codec.to_owned(),
        counter: 0,
        frame: to_hex(frame),
        sealed: to_hex(&sealed),
    }
}

/// (epoch secret, epoch, sender leaf, codec name, frame)
type VectorInput = (Vec<u8>, u64, u32, &'static str, Vec<u8>);

fn vector_inputs() -> Vec<VectorInput> {
    let secret_a: Vec<u8> = (0u8..16).collect();
    let secret_b: Vec<u8> = (0u8..32).map(|i| 0xa0 ^ i).collect();
    vec![
        (secret_a.clone(), 0, 0, "opus", hex("78deadbeef0102030405")),
        (
            secret_a.clone(),
            1,
            1,
            "vp8",
            hex("502a019d012a8002e001aabbccddeeff"),
        ),
        (secret_a, 17, 5, "vp8", hex("3102001122334455")),
        (
            secret_b.clone(),
            1234,
            49,
            "h264",
            hex("0000000167420000000165b800000102030000"),
        ),
        (
            secret_b,
            u64::from(u32::MAX) + 3,
            65_535,
            "av1",
            hex("0a0b0c0d0e0f"),
        ),
    ]
}

/// Regenerates test_vectors/mls_sframe.json. Run only when the format deliberately changes:
/// `cargo test -p conclave-frame --test vectors -- --ignored generate`
#[test]
#[ignore = "writes the vector file"]
fn generate_mls_sframe_vectors() {
    let vectors = vector_inputs()
        .into_iter()
        .map(|(s, e, l, c, f)| compute(&s, e, l, c, &f))
        .collect();
    let file = MlsVectorFile {
        _origin: "conclave-frame known answers: SFrame AES_128_GCM_SHA256_128 keys from an MLS \
                  epoch secret per RFC 9605 §5.2 (KID = leaf << epoch_bits | epoch mod \
                  2^epoch_bits, context 0); sealed = clear codec prefix || SFrame ciphertext of \
                  the sender's first frame (counter 0); hex strings."
            .to_owned(),
        vectors,
    };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test_vectors/mls_sframe.json");
    let text = serde_json::to_string_pretty(&file).expect("serialize");
    std::fs::write(path, text + "\n").expect("write vector file");
}

#[test]
fn mls_sframe_known_answers() {
    let file: MlsVectorFile =
        serde_json::from_str(include_str!("../test_vectors/mls_sframe.json")).expect("parses");
    assert_eq!(file.vectors.len(), vector_inputs().len());
    for v in &file.vectors {
        let secret = hex(&v.epoch_secret);
        let frame = hex(&v.frame);
        assert_eq!(v.epoch_bits, FrameConfig::default().epoch_bits);
        let computed = compute(&secret, v.epoch, v.sender_leaf, &v.codec, &frame);
        assert_eq!(&computed, v);

        // and a receiver opens the stored bytes
        let mut receiver = FrameCrypto::new(FrameConfig::default());
        let other = if v.sender_leaf == 0 { 1 } else { 0 };
        receiver
            .set_epoch(v.epoch, &secret, other, &[other, v.sender_leaf], 0)
            .expect("epoch");
        let opened = receiver
            .open(Codec::from_name(&v.codec), &hex(&v.sealed), 0)
            .expect("stored vector opens");
        assert_eq!(opened.frame, frame);
        assert_eq!(opened.sender_leaf, v.sender_leaf);
    }
}
