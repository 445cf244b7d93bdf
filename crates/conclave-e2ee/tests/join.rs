//! Layer 1: create, join through the server's external Add, credential checks.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use conclave_e2ee::{Event, Input, RefusalReason};
use conclave_identity::OrganisationKey;

fn refusals(events: &[Event]) -> Vec<RefusalReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Refused { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn creator_is_alone_in_epoch_zero() {
    let mut h = Harness::new(1);
    let alice = h.member(1);
    assert_eq!(alice.epoch(), Some(0));
    assert_eq!(alice.members().len(), 1);
    assert_eq!(alice.members()[0].claims.device_id, device_id(1));
    let events = h.take_events(1);
    assert!(matches!(events[0], Event::Joined { epoch: 0 }));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::KeyMaterial {
            epoch: 0,
            own_leaf: 0,
            ..
        }
    )));
}

#[test]
fn second_member_joins_and_both_agree() {
    let mut h = Harness::new(1);
    let code0 = h.member(1).security_code().unwrap();
    h.join(2);
    h.assert_consistent();
    assert_eq!(h.member(1).epoch(), Some(1));
    assert_ne!(h.member(1).security_code().unwrap(), code0);

    let alice_events = h.take_events(1);
    let added: Vec<_> = alice_events
        .iter()
        .filter_map(|e| match e {
            Event::MemberAdded(m) => Some(m.claims.device_id),
            _ => None,
        })
        .collect();
    assert!(added.contains(&device_id(2)));
    let bob_events = h.take_events(2);
    assert!(matches!(bob_events[0], Event::Joined { epoch: 1 }));

    let key = |events: &[Event]| {
        events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::KeyMaterial {
                    epoch: 1,
                    sframe_epoch_secret,
                    ..
                } => Some(sframe_epoch_secret.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(key(&alice_events), key(&bob_events));
    assert_eq!(key(&alice_events).expose().len(), 16);
    assert_eq!(
        format!("{:?}", key(&alice_events)),
        "Secret([redacted; 16])"
    );
}

#[test]
fn application_messages_both_ways() {
    let mut h = Harness::with_members(2);
    h.take_events(1);
    h.take_events(2);
    h.member_mut(1)
        .handle(Input::SendApplication(b"hi bob".to_vec()), NOW)
        .unwrap();
    h.pump();
    h.member_mut(2)
        .handle(Input::SendApplication(b"hi alice".to_vec()), NOW)
        .unwrap();
    h.pump();
    let bob = h.take_events(2);
    assert!(bob.contains(&Event::Application {
        sender_leaf: 0,
        data: b"hi bob".to_vec()
    }));
    let alice = h.take_events(1);
    assert!(alice.contains(&Event::Application {
        sender_leaf: 1,
        data: b"hi alice".to_vec()
    }));
    assert!(h.take_errors(1).is_empty());
    assert!(h.take_errors(2).is_empty());
}

/// Proposes an Add of `key_package` to a two-member group, has member 1 commit,
/// and checks the Add was refused with `expected` by both and never committed.
fn assert_add_refused(h: &mut Harness, key_package: &[u8], expected: RefusalReason) {
    h.take_events(1);
    h.take_events(2);
    let epoch = h.member(1).epoch();
    let code = h.member(1).security_code();
    h.propose_add(key_package);
    assert_eq!(refusals(&h.take_events(1)), vec![expected.clone()]);
    assert_eq!(refusals(&h.take_events(2)), vec![expected]);
    // Committing now covers nothing: no Welcome, nobody new.
    h.member_mut(1).handle(Input::CommitPending, NOW).unwrap();
    let mut welcome = false;
    while let Some(out) = h.member_mut(1).poll_output() {
        if matches!(out, conclave_e2ee::Output::Welcome(_)) {
            welcome = true;
        }
        h.route(0, out);
    }
    h.pump();
    assert!(!welcome);
    assert_eq!(h.member(1).members().len(), 2);
    assert_eq!(h.member(1).epoch(), epoch.map(|e| e + 1));
    assert_ne!(h.member(1).security_code(), code);
    h.assert_consistent();
}

#[test]
fn ghost_add_is_refused() {
    let mut h = Harness::with_members(2);
    let ghost = session(3);
    assert_add_refused(
        &mut h,
        &ghost.key_package(),
        RefusalReason::NotAdmitted {
            device: device_id(3),
        },
    );
}

#[test]
fn add_signed_by_another_organisation_is_refused() {
    let mut h = Harness::with_members(2);
    h.announce_admitted(device_id(3));
    let rogue = OrganisationKey::from_seed(&[66; 32]);
    let credential = rogue.issue_credential(claims(3, seed(3), LATER));
    let kp = raw_key_package(credential.to_bytes(), seed(3));
    assert_add_refused(&mut h, &kp, RefusalReason::NotSignedByOrganisation);
}

#[test]
fn add_with_expired_credential_is_refused() {
    let mut h = Harness::with_members(2);
    h.announce_admitted(device_id(3));
    let credential = org().issue_credential(claims(3, seed(3), NOW));
    let kp = raw_key_package(credential.to_bytes(), seed(3));
    assert_add_refused(&mut h, &kp, RefusalReason::CredentialExpired);
}

#[test]
fn add_with_someone_elses_key_is_refused() {
    let mut h = Harness::with_members(2);
    h.announce_admitted(device_id(3));
    // Credential names device key seed(3), but the leaf is signed with seed(4).
    let kp = raw_key_package(credential(3).to_bytes(), seed(4));
    assert_add_refused(
        &mut h,
        &kp,
        RefusalReason::KeyMismatch {
            device: device_id(3),
        },
    );
}

#[test]
fn add_with_malformed_credential_is_refused() {
    let mut h = Harness::with_members(2);
    let kp = raw_key_package(b"just a name".to_vec(), seed(3));
    assert_add_refused(&mut h, &kp, RefusalReason::MalformedCredential);
}

#[test]
fn add_of_revoked_device_is_refused() {
    let mut h = Harness::with_members(2);
    h.announce_admitted(device_id(3));
    for n in [1, 2] {
        h.member_mut(n)
            .handle(
                Input::Revoked {
                    device: device_id(3),
                },
                NOW,
            )
            .unwrap();
    }
    let kp = session(3).key_package();
    assert_add_refused(
        &mut h,
        &kp,
        RefusalReason::Revoked {
            device: device_id(3),
        },
    );
}

#[test]
fn add_from_a_non_server_sender_is_refused() {
    use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
    use openmls::prelude::{GroupEpoch, GroupId, JoinProposal, KeyPackageIn, ProtocolVersion};
    use openmls_basic_credential::SignatureKeyPair;
    use openmls_rust_crypto::{MemoryStorage, OpenMlsRustCrypto};
    use openmls_traits::types::SignatureScheme;
    use openmls_traits::OpenMlsProvider as _;

    let mut h = Harness::with_members(2);
    h.announce_admitted(device_id(3));
    let joiner = session(3);
    let provider = OpenMlsRustCrypto::default();
    let kp = KeyPackageIn::tls_deserialize_exact(joiner.key_package())
        .unwrap()
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .unwrap();
    let public = conclave_identity::DeviceKey::from_seed(&seed(3))
        .public()
        .to_bytes()
        .to_vec();
    let signer = SignatureKeyPair::from_raw(SignatureScheme::ED25519, seed(3).to_vec(), public);
    let group = h.ds.group().clone();
    let proposal = JoinProposal::new::<MemoryStorage>(
        kp,
        GroupId::from_slice(&group.group_id),
        GroupEpoch::from(group.epoch),
        &signer,
    )
    .unwrap()
    .tls_serialize_detached()
    .unwrap();
    h.take_events(1);
    h.broadcast(&proposal);
    h.pump();
    let refused = refusals(&h.take_events(1));
    let errors = h.take_errors(1);
    // Either openmls rejects it outright, or we refuse it; never stored.
    assert!(
        refused == vec![RefusalReason::UnsupportedProposal] || !errors.is_empty(),
        "{refused:?} {errors:?}"
    );
    h.commit_by(1);
    assert_eq!(h.member(1).members().len(), 2);
}

#[test]
fn announced_add_is_seen_by_everyone_and_changes_the_code() {
    let mut h = Harness::with_members(3);
    for n in 1..=3 {
        h.take_events(n);
    }
    let code = h.member(1).security_code();
    h.join(4);
    h.assert_consistent();
    assert_ne!(h.member(1).security_code(), code);
    for n in 1..=3 {
        let events = h.take_events(n);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::MemberAdded(m) if m.claims.device_id == device_id(4))),
            "member {n} saw the Add"
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::EpochChanged { epoch: 3, .. })));
    }
}

