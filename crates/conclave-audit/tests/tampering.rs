//! Every kind of tampering an attacker with write access to the database might try,
//! and the exact error the verifier reports for it.

mod common;

use common::*;
use conclave_audit::{verify, Entry, Hash, Problem, SignedHead, Verifier, VerifyError};
use conclave_types::Timestamp;

const N: u64 = 1_000;

fn err(seq: u64, problem: Problem) -> Result<conclave_audit::VerifyReport, VerifyError> {
    Err(VerifyError { seq, problem })
}

fn check(
    log: &[Entry],
    heads: Vec<SignedHead>,
) -> Result<conclave_audit::VerifyReport, VerifyError> {
    verify(log, heads, public())
}

#[test]
fn untouched_log_of_1000_verifies() {
    let log = build_log(N);
    let heads = heads_every(&log, 100);
    let report = check(&log, heads).expect("untouched log verifies");
    assert_eq!(report.entries, N);
    assert_eq!(report.head, Some((N, log[N as usize - 1].hash)));
    assert_eq!(report.signed_heads, 10);
    assert_eq!(report.last_signed_seq, Some(N));
}

#[test]
fn heads_may_come_in_any_order() {
    let log = build_log(50);
    let mut heads = heads_every(&log, 10);
    heads.reverse();
    heads.push(head_at(&log, 20)); // a duplicate head is fine
    let report = check(&log, heads).expect("verifies");
    assert_eq!(report.signed_heads, 6);
    assert_eq!(report.last_signed_seq, Some(50));
}

#[test]
fn empty_log_without_heads_verifies() {
    let report = check(&[], vec![]).expect("empty log verifies");
    assert_eq!(report.entries, 0);
    assert_eq!(report.head, None);
    assert_eq!(report.signed_heads, 0);
    assert_eq!(report.last_signed_seq, None);
}

#[test]
fn empty_log_with_a_head_is_truncated() {
    let log = build_log(3);
    assert_eq!(
        check(&[], vec![head_at(&log, 3)]),
        err(1, Problem::Truncated { last: 0, signed: 3 })
    );
}

#[test]
fn head_for_the_empty_log() {
    let key = org_key();
    let zero = SignedHead::sign(0, Hash::ZERO, Timestamp::from_unix_millis(T0), &key);
    let report = check(&[], vec![zero.clone()]).expect("empty log, signed empty");
    assert_eq!(report.last_signed_seq, Some(0));
    let log = build_log(3);
    check(&log, vec![zero]).expect("a head for seq 0 stays true as the log grows");
    let bogus = SignedHead::sign(0, Hash([1; 32]), Timestamp::from_unix_millis(T0), &key);
    assert_eq!(check(&log, vec![bogus]), err(0, Problem::HeadMismatch));
}

#[test]
fn edit_without_fixing_the_hash() {
    let mut log = build_log(N);
    log[499].decision = "admit".into();
    assert_eq!(check(&log, vec![]), err(500, Problem::ContentsAltered));

    let mut log = build_log(N);
    log[0].time = Timestamp::from_unix_millis(0);
    assert_eq!(check(&log, vec![]), err(1, Problem::ContentsAltered));

    let mut log = build_log(N);
    log[999].reasons.push("forged".into());
    assert_eq!(check(&log, vec![]), err(1000, Problem::ContentsAltered));

    // Editing the stored hash alone is also an edit of this entry.
    let mut log = build_log(N);
    log[10].hash = Hash([0xee; 32]);
    assert_eq!(check(&log, vec![]), err(11, Problem::ContentsAltered));

    // So is editing prev_hash without re-hashing.
    let mut log = build_log(N);
    log[10].prev_hash = Hash::ZERO;
    assert_eq!(check(&log, vec![]), err(11, Problem::ContentsAltered));
}

#[test]
fn edit_and_recompute_that_entrys_hash() {
    let mut log = build_log(N);
    log[499].actor = "user:someone-else".into();
    log[499].hash = log[499].compute_hash();
    // Entry 500 is now self-consistent; the break shows at the next entry.
    assert_eq!(check(&log, vec![]), err(501, Problem::BrokenLink));
}

