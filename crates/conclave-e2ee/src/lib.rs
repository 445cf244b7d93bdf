//! The MLS (RFC 9420) group of a Conclave meeting, as a pure state machine.
//!
//! Every meeting is one MLS group with ciphersuite
//! `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`. Members export a fresh SFrame
//! base key from every epoch (RFC 9605 §5.2) to encrypt media, so the server,
//! which routes media and MLS messages, never holds a media key.
//!
//! # Roles
//!
//! - **The server is the delivery service (DS)** ([`DeliveryService`]): it
//!   validates and orders handshake messages for the group. It tracks the
//!   group's public state (ratchet tree and group context, no secrets), which
//!   the creator uploads ([`Session::group_info`]; the DS checks that the group
//!   names this server as its external sender), and accepts a proposal only if
//!   the server signed it, and a commit only if it is for the current epoch,
//!   signed by a current member's leaf key, covers only the server's proposals
//!   and applies to the tree. The first valid commit of an epoch wins; later
//!   ones are rejected and their authors drop them and follow the winner.
//! - **The server is the group's single external sender** (the
//!   `external_senders` group-context extension, set by whoever creates the
//!   group). When the policy engine admits a participant, the server signs an
//!   external **Add** proposal carrying the joiner's KeyPackage
//!   ([`ExternalSender::propose_add`]); when somebody leaves or is removed, an
//!   external **Remove** proposal ([`ExternalSender::propose_remove`]).
//!   openmls 0.9.2 supports both directly (`ExternalProposal::new_add` and
//!   `new_remove`, sender `Sender::External(0)`), so no member-side workaround
//!   is needed.
//! - **A member commits**: the DS picks one member ([`Input::CommitPending`]),
//!   which commits all pending proposals it accepted and emits the commit and,
//!   for joiners, a Welcome (with the ratchet tree inside, so joiners need
//!   nothing else).
//! - **The first admitted participant creates the group** ([`Input::CreateGroup`]).
//!
//! # Identity and the checks every member makes
//!
//! Each leaf's credential is an MLS basic credential whose identity is the
//! organisation-signed [`conclave_identity::DeviceCredential`] (its binary
//! encoding), and the leaf's signature key must be the credential's device key.
//! The server decides who may join, but members do not take its word for it:
//! an Add is stored (and therefore ever committed by this member) only if
//!
//! 1. it was sent by the external sender (the server), not by a member;
//! 2. the credential parses and is signed by the organisation key;
//! 3. it is valid now (not expired, not yet valid);
//! 4. the leaf's signature key is the credential's device key;
//! 5. the device was not announced as revoked ([`Input::Revoked`]);
//! 6. signalling announced the device as admitted ([`Input::Admitted`]) before
//!    the proposal arrived. This catches "ghost" participants that a
//!    compromised MLS path would add without the visible admission flow.
//!
//! Otherwise the member emits [`Event::Refused`]. The same checks run on every
//! Add inside a commit (a commit with a refused Add is not applied, leaving the
//! member on the old epoch: a visible failure rather than a silent ghost), on
//! the leaf a committer's update path installs (it must keep the committer's
//! device), and on every member listed in a Welcome (plus: the group's external
//! sender must be our server). Members only ever commit; they send no proposals
//! and accept none from other members.
//!
//! # Wire formats
//!
//! Handshake messages (proposals and commits) travel as MLS `PublicMessage`s:
//! external proposals must be public anyway, and public commits let the DS
//! validate them (signature, sender, epoch, proposals, tree) before forwarding. They contain no
//! secrets: path secrets are HPKE-encrypted to the tree. Application messages
//! are always `PrivateMessage`s.
//!
//! # The run loop
//!
//! A [`Session`] performs no I/O, starts no tasks and never reads the clock
//! (`now` is an argument; it decides credential validity). The caller:
//!
//! 1. creates a [`Session`] and gives [`Session::key_package`] to the server when
//!    asking to join (the first participant instead creates the group and
//!    uploads [`Session::group_info`] for the server's [`DeliveryService`]);
//! 2. feeds every event in order through [`Session::handle`]: bytes from the DS
//!    ([`Input::Delivered`]), announcements from signalling
//!    ([`Input::Admitted`], [`Input::Revoked`]), DS instructions
//!    ([`Input::CommitPending`], [`Input::CommitRejected`]) and local requests
//!    ([`Input::SendApplication`]);
//! 3. after each input, drains [`Session::poll_output`] until `None`: messages
//!    to send to the DS ([`Output::Send`], [`Output::Welcome`]) and events for
//!    the application ([`Output::Event`]): new key material for SFrame, a new
//!    security code to display, members added and removed, application data,
//!    refusals.
//!
//! The DS must forward every accepted handshake message to **all** members in
//! one order, the committer included: the committer applies its own commit
//! when it sees it come back (byte-identical), which is how it learns the
//! commit won. Proposals that the winning commit did not cover are void in the
//! new epoch and the server proposes them again. Errors from
//! [`Session::handle`] leave the session unchanged: hostile input is logged
//! and dropped. Why sans-IO: the same code runs in the server's tests and in
//! the browser (WebAssembly), with deterministic tests and no async runtime.
//!
//! A Welcome belongs to its commit: the DS delivers it to the joiners only if
//! that commit was accepted, and drops it otherwise.
//!
//! Members do not rely on the DS's validation: they check everything again,
//! plus what only they can (confirmation tag and path secrets, which need the
//! epoch secrets; credentials against the organisation key; admissions). The
//! DS's checks keep a forged or broken commit from reaching anybody and from
//! costing the group an epoch: an ordering-only DS would count a commit that
//! every member then refuses as the epoch's winner. [`DeliveryService`]
//! documents what the server calls when.
//!
//! One caveat on purity: openmls itself stamps KeyPackages with a lifetime and
//! checks leaf lifetimes against the system clock (`SystemTime::now`, which on
//! WebAssembly needs openmls's `js` feature). This crate's own decisions
//! (credential validity) use only the `now` it is given.
//!
//! While proposals are pending (or a commit of ours is in flight) openmls
//! cannot encrypt application messages, so [`Input::SendApplication`] queues
//! them and sends them after the next epoch change.
//!
//! # Security code
//!
//! Every member derives the same short code from the epoch authenticator
//! ([`security_code`]); it changes at every epoch. Participants who compare it
//! out of band know they share one group with the same members.
//!
//! # Example
//!
//! ```no_run
//! use conclave_e2ee::{ExternalSender, Input, MemberIdentity, Output, Session};
//! use conclave_identity::{DeviceCredential, OrganisationPublicKey};
//! use conclave_types::Timestamp;
//!
//! fn run(
//!     credential: DeviceCredential,
//!     seed: [u8; 32],
//!     org: OrganisationPublicKey,
//!     server: &ExternalSender,
//!     now: Timestamp,
//! ) -> Result<(), conclave_e2ee::SessionError> {
//!     let mut alice = Session::new(MemberIdentity::new(credential, seed), org, server.info(), now)?;
//!     alice.handle(Input::CreateGroup, now)?;
//!     alice.handle(Input::SendApplication(b"hello".to_vec()), now)?;
//!     while let Some(output) = alice.poll_output() {
//!         match output {
//!             Output::Send(bytes) | Output::Welcome(bytes) => { /* to the DS */ let _ = bytes; }
//!             Output::Event(event) => println!("{event:?}"),
//!             _ => {}
//!         }
//!     }
//!     println!("security code: {:?}", alice.security_code());
//!     Ok(())
//! }
//! ```

