//! Appending 100,000 entries, and verifying them with a signed head every 1,000.

#![allow(missing_docs)]

use std::hint::black_box;

use conclave_audit::{verify, Chain, Entry, Record, SignedHead};
use conclave_types::Timestamp;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::SigningKey;

const N: u64 = 100_000;
const T0: i64 = 1_795_426_200_000;

fn record(i: u64) -> Record {
    Record {
        actor: format!("user:{:022}", i % 997),
        action: "meeting.join".into(),
        target: format!("meeting:{:022}", i % 101),
        decision: if i % 7 == 0 { "deny" } else { "admit" }.into(),
        reasons: if i % 7 == 0 {
            vec!["untrusted_network_denied".into()]
        } else {
            vec![]
        },
    }
}

fn records() -> Vec<Record> {
    (1..=N).map(record).collect()
}

fn append_all(records: Vec<Record>) -> Vec<Entry> {
    let mut chain = Chain::new();
    records
        .into_iter()
        .zip(0..)
        .map(|(r, i)| chain.append(r, Timestamp::from_unix_millis(T0 + i)))
        .collect()
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N));

    // The records are built outside the timed part: only hashing and chaining count.
    group.bench_function("append_100k", |b| {
        b.iter_batched(
            records,
            |r| black_box(append_all(r)),
            BatchSize::PerIteration,
        )
    });

    let key = SigningKey::from_bytes(&[0x42; 32]);
    let log = append_all(records());
    let heads: Vec<SignedHead> = log
        .iter()
        .filter(|e| e.seq % 1_000 == 0)
        .map(|e| SignedHead::sign(e.seq, e.hash, Timestamp::from_unix_millis(T0), &key))
        .collect();
    let public = key.verifying_key();
    group.bench_function("verify_100k_heads_every_1000", |b| {
        b.iter(|| {
            let report = verify(&log, heads.clone(), public).expect("the log verifies");
            black_box(report)
        })
    });
    group.finish();
}

criterion_group!(chain, benches);
criterion_main!(chain);
