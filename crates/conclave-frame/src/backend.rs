//! AES-128-GCM for the `sframe` crate, keyed once per sender and epoch.
//!
//! `sframe`'s built-in `rust-crypto` backend keeps the raw key bytes and builds a fresh
//! `Aes128Gcm` (AES key schedule and GHASH key) for every frame. For a 100-byte audio frame
//! that setup costs more than the encryption itself, and in WebAssembly, where AES runs in
//! software, several times more. `sframe` is built for pluggable crypto backends
//! (`GenericEncryptionKey<A, D>` over its `AeadEncrypt`/`AeadDecrypt`/`KeyDerivation`
//! traits), so this module is such a backend whose secret *is* the keyed cipher: the schedule
//! is computed once in [`KeyDerivation::expand_from`] and reused for every frame.
//!
//! Everything else stays `sframe`'s: header encoding, AAD layout, buffers, replay windows and
//! the RFC 9605 §4.4.2 HKDF labels ([`get_hkdf_key_expand_label`],
//! [`get_hkdf_salt_expand_label`]). The crate's tests check this backend against `sframe`'s
//! own on RFC 9605's vectors and on random frames in both directions.

use aes_gcm::{aead::AeadInOut, Aes128Gcm, KeyInit};
use hkdf::SimpleHkdf;
use sframe::{
    crypto::{
        get_hkdf_key_expand_label, get_hkdf_salt_expand_label, AeadDecrypt, AeadEncrypt,
        DecryptionBufferView, EncryptionBufferView, KeyDerivation,
    },
    error::SframeError,
    header::{Counter, KeyId},
    key::{GenericDecryptionKey, GenericEncryptionKey},
    CipherSuite,
};
use sha2_sframe::Sha256;
use zeroize::Zeroize;

/// `AES_128_GCM_SHA256_128` key length (`Nk`).
const KEY_LEN: usize = 16;
/// `AES_128_GCM_SHA256_128` nonce length (`Nn`).
const NONCE_LEN: usize = 12;
/// `AES_128_GCM_SHA256_128` tag length (`Nt`).
const TAG_LEN: usize = 16;

/// The backend marker: AEAD and key derivation for `AES_128_GCM_SHA256_128` only, the one
/// suite Conclave uses (every other suite is refused with `UnsupportedCipherSuite`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Aes128GcmBackend;

impl TryFrom<CipherSuite> for Aes128GcmBackend {
    type Error = SframeError;

    fn try_from(suite: CipherSuite) -> Result<Self, SframeError> {
        match suite {
            CipherSuite::AesGcm128Sha256 => Ok(Self),
            _ => Err(SframeError::UnsupportedCipherSuite),
        }
    }
}

/// One sender's `sframe_key` (as a keyed cipher; the AES crate zeroizes its key schedule on
/// drop) and `sframe_salt` (zeroized on drop here).
#[derive(Clone)]
pub(crate) struct KeyedSecret {
    cipher: Aes128Gcm,
    salt: [u8; NONCE_LEN],
}

impl Drop for KeyedSecret {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl KeyedSecret {
    /// RFC 9605 §4.4.3: the salt XOR the counter, big-endian, right-aligned.
    fn nonce(&self, counter: Counter) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
        let mut nonce = self.salt;
        let counter = counter.to_be_bytes();
        let offset = NONCE_LEN - counter.len();
        for (byte, c) in nonce.iter_mut().skip(offset).zip(counter) {
            *byte ^= c;
        }
        nonce.into()
    }
}

impl KeyDerivation for Aes128GcmBackend {
    type Secret = KeyedSecret;

    /// RFC 9605 §4.4.2: `sframe_secret = HKDF-Extract("", base_key)`, then the key and salt
    /// expanded with the labels that name the Key ID and cipher suite.
    fn expand_from<M, K>(
        suite: CipherSuite,
        key_material: M,
        key_id: K,
    ) -> Result<KeyedSecret, SframeError>
    where
        M: AsRef<[u8]>,
        K: Into<KeyId>,
    {
        Self::try_from(suite)?;
        let key_id = key_id.into();
        let hkdf = SimpleHkdf::<Sha256>::new(None, key_material.as_ref());
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; NONCE_LEN];
        hkdf.expand(&get_hkdf_key_expand_label(key_id, suite), &mut key)
            .and_then(|()| hkdf.expand(&get_hkdf_salt_expand_label(key_id, suite), &mut salt))
            .map_err(|_| SframeError::KeyDerivationFailure)?;
        let cipher = Aes128Gcm::new(&key.into());
        key.zeroize();
        Ok(KeyedSecret { cipher, salt })
    }
}

impl AeadEncrypt for Aes128GcmBackend {
    type Secret = KeyedSecret;

    fn encrypt<'a, B>(
        &self,
        secret: &KeyedSecret,
        buffer: B,
        counter: Counter,
    ) -> Result<(), SframeError>
    where
        B: Into<EncryptionBufferView<'a>>,
    {
        let view = buffer.into();
        if view.tag.len() != TAG_LEN {
            return Err(SframeError::EncryptionFailure);
        }
        let tag = secret
            .cipher
            .encrypt_inout_detached(&secret.nonce(counter), view.aad, view.data.into())
            .map_err(|_| SframeError::EncryptionFailure)?;
        view.tag.copy_from_slice(&tag);
        Ok(())
    }
}