#[test]
fn edit_last_entry_and_recompute_hash_needs_a_head() {
    let mut log = build_log(N);
    let heads = vec![head_at(&log, N)];
    log[999].actor = "user:someone-else".into();
    log[999].hash = log[999].compute_hash();
    // Nothing follows it, so only the chain cannot tell ...
    check(&log, vec![]).expect("limit: the unsigned tail can be rewritten");
    // ... but the signed head can.
    assert_eq!(check(&log, heads), err(1000, Problem::HeadMismatch));
}

#[test]
fn edit_and_recompute_the_whole_chain_after_it() {
    let mut log = build_log(N);
    let heads = heads_every(&log, 100);
    log[449].decision = "admit".into();
    rechain_from(&mut log, 449);
    // Every local check passes; the first signed head after the edit catches it.
    check(&log, vec![]).expect("a consistent rewrite passes without heads");
    assert_eq!(check(&log, heads), err(500, Problem::HeadMismatch));
}

#[test]
fn delete_a_middle_entry() {
    let mut log = build_log(N);
    log.remove(499);
    assert_eq!(
        check(&log, vec![]),
        err(501, Problem::OutOfSequence { expected: 500 })
    );
}

#[test]
fn delete_a_middle_entry_and_renumber() {
    let mut log = build_log(N);
    log.remove(499);
    renumber_from(&mut log, 499);
    assert_eq!(check(&log, vec![]), err(500, Problem::ContentsAltered));

    // And re-hash the renumbered entries but keep their links: the link breaks.
    let mut log = build_log(N);
    log.remove(499);
    renumber_from(&mut log, 499);
    for e in &mut log[499..] {
        e.hash = e.compute_hash();
    }
    assert_eq!(check(&log, vec![]), err(500, Problem::BrokenLink));
}

#[test]
fn delete_the_first_entry() {
    let mut log = build_log(N);
    log.remove(0);
    assert_eq!(
        check(&log, vec![]),
        err(2, Problem::OutOfSequence { expected: 1 })
    );
}

#[test]
fn insert_a_forged_entry() {
    let log = build_log(N);
    let mut forged = log[499].clone();
    forged.decision = "admit".into();
    forged.hash = forged.compute_hash();

    // A second row claiming seq 500.
    let mut dup = log.clone();
    dup.insert(500, forged.clone());
    assert_eq!(
        check(&dup, vec![]),
        err(500, Problem::OutOfSequence { expected: 501 })
    );

    // A well-formed entry 501 linked to 500, with the old 501 left in place.
    let mut ins = log.clone();
    let mut f = forged.clone();
    f.seq = 501;
    f.prev_hash = log[499].hash;
    f.hash = f.compute_hash();
    ins.insert(500, f);
    assert_eq!(
        check(&ins, vec![]),
        err(501, Problem::OutOfSequence { expected: 502 })
    );

    // The same, with the rest renumbered (but not re-hashed).
    let mut ren = ins.clone();
    renumber_from(&mut ren, 501);
    assert_eq!(check(&ren, vec![]), err(502, Problem::ContentsAltered));

    // Fully re-chained: only a signed head tells.
    let heads = heads_every(&log, 100);
    let mut full = ren.clone();
    rechain_from(&mut full, 501);
    check(&full, vec![]).expect("a consistent rewrite passes without heads");
    assert_eq!(check(&full, heads), err(600, Problem::HeadMismatch));
}

#[test]
fn swap_two_entries_contents_keeping_seq_order() {
    let mut log = build_log(N);
    let (a, b) = (log[299].clone(), log[599].clone());
    log[299] = Entry { seq: 300, ..b };
    log[599] = Entry { seq: 600, ..a };
    assert_eq!(check(&log, vec![]), err(300, Problem::ContentsAltered));
}

#[test]
fn swap_two_rows_positions() {
    let mut log = build_log(N);
    log.swap(299, 599);
    assert_eq!(
        check(&log, vec![]),
        err(600, Problem::OutOfSequence { expected: 300 })
    );

    let mut log = build_log(N);
    log.swap(299, 300);
    assert_eq!(
        check(&log, vec![]),
        err(301, Problem::OutOfSequence { expected: 300 })
    );
}

