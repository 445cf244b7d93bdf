//! Layer 2, the server's side: the delivery service validates handshake
//! messages against the group's public state before it orders them.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use conclave_e2ee::{
    DeliveryService, ExternalSender, Input, Output, SessionError, Verdict, CIPHERSUITE,
};
use conclave_identity::DeviceKey;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    BasicCredential, CredentialWithKey, GroupId, MlsGroup, MlsGroupCreateConfig,
    MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::types::SignatureScheme;

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

/// Member `committer` commits the pending proposals; returns the commit without
/// routing it.
fn commit_of(h: &mut Harness, committer: u8) -> Vec<u8> {
    h.member_mut(committer)
        .handle(Input::CommitPending, NOW)
        .unwrap();
    sent(&drain(h, committer))
}

/// Announces member `n` and has the server propose its Add through the DS.
fn admit(h: &mut Harness, n: u8) {
    let joiner = session(n);
    let key_package = joiner.key_package();
    h.push(n, joiner);
    h.announce_admitted(device_id(n));
    h.propose_add(&key_package);
}

/// The position of the commit signature in a member's PublicMessage commit:
/// `... signature<V> confirmation_tag<V> membership_tag<V>` at the end, with
/// a 64-byte Ed25519 signature and 32-byte MACs (one length byte each).
fn signature_range(commit: &[u8]) -> std::ops::Range<usize> {
    let end = commit.len() - 2 * 33;
    assert_eq!(commit[end - 65], 64, "signature length prefix");
    end - 64..end
}

#[test]
fn the_ds_is_made_from_the_creators_group_info() {
    let h = Harness::new(1);
    assert!(h.ds.validates());
    assert_eq!(h.ds.group().epoch, 0);
    assert_eq!(h.ds.group().group_id, h.member(1).group_id().unwrap());
    assert_eq!(h.ds.members(), vec![(0, device_id(1))]);
    assert_eq!(h.ds.leaf_of(device_id(1)), Some(0));
    assert_eq!(h.ds.leaf_of(device_id(2)), None);
    // Only a member has a group to describe.
    assert_eq!(session(9).group_info().unwrap_err(), SessionError::NoGroup);
}

#[test]
fn a_group_info_naming_another_external_sender_is_refused() {
    let h = Harness::new(1);
    let group_info = h.member(1).group_info().unwrap();
    let other = ExternalSender::from_seed(&[5; 32], b"conclave.example".to_vec());
    assert_eq!(
        DeliveryService::from_group_info(&group_info, &other.info()).unwrap_err(),
        SessionError::WrongExternalSender
    );
    assert!(DeliveryService::from_group_info(&group_info, &server().info()).is_ok());
}

#[test]
fn a_tampered_or_malformed_group_info_is_refused() {
    let h = Harness::with_members(2);
    let group_info = h.member(2).group_info().unwrap();
    for at in (0..group_info.len()).step_by(3) {
        let mut bad = group_info.clone();
        bad[at] ^= 0x01;
        assert!(
            DeliveryService::from_group_info(&bad, &server().info()).is_err(),
            "flipped byte {at} accepted"
        );
    }
    for junk in [&[][..], &[0, 1, 0, 4][..], &[0xff; 32][..]] {
        assert!(DeliveryService::from_group_info(junk, &server().info()).is_err());
    }
    // A commit is not a GroupInfo.
    let mut h = Harness::with_members(2);
    let commit = commit_of(&mut h, 1);
    assert_eq!(
        DeliveryService::from_group_info(&commit, &server().info()).unwrap_err(),
        SessionError::Malformed("not a GroupInfo")
    );
}

