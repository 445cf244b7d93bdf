//! Layer 2: removal, scenarios of 2–10 members, concurrent commits.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use conclave_e2ee::{Event, Input, Output, SessionError, Verdict};

#[test]
fn removed_member_cannot_read_what_follows() {
    let mut h = Harness::with_members(3);
    let code = h.member(1).security_code();
    let carol_leaf = h.member(3).own_leaf().unwrap();
    for n in 1..=3 {
        h.take_events(n);
    }
    h.propose_remove(3);
    h.commit_by(1);
    assert!(h.member(3).is_evicted());
    assert_eq!(h.member(3).epoch(), None);
    assert!(h
        .take_events(3)
        .contains(&Event::MemberRemoved { leaf: carol_leaf }));
    assert!(h
        .take_events(2)
        .contains(&Event::MemberRemoved { leaf: carol_leaf }));
    assert_ne!(h.member(1).security_code(), code);
    h.assert_consistent();
    assert_eq!(h.member(1).members().len(), 2);

    // Alice speaks in the new epoch; Carol (handed the bytes anyway) cannot read it.
    h.member_mut(1)
        .handle(Input::SendApplication(b"after".to_vec()), NOW)
        .unwrap();
    let Some(Output::Send(bytes)) = h.member_mut(1).poll_output() else {
        panic!("expected an application message");
    };
    assert!(h
        .member_mut(3)
        .handle(Input::Delivered(bytes.clone()), NOW)
        .is_err());
    assert!(h
        .member_mut(3)
        .take_all_events()
        .iter()
        .all(|e| !matches!(e, Event::Application { .. })));
    h.member_mut(2)
        .handle(Input::Delivered(bytes), NOW)
        .unwrap();
    assert!(h
        .member_mut(2)
        .take_all_events()
        .contains(&Event::Application {
            sender_leaf: 0,
            data: b"after".to_vec()
        }));
}

trait Drain {
    fn take_all_events(&mut self) -> Vec<Event>;
}

impl Drain for conclave_e2ee::Session {
    fn take_all_events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(out) = self.poll_output() {
            if let Output::Event(e) = out {
                events.push(e);
            }
        }
        events
    }
}

#[test]
fn removed_member_fails_to_process_an_old_state_message() {
    // A removed member handed a later commit gets an error, never a panic.
    let mut h = Harness::with_members(3);
    h.propose_remove(3);
    h.commit_by(1);
    let err = h
        .member_mut(3)
        .handle(Input::SendApplication(b"x".to_vec()), NOW)
        .unwrap_err();
    assert_eq!(err, SessionError::Evicted);
}

#[test]
fn groups_of_two_to_ten_stay_consistent() {
    let mut h = Harness::new(1);
    for n in 2..=10u8 {
        h.join(n);
        h.assert_consistent();
        assert_eq!(h.member(1).members().len(), usize::from(n));
        // Everybody can talk to everybody.
        h.member_mut(n)
            .handle(Input::SendApplication(vec![n]), NOW)
            .unwrap();
        h.pump();
        for m in 1..n {
            let events = h.take_events(m);
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::Application { data, .. } if *data == vec![n])),
                "member {m} heard member {n}"
            );
        }
    }
    // Remove some, with different committers.
    for (gone, committer) in [(4u8, 2u8), (9, 10), (1, 3)] {
        h.propose_remove(gone);
        h.commit_by(committer);
        assert!(h.member(gone).is_evicted());
        h.assert_consistent();
    }
    assert_eq!(h.member(2).members().len(), 7);
    // Add one more after removals (leaf reuse) and remove two at once.
    h.join(11);
    h.assert_consistent();
    h.propose_remove(5);
    h.propose_remove(6);
    h.commit_by(11);
    h.assert_consistent();
    assert_eq!(h.member(2).members().len(), 6);
    for n in 1..=11 {
        assert!(h.take_errors(n).is_empty(), "errors at member {n}");
    }
}