#[test]
fn truncate_the_tail_behind_a_signed_head() {
    let mut log = build_log(N);
    let heads = heads_every(&log, 100);
    log.truncate(950);
    assert_eq!(
        check(&log, heads),
        err(
            951,
            Problem::Truncated {
                last: 950,
                signed: 1000
            }
        )
    );
}

#[test]
fn truncate_the_tail_not_covered_by_a_head_verifies() {
    // Documented limit: entries after the last signed head can be removed unnoticed.
    let mut log = build_log(N);
    let heads: Vec<_> = heads_every(&log, 300); // 300, 600, 900
    log.truncate(950);
    let report = check(&log, heads).expect("limit: the unsigned tail is unprotected");
    assert_eq!(report.entries, 950);
    assert_eq!(report.last_signed_seq, Some(900));
}

#[test]
fn forged_head_signature() {
    let log = build_log(N);
    let mut heads = heads_every(&log, 100);
    heads[4].signature.0[0] ^= 1; // the head for seq 500
    assert_eq!(check(&log, heads), err(500, Problem::BadHeadSignature));

    // A head signed by another key.
    let mut heads = heads_every(&log, 100);
    let e = &log[699];
    heads.push(SignedHead::sign(
        e.seq,
        e.hash,
        Timestamp::from_unix_millis(T0),
        &other_key(),
    ));
    assert_eq!(check(&log, heads), err(700, Problem::BadHeadSignature));

    // A valid signature whose fields were edited.
    let mut heads = heads_every(&log, 100);
    heads[2].signed_at = Timestamp::from_unix_millis(0);
    assert_eq!(check(&log, heads), err(300, Problem::BadHeadSignature));

    // Bad heads are reported before entry problems, even for an empty log.
    let mut tampered = build_log(N);
    tampered[0].actor.clear();
    let mut heads = heads_every(&log, 100);
    heads[9].signature = conclave_audit::HeadSignature([0xff; 64]);
    assert_eq!(
        check(&tampered, heads.clone()),
        err(1000, Problem::BadHeadSignature)
    );
    assert_eq!(check(&[], heads), err(1000, Problem::BadHeadSignature));
}

#[test]
fn a_head_for_a_forged_hash() {
    // A validly signed head that does not match (e.g. from a different log).
    let log = build_log(10);
    let head = SignedHead::sign(
        5,
        Hash([5; 32]),
        Timestamp::from_unix_millis(T0),
        &org_key(),
    );
    assert_eq!(check(&log, vec![head]), err(5, Problem::HeadMismatch));
}

#[test]
fn the_verifier_stays_failed() {
    let mut log = build_log(10);
    log[3].target.push('!');
    let mut v = Verifier::new(public(), vec![]);
    for e in &log[..3] {
        v.push(e).expect("entries before the edit are fine");
    }
    let first = v.push(&log[3]).expect_err("edited");
    assert_eq!(
        first,
        VerifyError {
            seq: 4,
            problem: Problem::ContentsAltered
        }
    );
    assert_eq!(v.push(&log[4]), Err(first.clone()));
    assert_eq!(v.finish(), Err(first));
}

#[test]
fn error_messages_name_the_entry() {
    let e = VerifyError {
        seq: 951,
        problem: Problem::Truncated {
            last: 950,
            signed: 1000,
        },
    };
    assert_eq!(
        e.to_string(),
        "audit entry 951: the log ends at entry 950 but entry 1000 was signed \
         (entries were removed from the end)"
    );
    let e = VerifyError {
        seq: 7,
        problem: Problem::OutOfSequence { expected: 6 },
    };
    assert_eq!(
        e.to_string(),
        "audit entry 7: expected entry 6 here (entries were deleted, inserted or reordered)"
    );
}

#[test]
fn resumed_chain_continues_a_verifiable_log() {
    let mut log = build_log(20);
    let mut chain = conclave_audit::Chain::resume(log.last());
    assert_eq!(chain.next_seq(), 21);
    for i in 21..=30 {
        log.push(chain.append(record(i), Timestamp::from_unix_millis(T0 + i as i64)));
    }
    let heads = vec![head_at(&log, 20), head_at(&log, 30)];
    assert_eq!(check(&log, heads).expect("verifies").entries, 30);
}