#[test]
fn a_valid_commit_advances_the_ds_epoch_and_membership() {
    let mut h = Harness::with_members(2);
    assert_eq!(h.ds.group().epoch, 1);
    admit(&mut h, 3);
    let commit = commit_of(&mut h, 2);
    assert_eq!(h.ds.submit(&commit).unwrap(), Verdict::Forward);
    assert_eq!(h.ds.group().epoch, 2);
    assert_eq!(
        h.ds.members(),
        vec![(0, device_id(1)), (1, device_id(2)), (2, device_id(3))]
    );
    // The same commit again is for a past epoch now.
    assert_eq!(h.ds.submit(&commit).unwrap(), Verdict::Rejected);
    assert_eq!(h.ds.group().epoch, 2);

    // A removal, through the harness (proposal and commit both via the DS).
    let mut h = Harness::with_members(4);
    h.propose_remove(2);
    h.commit_by(4);
    assert_eq!(h.ds.group().epoch, h.member(1).epoch().unwrap());
    assert_eq!(h.ds.leaf_of(device_id(2)), None);
    assert_eq!(h.ds.members().len(), 3);
    h.assert_consistent();
}

#[test]
fn a_commit_with_a_flipped_signature_is_rejected_and_not_forwarded() {
    let mut h = Harness::with_members(3);
    admit(&mut h, 4);
    let epoch = h.ds.group().epoch;
    let commit = commit_of(&mut h, 2);
    let range = signature_range(&commit);
    for at in [range.start, range.start + 31, range.end - 1] {
        let mut forged = commit.clone();
        forged[at] ^= 0x80;
        assert!(
            matches!(h.ds.submit(&forged), Err(SessionError::Rejected(_))),
            "signature byte {at}"
        );
        assert_eq!(
            h.ds.group().epoch,
            epoch,
            "a refused commit changes nothing"
        );
    }
    // The genuine commit still wins the epoch afterwards.
    assert_eq!(h.ds.submit(&commit).unwrap(), Verdict::Forward);
    h.broadcast(&commit);
    h.pump();
    assert_eq!(h.member(2).epoch(), Some(epoch + 1));
    assert_eq!(h.ds.members().len(), 4);
}

/// A commit for the harness group's id and epoch 0, claiming leaf 0, made and
/// signed by an organisation member who is not in the group (it builds its own
/// group under the same id).
fn commit_by_an_outsider(group_id: &[u8]) -> Vec<u8> {
    let seed = seed(66);
    let public = DeviceKey::from_seed(&seed).public().to_bytes().to_vec();
    let signer =
        SignatureKeyPair::from_raw(SignatureScheme::ED25519, seed.to_vec(), public.clone());
    let provider = OpenMlsRustCrypto::default();
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build();
    let mut group = MlsGroup::new_with_group_id(
        &provider,
        &signer,
        &config,
        GroupId::from_slice(group_id),
        CredentialWithKey {
            credential: BasicCredential::new(credential(66).to_bytes()).into(),
            signature_key: public.into(),
        },
    )
    .unwrap();
    let (commit, _, _) = group
        .commit_to_pending_proposals(&provider, &signer)
        .unwrap();
    commit.tls_serialize_detached().unwrap()
}

#[test]
fn a_commit_signed_by_a_non_member_is_rejected_and_not_forwarded() {
    let mut h = Harness::new(1);
    let forged = commit_by_an_outsider(&h.member(1).group_id().unwrap());
    assert!(matches!(
        h.ds.submit(&forged),
        Err(SessionError::Rejected(_))
    ));
    assert_eq!(h.ds.group().epoch, 0);
    assert_eq!(h.ds.members(), vec![(0, device_id(1))]);
    // The group carries on: the next join is accepted.
    h.join(2);
    h.assert_consistent();
    assert_eq!(h.ds.group().epoch, 1);
}

#[test]
fn the_losing_concurrent_commit_is_rejected() {
    let mut h = Harness::with_members(3);
    admit(&mut h, 4);
    let epoch = h.ds.group().epoch;
    let from_3 = commit_of(&mut h, 3);
    let from_1 = commit_of(&mut h, 1);
    assert_eq!(h.ds.submit(&from_3).unwrap(), Verdict::Forward);
    assert_eq!(h.ds.submit(&from_1).unwrap(), Verdict::Rejected);
    assert_eq!(h.ds.group().epoch, epoch + 1);
    assert_eq!(h.ds.members().len(), 4);
}

