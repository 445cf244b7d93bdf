//! Property tests: random logs verify untouched, any single tampering is caught near
//! where it happened, and JSON round trips preserve entries exactly.

mod common;

use common::*;
use conclave_audit::{verify, Chain, Entry, Hash, HeadSignature, Record, SignedHead};
use conclave_types::Timestamp;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z:._0-9]{1,16}",
        "\\PC{0,12}", // any printable Unicode
        any::<String>(),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        text(),
        text(),
        text(),
        text(),
        prop::collection::vec(text(), 0..4),
    )
        .prop_map(|(actor, action, target, decision, reasons)| Record {
            actor,
            action,
            target,
            decision,
            reasons,
        })
}

/// Records with strictly increasing times (so no two entries have equal contents).
fn records() -> impl Strategy<Value = Vec<(Record, i64)>> {
    prop::collection::vec((record(), 1i64..100_000), 1..200).prop_map(|v| {
        let mut t = T0;
        v.into_iter()
            .map(|(r, gap)| {
                t += gap;
                (r, t)
            })
            .collect()
    })
}

fn build(records: &[(Record, i64)]) -> Vec<Entry> {
    let mut chain = Chain::new();
    records
        .iter()
        .map(|(r, t)| chain.append(r.clone(), Timestamp::from_unix_millis(*t)))
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Change a field (0..8) of entry `at` without fixing its hash.
    Edit { at: usize, field: u8 },
    /// Change a string field and recompute that entry's hash.
    EditRehash { at: usize, field: u8 },
    /// Remove the row.
    Delete { at: usize },
    /// Store a second copy of the row right after it.
    Duplicate { at: usize },
    /// Insert a well-formed forged entry with seq at+1 after row `at`, keeping the rest.
    InsertLinked { at: usize },
    /// Swap the rows at `at` and `at + 1`.
    SwapRows { at: usize },
    /// Swap the contents of two entries but keep each position's seq.
    SwapContents { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are arbitrary and resolved against the log length in `apply`.
    (0u8..7, 0u8..8, any::<usize>(), any::<usize>()).prop_map(|(kind, field, at, b)| match kind {
        0 => Mutation::Edit { at, field },
        1 => Mutation::EditRehash {
            at,
            field: field % 5,
        },
        2 => Mutation::Delete { at },
        3 => Mutation::Duplicate { at },
        4 => Mutation::InsertLinked { at },
        5 => Mutation::SwapRows { at },
        _ => Mutation::SwapContents { a: at, b },
    })
}

fn edit_string(e: &mut Entry, field: u8) {
    match field {
        0 => e.actor.push('x'),
        1 => e.action.push('é'),
        2 => e.target.push('\u{0}'),
        3 => e.decision.push('!'),
        _ => e.reasons.push(String::new()),
    }
}

/// Applies the mutation; returns the 1-based seq it is about, or None if it does not
/// apply to a log this short.
fn apply(log: &mut Vec<Entry>, m: &Mutation) -> Option<u64> {
    let n = log.len();
    match *m {
        Mutation::Edit { at, field } => {
            let i = at % n;
            let e = &mut log[i];
            match field {
                0..=4 => edit_string(e, field),
                5 => e.time = Timestamp::from_unix_millis(e.time.unix_millis() + 1),
                6 => e.prev_hash.0[at % 32] ^= 0x80,
                _ => e.hash.0[at % 32] ^= 1,
            }
            Some(i as u64 + 1)
        }
        Mutation::EditRehash { at, field } => {
            let i = at % n;
            edit_string(&mut log[i], field);
            log[i].hash = log[i].compute_hash();
            Some(i as u64 + 1)
        }
        Mutation::Delete { at } => {
            let i = at % n;
            log.remove(i);
            Some(i as u64 + 1)
        }
        Mutation::Duplicate { at } => {
            let i = at % n;
            let copy = log[i].clone();
            log.insert(i + 1, copy);
            Some(i as u64 + 1)
        }
        Mutation::InsertLinked { at } => {
            // Appending after the last entry is indistinguishable from a real append
            // (documented limit), so only insert before the last entry.
            if n < 2 {
                return None;
            }
            let i = at % (n - 1);
            let mut f = log[i].clone();
            f.seq += 1;
            f.actor = "forged".into();
            f.prev_hash = log[i].hash;
            f.hash = f.compute_hash();
            log.insert(i + 1, f);
            Some(i as u64 + 2)
        }
        Mutation::SwapRows { at } => {
            if n < 2 {
                return None;
            }
            let i = at % (n - 1);
            log.swap(i, i + 1);
            Some(i as u64 + 1)
        }
        Mutation::SwapContents { a, b } => {
            let (a, b) = (a % n, b % n);
            if a == b {
                return None;
            }
            log.swap(a, b);
            let (sa, sb) = (log[a].seq, log[b].seq);
            log[a].seq = sb;
            log[b].seq = sa;
            Some(a.min(b) as u64 + 1)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn untouched_logs_verify(records in records(), every in 1u64..50) {
        let log = build(&records);
        let mut heads = heads_every(&log, every);
        heads.push(head_at(&log, log.len() as u64));
        let report = verify(&log, heads, public()).expect("untouched log verifies");
        prop_assert_eq!(report.entries, log.len() as u64);
        prop_assert_eq!(report.last_signed_seq, Some(log.len() as u64));
        prop_assert!(verify(&log, vec![], public()).is_ok());
    }

    #[test]
    fn any_single_mutation_is_caught_nearby(records in records(), m in mutation()) {
        let mut log = build(&records);
        // The writer signs the head at the end: without it, tail rewrites are undetectable.
        let heads = vec![head_at(&log, log.len() as u64)];
        let Some(pos) = apply(&mut log, &m) else { return Ok(()) };
        let err = verify(&log, heads, public()).expect_err("tampering must be detected");
        prop_assert!(
            err.seq.abs_diff(pos) <= 1,
            "mutation {:?} at {} reported as {}", m, pos, err
        );
    }

    #[test]
    fn record_and_entry_json_round_trip(record in record(), t in 0i64..253_402_300_799_999) {
        let json = serde_json::to_string(&record).expect("serialises");
        let back: Record = serde_json::from_str(&json).expect("parses");
        prop_assert_eq!(&back, &record);

        let mut chain = Chain::new();
        let entry = chain.append(back, Timestamp::from_unix_millis(t));
        let json = serde_json::to_string(&entry).expect("serialises");
        let back: Entry = serde_json::from_str(&json).expect("parses");
        prop_assert_eq!(&back, &entry);
        prop_assert_eq!(back.compute_hash(), back.hash);
        prop_assert!(verify([&back], vec![], public()).is_ok());
    }

    #[test]
    fn arbitrary_input_never_panics(
        seqs in prop::collection::vec(any::<u64>(), 0..20),
        times in prop::collection::vec(any::<i64>(), 20),
        hashes in prop::collection::vec(any::<[u8; 32]>(), 40),
        head_seqs in prop::collection::vec(any::<u64>(), 0..4),
        sig in any::<u8>(),
        s in text(),
    ) {
        let log: Vec<Entry> = seqs.iter().enumerate().map(|(i, &seq)| Entry {
            seq,
            time: Timestamp::from_unix_millis(times[i]),
            actor: s.clone(),
            action: String::new(),
            target: s.clone(),
            decision: String::new(),
            reasons: vec![s.clone()],
            prev_hash: Hash(hashes[2 * i]),
            hash: Hash(hashes[2 * i + 1]),
        }).collect();
        let heads: Vec<SignedHead> = head_seqs.iter().map(|&seq| SignedHead {
            seq,
            hash: Hash(hashes[0]),
            signed_at: Timestamp::from_unix_millis(times[0]),
            signature: HeadSignature([sig; 64]),
        }).collect();
        let _ = verify(&log, heads, public());
        let mut chain = Chain::resume(log.last());
        let _ = chain.append(Record {
            actor: s.clone(), action: s.clone(), target: s.clone(), decision: s, reasons: vec![],
        }, Timestamp::from_unix_millis(times[1]));
    }

    #[test]
    fn hash_parsing_never_panics(s in any::<String>()) {
        let _ = s.parse::<Hash>();
        let _ = serde_json::from_str::<SignedHead>(&s);
        let _ = serde_json::from_str::<Entry>(&s);
    }
}