#[test]
fn concurrent_commits_first_wins() {
    let mut h = Harness::with_members(3);
    let joiner = session(4);
    let kp = joiner.key_package();
    h.push(4, joiner);
    h.announce_admitted(device_id(4));
    h.propose_add(&kp);
    let epoch = h.member(1).epoch().unwrap();

    // The DS (wrongly, or racing) lets both 1 and 2 commit in the same epoch.
    h.member_mut(1).handle(Input::CommitPending, NOW).unwrap();
    h.member_mut(2).handle(Input::CommitPending, NOW).unwrap();
    let outputs = |h: &mut Harness, n: u8| {
        let mut v = Vec::new();
        while let Some(o) = h.member_mut(n).poll_output() {
            v.push(o);
        }
        v
    };
    let from_2 = outputs(&mut h, 2);
    let from_1 = outputs(&mut h, 1);
    let commit = |v: &[Output]| {
        v.iter()
            .find_map(|o| match o {
                Output::Send(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap()
    };
    let welcome = |v: &[Output]| {
        v.iter()
            .find_map(|o| match o {
                Output::Welcome(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap()
    };
    // Member 2's commit reaches the DS first and wins.
    assert_eq!(h.ds.submit(&commit(&from_2)).unwrap(), Verdict::Forward);
    assert_eq!(h.ds.submit(&commit(&from_1)).unwrap(), Verdict::Rejected);
    // The loser is told before the winner's commit arrives.
    h.member_mut(1).handle(Input::CommitRejected, NOW).unwrap();
    h.broadcast(&commit(&from_2));
    let joiner = h.index_of(4);
    h.sessions[joiner]
        .handle(Input::Delivered(welcome(&from_2)), NOW)
        .unwrap();
    h.pump();
    assert_eq!(h.member(1).epoch(), Some(epoch + 1));
    h.assert_consistent();
    assert_eq!(h.member(1).members().len(), 4);
    for n in 1..=4 {
        assert!(h.take_errors(n).is_empty(), "errors at member {n}");
    }

    // Again, with the loser learning only from the winner's commit (no
    // CommitRejected first), then getting CommitRejected late.
    h.propose_remove(4);
    h.member_mut(3).handle(Input::CommitPending, NOW).unwrap();
    h.member_mut(1).handle(Input::CommitPending, NOW).unwrap();
    let from_3 = outputs(&mut h, 3);
    let from_1 = outputs(&mut h, 1);
    assert_eq!(h.ds.submit(&commit(&from_3)).unwrap(), Verdict::Forward);
    h.broadcast(&commit(&from_3));
    assert_eq!(h.ds.submit(&commit(&from_1)).unwrap(), Verdict::Rejected);
    h.member_mut(1).handle(Input::CommitRejected, NOW).unwrap();
    h.pump();
    assert!(h.member(4).is_evicted());
    h.assert_consistent();
    assert_eq!(h.member(1).members().len(), 3);

    // And the group still works.
    h.member_mut(1)
        .handle(Input::SendApplication(b"still here".to_vec()), NOW)
        .unwrap();
    h.pump();
    assert!(h
        .take_events(2)
        .iter()
        .any(|e| matches!(e, Event::Application { data, .. } if data == b"still here")));
}

#[test]
fn application_messages_wait_for_pending_proposals() {
    let mut h = Harness::with_members(2);
    let joiner = session(3);
    let kp = joiner.key_package();
    h.push(3, joiner);
    h.announce_admitted(device_id(3));
    h.propose_add(&kp);
    // Proposals pending: the message is queued, not lost.
    h.member_mut(2)
        .handle(Input::SendApplication(b"queued".to_vec()), NOW)
        .unwrap();
    h.pump();
    h.take_events(1);
    h.commit_by(1);
    // Sent in the new epoch, so even the new member reads it.
    for n in [1, 3] {
        assert!(
            h.take_events(n)
                .iter()
                .any(|e| matches!(e, Event::Application { data, .. } if data == b"queued")),
            "member {n}"
        );
    }
}

#[test]
fn misuse_is_reported() {
    let mut h = Harness::with_members(2);
    assert_eq!(
        h.member_mut(1).handle(Input::CreateGroup, NOW).unwrap_err(),
        SessionError::AlreadyInGroup
    );
    let mut lonely = session(9);
    assert_eq!(
        lonely.handle(Input::CommitPending, NOW).unwrap_err(),
        SessionError::NoGroup
    );
    h.member_mut(1).handle(Input::CommitPending, NOW).unwrap();
    assert_eq!(
        h.member_mut(1)
            .handle(Input::CommitPending, NOW)
            .unwrap_err(),
        SessionError::CommitInFlight
    );
}

#[test]
fn a_proposal_arriving_during_our_commit_does_not_void_it() {
    let mut h = Harness::with_members(3);
    h.member_mut(1).handle(Input::CommitPending, NOW).unwrap();
    let commit = {
        let mut c = None;
        while let Some(o) = h.member_mut(1).poll_output() {
            if let Output::Send(b) = o {
                c = Some(b);
            }
        }
        c.unwrap()
    };
    // The server proposes a Remove for the same epoch before the commit is ordered.
    let leaf = h.member(3).own_leaf().unwrap();
    let proposal = h.server.propose_remove(h.ds.group(), leaf).unwrap();
    h.broadcast(&proposal);
    assert_eq!(h.ds.submit(&commit).unwrap(), Verdict::Forward);
    h.broadcast(&commit);
    h.pump();
    assert!(h.take_errors(1).is_empty());
    h.assert_consistent();
    // The Remove was not covered; the server proposes it again in the new epoch.
    h.propose_remove(3);
    h.commit_by(2);
    assert!(h.member(3).is_evicted());
    h.assert_consistent();
}
