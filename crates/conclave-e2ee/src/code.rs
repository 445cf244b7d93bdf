//! The short security code every member shows for the current epoch.

use sha2::{Digest, Sha256};

/// Domain separator of the security code hash.
const LABEL: &[u8] = b"conclave-security-code-v1";

/// The security code for an epoch authenticator: SHA-256(`"conclave-security-code-v1"`
/// ‖ `epoch_authenticator`), then for each of the first four 4-byte groups the
/// big-endian `u32` modulo 100000, zero-padded to five digits, joined by spaces
/// (e.g. `"04217 88310 00923 51177"`).
///
/// Members who compare codes out of band (read aloud) and see the same value
/// share the same epoch secrets, hence the same group and membership: a
/// server that forked or tampered with the group cannot make the codes match.
pub fn security_code(epoch_authenticator: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(LABEL)
        .chain_update(epoch_authenticator)
        .finalize();
    let groups: Vec<String> = digest
        .chunks_exact(4)
        .take(4)
        .map(|chunk| {
            let mut word = [0u8; 4];
            word.copy_from_slice(chunk);
            format!("{:05}", u32::from_be_bytes(word) % 100_000)
        })
        .collect();
    groups.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let code = security_code(&[0; 32]);
        assert_eq!(code.len(), 23);
        assert!(code
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        assert_ne!(code, security_code(&[1; 32]));
    }
}