#[test]
fn a_commit_covering_a_proposal_the_ds_never_saw_does_not_apply() {
    let mut h = Harness::with_members(2);
    let joiner = session(3);
    let key_package = joiner.key_package();
    h.push(3, joiner);
    h.announce_admitted(device_id(3));
    // A proposal that reached the members without passing the DS.
    let proposal = h.server.propose_add(h.ds.group(), &key_package).unwrap();
    h.broadcast(&proposal);
    let commit = commit_of(&mut h, 1);
    assert!(matches!(
        h.ds.submit(&commit),
        Err(SessionError::Rejected(_))
    ));
    assert_eq!(h.ds.group().epoch, 1);
    // The server tells the committer to drop it; it commits again later.
    h.member_mut(1).handle(Input::CommitRejected, NOW).unwrap();
    assert_eq!(h.ds.submit(&proposal).unwrap(), Verdict::Forward);
    h.commit_by(1);
    assert_eq!(h.member(3).epoch(), Some(2));
    h.assert_consistent();
}

#[test]
fn proposals_must_come_from_the_external_sender_for_the_current_epoch() {
    let mut h = Harness::with_members(2);
    let carol = session(3);
    // Signed by a key that is not the group's external sender.
    let impostor = ExternalSender::from_seed(&[5; 32], b"conclave.example".to_vec());
    let proposal = impostor
        .propose_add(h.ds.group(), &carol.key_package())
        .unwrap();
    assert!(matches!(
        h.ds.submit(&proposal),
        Err(SessionError::Rejected(_))
    ));
    // For a past epoch.
    let mut old = h.ds.group().clone();
    old.epoch -= 1;
    let proposal = h.server.propose_add(&old, &carol.key_package()).unwrap();
    assert!(h.ds.submit(&proposal).is_err());
    // For a future epoch.
    let mut future = h.ds.group().clone();
    future.epoch += 1;
    let proposal = h.server.propose_remove(&future, 1).unwrap();
    assert!(h.ds.submit(&proposal).is_err());
    // For another group.
    let other = conclave_e2ee::GroupRef {
        group_id: b"another group".to_vec(),
        epoch: 1,
    };
    let proposal = h.server.propose_remove(&other, 1).unwrap();
    assert_eq!(
        h.ds.submit(&proposal).unwrap_err(),
        SessionError::WrongGroup
    );
    // A Remove of a leaf that does not exist.
    let proposal = h.server.propose_remove(h.ds.group(), 7).unwrap();
    assert!(h.ds.submit(&proposal).is_err());
    // Nothing was stored: a commit now covers nothing and is still valid.
    let commit = commit_of(&mut h, 2);
    assert_eq!(h.ds.submit(&commit).unwrap(), Verdict::Forward);
    assert_eq!(h.ds.members().len(), 2);
}

#[test]
fn application_messages_pass_and_junk_is_refused() {
    let mut h = Harness::with_members(2);
    h.member_mut(1)
        .handle(Input::SendApplication(b"hi".to_vec()), NOW)
        .unwrap();
    let message = sent(&drain(&mut h, 1));
    assert_eq!(h.ds.submit(&message).unwrap(), Verdict::Forward);
    for junk in [&[][..], &[0, 1, 0, 1][..], &[0xff; 64][..]] {
        assert!(h.ds.submit(junk).is_err());
    }
}

#[test]
fn the_ordering_only_ds_still_orders() {
    let mut h = Harness::with_members(2);
    let mut ds = DeliveryService::new(h.member(1).group_id().unwrap(), 1);
    assert!(!ds.validates());
    admit(&mut h, 3);
    let from_1 = commit_of(&mut h, 1);
    let from_2 = commit_of(&mut h, 2);
    assert_eq!(ds.submit(&from_2).unwrap(), Verdict::Forward);
    assert_eq!(ds.submit(&from_1).unwrap(), Verdict::Rejected);
    assert_eq!(ds.group().epoch, 2);
    assert!(ds.members().is_empty());
}