mod code;
mod error;
mod server;
mod session;

pub use code::security_code;
pub use error::{RefusalReason, SessionError};
pub use server::{
    inspect, DeliveryService, ExternalSender, GroupRef, MessageInfo, MessageKind, Verdict,
};
pub use session::{
    Event, ExternalSenderInfo, Input, MemberIdentity, MemberInfo, Output, Secret, Session,
    CIPHERSUITE, MAX_MESSAGE_LEN, SFRAME_EXPORTER_LABEL, SFRAME_SECRET_LEN,
};

/// Entry points for fuzz targets and robustness tests. Not part of the stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::cell::RefCell;

    use conclave_identity::{CredentialClaims, OrganisationKey};
    use conclave_types::{DeviceId, DeviceTrust, Timestamp, UserId};

    use crate::{
        DeliveryService, ExternalSender, GroupRef, Input, MemberIdentity, Output, Session,
    };

    const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

    fn member(n: u8, org: &OrganisationKey, server: &ExternalSender) -> Session {
        let seed = [n; 32];
        let credential = org.issue_credential(CredentialClaims {
            organisation: "Fuzz".into(),
            user_id: UserId::from_bytes([n; 16]),
            user_name: format!("user{n}"),
            display_name: format!("User {n}"),
            device_id: DeviceId::from_bytes([n; 16]),
            device_key: conclave_identity::DeviceKey::from_seed(&seed).public(),
            trust: DeviceTrust::Personal,
            issued_at: Timestamp::from_unix_millis(0),
            expires_at: Timestamp::from_unix_millis(i64::MAX),
        });
        Session::new(
            MemberIdentity::new(credential, seed),
            org.public(),
            server.info(),
            NOW,
        )
        .expect("fixed identity is valid")
    }

    fn drain(s: &mut Session) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    /// A two-member group (creator, joiner) and the server, all in epoch 1.
    fn group() -> (Session, Session, ExternalSender, GroupRef) {
        let org = OrganisationKey::from_seed(&[1; 32]);
        let server = ExternalSender::from_seed(&[2; 32], b"fuzz-server".to_vec());
        let mut alice = member(3, &org, &server);
        let mut bob = member(4, &org, &server);
        alice
            .handle(Input::CreateGroup, NOW)
            .expect("fresh session creates a group");
        alice
            .handle(
                Input::Admitted {
                    device: DeviceId::from_bytes([4; 16]),
                },
                NOW,
            )
            .expect("announcements never fail");
        let group = GroupRef {
            group_id: alice.group_id().expect("alice created the group"),
            epoch: 0,
        };
        let proposal = server
            .propose_add(&group, &bob.key_package())
            .expect("bob's key package is valid");
        alice
            .handle(Input::Delivered(proposal), NOW)
            .expect("valid proposal");
        alice
            .handle(Input::CommitPending, NOW)
            .expect("alice can commit");
        let mut commit = Vec::new();
        for output in drain(&mut alice) {
            match output {
                Output::Send(bytes) => commit = bytes,
                Output::Welcome(bytes) => bob
                    .handle(Input::Delivered(bytes), NOW)
                    .expect("bob joins with the Welcome"),
                _ => {}
            }
        }
        alice
            .handle(Input::Delivered(commit), NOW)
            .expect("alice merges her own commit");
        drain(&mut alice);
        drain(&mut bob);
        let group = GroupRef {
            group_id: group.group_id,
            epoch: 1,
        };
        (alice, bob, server, group)
    }

    /// What [`delivered`] feeds: a member of a two-member group (epoch 1), a
    /// participant waiting for its Welcome, and the group's delivery service.
    struct Fixture {
        bob: Session,
        carol: Session,
        ds: DeliveryService,
    }

    impl Fixture {
        fn new() -> Self {
            let (alice, bob, server, _group) = group();
            let ds = DeliveryService::from_group_info(
                &alice.group_info().expect("alice is in the group"),
                &server.info(),
            )
            .expect("alice's group names the server");
            let org = OrganisationKey::from_seed(&[1; 32]);
            let carol = member(5, &org, &server);
            Self { bob, carol, ds }
        }
    }

    thread_local! {
        /// Built once per thread (once per fuzzing process) and rebuilt only
        /// after an input was accepted: building the group costs far more than
        /// processing one input.
        static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
    }

    /// Feeds arbitrary bytes as [`Input::Delivered`] to a member of a two-member
    /// group and to a participant waiting for a Welcome, and submits them to
    /// the group's delivery service. Must never panic, whatever `data` is.
    ///
    /// Each input meets the same known state: the fixture is reused after
    /// inputs that were refused (an error leaves a [`Session`] and the
    /// [`DeliveryService`] unchanged, by their contract) and rebuilt after any
    /// input that was accepted.
    pub fn delivered(data: &[u8]) {
        FIXTURE.with(|cell| {
            let mut slot = cell.borrow_mut();
            let fixture = slot.get_or_insert_with(Fixture::new);
            let mut changed = fixture
                .bob
                .handle(Input::Delivered(data.to_vec()), NOW)
                .is_ok();
            drain(&mut fixture.bob);
            changed |= fixture
                .carol
                .handle(Input::Delivered(data.to_vec()), NOW)
                .is_ok();
            drain(&mut fixture.carol);
            let handshake = matches!(
                crate::inspect(data),
                Ok(crate::MessageInfo {
                    kind: crate::MessageKind::Commit | crate::MessageKind::Proposal,
                    ..
                })
            );
            changed |= handshake && fixture.ds.submit(data).is_ok();
            if !handshake {
                let _ = fixture.ds.submit(data);
            }
            if changed {
                *slot = None;
            }
        });
    }

    /// Builds a genuine message of the given `kind` (application message,
    /// commit, external Remove, external Add) in a two-member group, XORs the
    /// byte at `position` (modulo its length) with `xor`, and delivers it. Must
    /// never panic.
    pub fn mutated(kind: u8, position: usize, xor: u8) {
        let (mut alice, mut bob, server, group) = group();
        let mut message = match kind % 4 {
            0 => {
                let _ = alice.handle(Input::SendApplication(b"fuzz".to_vec()), NOW);
                drain(&mut alice)
                    .into_iter()
                    .find_map(|o| match o {
                        Output::Send(b) => Some(b),
                        _ => None,
                    })
                    .unwrap_or_default()
            }
            1 => {
                let _ = alice.handle(Input::CommitPending, NOW);
                drain(&mut alice)
                    .into_iter()
                    .find_map(|o| match o {
                        Output::Send(b) => Some(b),
                        _ => None,
                    })
                    .unwrap_or_default()
            }
            2 => server.propose_remove(&group, 0).unwrap_or_default(),
            _ => {
                let org = OrganisationKey::from_seed(&[1; 32]);
                let carol = member(5, &org, &server);
                let _ = bob.handle(
                    Input::Admitted {
                        device: DeviceId::from_bytes([5; 16]),
                    },
                    NOW,
                );
                server
                    .propose_add(&group, &carol.key_package())
                    .unwrap_or_default()
            }
        };
        if !message.is_empty() {
            let at = position % message.len();
            message[at] ^= xor;
        }
        let _ = bob.handle(Input::Delivered(message), NOW);
        drain(&mut bob);
        let _ = bob.handle(Input::CommitPending, NOW);
        drain(&mut bob);
    }
}
