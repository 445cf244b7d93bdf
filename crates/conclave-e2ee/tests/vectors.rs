//! Layer 3: the security code test vectors.

#![allow(clippy::unwrap_used, missing_docs)]

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn security_code_vectors() {
    let text = include_str!("../test_vectors/security_code.json");
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    let vectors = json["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 3);
    for v in vectors {
        let auth = hex(v["epoch_authenticator"].as_str().unwrap());
        let expected = v["security_code"].as_str().unwrap();
        assert_eq!(conclave_e2ee::security_code(&auth), expected);
    }
}