#[test]
fn new_rejects_a_seed_that_is_not_the_credential_key() {
    let err = conclave_e2ee::Session::new(
        conclave_e2ee::MemberIdentity::new(credential(1), seed(2)),
        org().public(),
        server().info(),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, conclave_e2ee::SessionError::BadIdentity(_)));
}

#[test]
fn commit_carrying_an_add_we_refused_is_not_applied() {
    let mut h = Harness::with_members(3);
    let joiner = session(4);
    let kp = joiner.key_package();
    h.push(4, joiner);
    // Only member 1 hears of the admission (a lying or broken signalling path).
    h.member_mut(1)
        .handle(
            Input::Admitted {
                device: device_id(4),
            },
            NOW,
        )
        .unwrap();
    h.propose_add(&kp);
    assert!(
        refusals(&h.take_events(2)).contains(&RefusalReason::NotAdmitted {
            device: device_id(4)
        })
    );
    let epoch = h.member(2).epoch();
    h.commit_by(1);
    // Member 2 refuses to follow: it stays on the old epoch, and says so.
    assert_eq!(h.member(2).epoch(), epoch);
    assert!(!h.take_errors(2).is_empty() || !refusals(&h.take_events(2)).is_empty());
    assert_eq!(h.member(2).members().len(), 3);
}

#[test]
fn revocation_sticks_over_a_later_admission() {
    let mut h = Harness::with_members(2);
    for n in [1, 2] {
        h.member_mut(n)
            .handle(
                Input::Revoked {
                    device: device_id(3),
                },
                NOW,
            )
            .unwrap();
    }
    h.announce_admitted(device_id(3));
    let kp = session(3).key_package();
    assert_add_refused(
        &mut h,
        &kp,
        RefusalReason::Revoked {
            device: device_id(3),
        },
    );
}
