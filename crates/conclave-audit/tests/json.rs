//! The JSON shapes the server exports (JSON lines) and reads back.

mod common;

use common::*;
use conclave_audit::{verify, Entry, Hash, HeadSignature, SignedHead, VerifyReport};
use serde_json::{json, Value};

#[test]
fn entry_serialises_with_rfc3339_time_and_hex_hashes() {
    let log = build_log(2);
    let v: Value = serde_json::to_value(&log[1]).expect("serialises");
    assert_eq!(v["seq"], json!(2));
    assert_eq!(v["time"], json!("2026-11-23T09:30:02Z"));
    assert_eq!(v["actor"], json!("user:0000000000000000000002"));
    assert_eq!(v["reasons"], json!([]));
    assert_eq!(v["prev_hash"], json!(log[0].hash.to_string()));
    let hash = v["hash"].as_str().expect("hash is a string");
    assert_eq!(hash.len(), 64);
    assert!(hash
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(hash.parse::<Hash>(), Ok(log[1].hash));

    let first: Value = serde_json::to_value(&log[0]).expect("serialises");
    assert_eq!(first["prev_hash"], json!("0".repeat(64)));
}

#[test]
fn json_lines_round_trip_and_still_verify() {
    let log = build_log(100);
    let heads = heads_every(&log, 25);
    let lines: String = log
        .iter()
        .map(|e| serde_json::to_string(e).expect("serialises") + "\n")
        .collect();
    let back: Vec<Entry> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("parses"))
        .collect();
    assert_eq!(back, log);

    let heads_json = serde_json::to_string(&heads).expect("serialises");
    let heads_back: Vec<SignedHead> = serde_json::from_str(&heads_json).expect("parses");
    assert_eq!(heads_back, heads);
    verify(&back, heads_back, public()).expect("verifies after the round trip");
}

#[test]
fn signed_head_shape() {
    let log = build_log(3);
    let head = head_at(&log, 3);
    let v: Value = serde_json::to_value(&head).expect("serialises");
    assert_eq!(v["seq"], json!(3));
    assert_eq!(v["signed_at"], json!("2026-11-23T09:30:03.001Z"));
    let sig = v["signature"].as_str().expect("signature is a string");
    assert_eq!(sig.len(), 128);
    assert!(format!("{:?}", head.signature).contains(sig));
}

#[test]
fn malformed_hex_is_an_error_not_a_panic() {
    let log = build_log(1);
    let mut v: Value = serde_json::to_value(&log[0]).expect("serialises");
    v["hash"] = json!("zz");
    assert!(serde_json::from_value::<Entry>(v.clone()).is_err());
    v["hash"] = json!(42);
    assert!(serde_json::from_value::<Entry>(v).is_err());

    let head = head_at(&log, 1);
    let mut v: Value = serde_json::to_value(&head).expect("serialises");
    v["signature"] = json!("ab".repeat(63));
    assert!(serde_json::from_value::<SignedHead>(v.clone()).is_err());
    v["signature"] = json!("AB".repeat(64));
    let parsed: SignedHead = serde_json::from_value(v).expect("upper-case hex parses");
    assert_eq!(parsed.signature, HeadSignature([0xab; 64]));
}

#[test]
fn report_serialises() {
    let log = build_log(5);
    let report: VerifyReport = verify(&log, vec![head_at(&log, 4)], public()).expect("verifies");
    let v: Value = serde_json::to_value(&report).expect("serialises");
    assert_eq!(v["entries"], json!(5));
    assert_eq!(v["head"], json!([5, log[4].hash.to_string()]));
    assert_eq!(v["signed_heads"], json!(1));
    assert_eq!(v["last_signed_seq"], json!(4));
}
