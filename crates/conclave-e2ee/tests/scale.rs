//! Layer 2 at meeting size: groups of 50 built through the server's external
//! Adds and the delivery service's ordering, then a leave, a commit race and a
//! removed member's view.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use conclave_e2ee::{Event, Input, Output, Verdict};

const SIZE: u8 = 50;

/// Members `1..=50`: the first ten join one at a time (each committed by the
/// creator), the other forty in batches of eight, each batch committed by a
/// different member, as the server does for a burst of admissions.
fn fifty() -> Harness {
    let mut h = Harness::new(1);
    for n in 2..=10u8 {
        h.join(n);
    }
    h.assert_consistent();
    for first in (11..=SIZE).step_by(8) {
        let batch: Vec<u8> = (first..first + 8).collect();
        h.join_batch(&batch, first - 3);
    }
    h.assert_consistent();
    assert_eq!(h.member(1).members().len(), usize::from(SIZE));
    // 9 single joins + 5 batches.
    assert_eq!(h.member(1).epoch(), Some(14));
    for n in 1..=SIZE {
        assert!(h.take_errors(n).is_empty(), "errors at member {n}");
        h.take_events(n);
    }
    h
}

fn drain(h: &mut Harness, n: u8) -> Vec<Output> {
    std::iter::from_fn(|| h.member_mut(n).poll_output()).collect()
}

fn sent(outputs: &[Output]) -> Vec<u8> {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Send(b) => Some(b.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn fifty_members_agree_after_a_leave_and_the_leaver_reads_nothing_after() {
    let mut h = fifty();
    let code = h.member(1).security_code().unwrap();
    let epoch = h.member(1).epoch().unwrap();
    let leaver_leaf = h.member(23).own_leaf().unwrap();

    h.propose_remove(23);
    h.commit_by(42);
    assert!(h.member(23).is_evicted());
    h.assert_consistent();
    assert_eq!(h.member(1).members().len(), usize::from(SIZE) - 1);
    assert_eq!(h.member(1).epoch(), Some(epoch + 1));
    let new_code = h.member(1).security_code().unwrap();
    assert_ne!(new_code, code, "the security code changes with the leave");
    for n in (1..=SIZE).filter(|n| *n != 23) {
        assert_eq!(h.member(n).security_code().as_deref(), Some(&*new_code));
        assert!(
            h.take_events(n)
                .contains(&Event::MemberRemoved { leaf: leaver_leaf }),
            "member {n} saw the leave"
        );
    }

    // A member speaks after the removal; the leaver, handed the bytes anyway,
    // opens nothing, and everyone else reads it.
    h.member_mut(7)
        .handle(Input::SendApplication(b"after the leave".to_vec()), NOW)
        .unwrap();
    let message = sent(&drain(&mut h, 7));
    assert!(h
        .member_mut(23)
        .handle(Input::Delivered(message.clone()), NOW)
        .is_err());
    assert!(drain(&mut h, 23)
        .iter()
        .all(|o| !matches!(o, Output::Event(Event::Application { .. }))));
    assert_eq!(h.ds.submit(&message).unwrap(), Verdict::Forward);
    h.broadcast(&message);
    h.pump();
    for n in (1..=SIZE).filter(|n| ![7, 23].contains(n)) {
        assert!(
            h.take_events(n).iter().any(
                |e| matches!(e, Event::Application { data, .. } if data == b"after the leave")
            ),
            "member {n} read the message"
        );
        assert!(h.take_errors(n).is_empty(), "errors at member {n}");
    }
}

#[test]
fn fifty_members_converge_after_concurrent_commits() {
    let mut h = fifty();
    let epoch = h.member(1).epoch().unwrap();
    h.propose_remove(50);

    // Members 12 and 37 both commit the Remove in the same epoch.
    h.member_mut(12).handle(Input::CommitPending, NOW).unwrap();
    h.member_mut(37).handle(Input::CommitPending, NOW).unwrap();
    let from_12 = sent(&drain(&mut h, 12));
    let from_37 = sent(&drain(&mut h, 37));
    // 37's commit reaches the DS first and wins; 12's is refused.
    assert_eq!(h.ds.submit(&from_37).unwrap(), Verdict::Forward);
    assert_eq!(h.ds.submit(&from_12).unwrap(), Verdict::Rejected);
    h.member_mut(12).handle(Input::CommitRejected, NOW).unwrap();
    h.broadcast(&from_37);
    h.pump();
    assert!(h.member(50).is_evicted());
    assert_eq!(h.member(12).epoch(), Some(epoch + 1));
    h.assert_consistent();

    // The loser retries in the new epoch: the server proposes the next Add and
    // the DS picks member 12 again; this time it wins.
    let joiner = session(51);
    let key_package = joiner.key_package();
    h.push(51, joiner);
    h.announce_admitted(device_id(51));
    h.propose_add(&key_package);
    h.commit_by(12);
    assert_eq!(h.member(51).epoch(), Some(epoch + 2));
    h.assert_consistent();
    assert_eq!(h.member(1).members().len(), usize::from(SIZE));
    for n in 1..=51 {
        assert!(h.take_errors(n).is_empty(), "errors at member {n}");
    }
}