impl AeadDecrypt for Aes128GcmBackend {
    type Secret = KeyedSecret;

    fn decrypt<'a, B>(
        &self,
        secret: &KeyedSecret,
        buffer: B,
        counter: Counter,
    ) -> Result<(), SframeError>
    where
        B: Into<DecryptionBufferView<'a>>,
    {
        let view = buffer.into();
        let Some(split) = view.data.len().checked_sub(TAG_LEN) else {
            return Err(SframeError::DecryptionFailure);
        };
        let (data, tag) = view.data.split_at_mut(split);
        let tag = aes_gcm::Tag::try_from(&*tag).map_err(|_| SframeError::DecryptionFailure)?;
        secret
            .cipher
            .decrypt_inout_detached(&secret.nonce(counter), view.aad, data.into(), &tag)
            .map_err(|_| SframeError::DecryptionFailure)
    }
}

/// A sending key on this backend.
pub(crate) type SendKey = GenericEncryptionKey<Aes128GcmBackend, Aes128GcmBackend>;
/// A receiving key on this backend.
pub(crate) type ReceiveKey = GenericDecryptionKey<Aes128GcmBackend, Aes128GcmBackend>;

#[cfg(test)]
mod tests {
    use super::*;
    use sframe::frame::{EncryptedFrameView, MediaFrameView, SingleUseCounter};
    use sframe::key::{DecryptionKey, EncryptionKey};

    const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;

    fn seal<A, D>(
        key: &GenericEncryptionKey<A, D>,
        counter: u64,
        meta: &[u8],
        frame: &[u8],
    ) -> Vec<u8>
    where
        A: AeadEncrypt<Secret = D::Secret>,
        D: KeyDerivation,
    {
        let mut counter = SingleUseCounter::new(counter);
        let media = MediaFrameView::try_with_meta_data(&mut counter, frame, meta).expect("counter");
        let mut out = Vec::new();
        media.encrypt_into(key, &mut out).expect("seal");
        // the output starts with the metadata; the SFrame part follows
        out.split_off(meta.len())
    }

    fn open<A, D>(key: &GenericDecryptionKey<A, D>, meta: &[u8], sealed: &[u8]) -> Option<Vec<u8>>
    where
        A: AeadDecrypt<Secret = D::Secret>,
        D: KeyDerivation,
    {
        let view = EncryptedFrameView::try_with_meta_data(sealed, meta).ok()?;
        let mut out = Vec::new();
        view.decrypt_into(key, &mut out).ok()?;
        // the output starts with the metadata again
        Some(out.split_off(meta.len()))
    }

    #[test]
    fn matches_the_reference_backend_both_ways() {
        let mut runner = proptest::test_runner::TestRunner::default();
        let strategy = (
            proptest::collection::vec(proptest::num::u8::ANY, 1..64),
            proptest::num::u64::ANY,
            proptest::num::u64::ANY,
            proptest::collection::vec(proptest::num::u8::ANY, 0..8),
            proptest::collection::vec(proptest::num::u8::ANY, 0..2_000),
        );
        runner
            .run(&strategy, |(material, kid, counter, meta, frame)| {
                let ours = SendKey::derive_from(SUITE, kid, &material).expect("derive");
                let reference = EncryptionKey::derive_from(SUITE, kid, &material).expect("derive");
                let sealed = seal(&ours, counter, &meta, &frame);
                proptest::prop_assert_eq!(&sealed, &seal(&reference, counter, &meta, &frame));

                let ours = ReceiveKey::derive_from(SUITE, kid, &material).expect("derive");
                let reference = DecryptionKey::derive_from(SUITE, kid, &material).expect("derive");
                proptest::prop_assert_eq!(open(&ours, &meta, &sealed), Some(frame.clone()));
                proptest::prop_assert_eq!(open(&reference, &meta, &sealed), Some(frame));

                let mut forged = sealed.clone();
                let last = forged.len() - 1;
                forged[last] ^= 1;
                proptest::prop_assert_eq!(open(&ours, &meta, &forged), None);
                Ok(())
            })
            .expect("backends agree");
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn rfc_9605_vector() {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../test_vectors/rfc9605.json")).expect("parses");
        let vector = file["sframe"]
            .as_array()
            .expect("sframe vectors")
            .iter()
            .find(|v| v["cipher_suite"] == 4)
            .expect("the AES_128_GCM_SHA256_128 vector");
        let field = |name: &str| unhex(vector[name].as_str().expect("hex string"));
        let kid = vector["kid"].as_u64().expect("kid");
        let counter = vector["ctr"].as_u64().expect("ctr");
        let (metadata, ct) = (field("metadata"), field("ct"));

        let key = SendKey::derive_from(SUITE, kid, field("base_key")).expect("derive");
        let sealed = seal(&key, counter, &metadata, &field("pt"));
        assert_eq!(sealed, ct);
        let key = ReceiveKey::derive_from(SUITE, kid, field("base_key")).expect("derive");
        assert_eq!(open(&key, &metadata, &ct), Some(field("pt")));
    }

    #[test]
    fn other_suites_are_refused() {
        assert!(matches!(
            SendKey::derive_from(CipherSuite::AesGcm256Sha512, 1u64, [0u8; 32]),
            Err(SframeError::UnsupportedCipherSuite)
        ));
    }
}
