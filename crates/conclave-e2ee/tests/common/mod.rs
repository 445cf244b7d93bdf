//! A test harness that plays the server: external sender and delivery service
//! (fan-out to every member in one order, first commit of an epoch wins).

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use conclave_e2ee::{
    DeliveryService, Event, ExternalSender, Input, MemberIdentity, Output, Session, SessionError,
    Verdict,
};
use conclave_identity::{CredentialClaims, DeviceCredential, DeviceKey, OrganisationKey};
use conclave_types::{DeviceId, DeviceTrust, Timestamp, UserId};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{BasicCredential, CredentialWithKey, KeyPackage};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::types::SignatureScheme;

pub const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);
pub const LATER: Timestamp = Timestamp::from_unix_millis(4_000_000_000_000);

pub fn org() -> OrganisationKey {
    OrganisationKey::from_seed(&[7; 32])
}

pub fn server() -> ExternalSender {
    ExternalSender::from_seed(&[9; 32], b"conclave.example".to_vec())
}

pub fn device_id(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 16])
}

pub fn seed(n: u8) -> [u8; 32] {
    let mut s = [n; 32];
    s[0] = 0xAA;
    s
}

pub fn claims(n: u8, device_key_seed: [u8; 32], expires_at: Timestamp) -> CredentialClaims {
    CredentialClaims {
        organisation: "Example Ltd".into(),
        user_id: UserId::from_bytes([n; 16]),
        user_name: format!("user{n}"),
        display_name: format!("User {n}"),
        device_id: device_id(n),
        device_key: DeviceKey::from_seed(&device_key_seed).public(),
        trust: DeviceTrust::Managed,
        issued_at: Timestamp::from_unix_millis(0),
        expires_at,
    }
}

pub fn credential(n: u8) -> DeviceCredential {
    org().issue_credential(claims(n, seed(n), LATER))
}

pub fn session(n: u8) -> Session {
    Session::new(
        MemberIdentity::new(credential(n), seed(n)),
        org().public(),
        server().info(),
        NOW,
    )
    .unwrap()
}

/// A KeyPackage built directly with openmls: any credential bytes, any signing key.
pub fn raw_key_package(credential: Vec<u8>, signing_seed: [u8; 32]) -> Vec<u8> {
    let public = DeviceKey::from_seed(&signing_seed)
        .public()
        .to_bytes()
        .to_vec();
    let signer = SignatureKeyPair::from_raw(
        SignatureScheme::ED25519,
        signing_seed.to_vec(),
        public.clone(),
    );
    let provider = OpenMlsRustCrypto::default();
    let bundle = KeyPackage::builder()
        .build(
            conclave_e2ee::CIPHERSUITE,
            &provider,
            &signer,
            CredentialWithKey {
                credential: BasicCredential::new(credential).into(),
                signature_key: public.into(),
            },
        )
        .unwrap();
    bundle.key_package().tls_serialize_detached().unwrap()
}

pub struct Harness {
    pub server: ExternalSender,
    pub ds: DeliveryService,
    pub sessions: Vec<Session>,
    pub numbers: Vec<u8>,
    pub events: Vec<Vec<Event>>,
    pub errors: Vec<Vec<SessionError>>,
    drop_welcome_from: Vec<bool>,
}

impl Harness {
    /// Member `n` creates the group.
    pub fn new(n: u8) -> Self {
        let mut creator = session(n);
        creator.handle(Input::CreateGroup, NOW).unwrap();
        // The creator uploads the group's public state; the DS validates from then on.
        let ds = DeliveryService::from_group_info(&creator.group_info().unwrap(), &server().info())
            .unwrap();
        let mut h = Self {
            server: server(),
            ds,
            sessions: vec![creator],
            numbers: vec![n],
            events: vec![Vec::new()],
            errors: vec![Vec::new()],
            drop_welcome_from: vec![false],
        };
        h.pump();
        h
    }

    /// Group of members `1..=size`.
    pub fn with_members(size: u8) -> Self {
        let mut h = Self::new(1);
        for n in 2..=size {
            h.join(n);
        }
        h
    }

    pub fn index_of(&self, n: u8) -> usize {
        self.numbers.iter().position(|m| *m == n).unwrap()
    }

    pub fn member(&self, n: u8) -> &Session {
        &self.sessions[self.index_of(n)]
    }

    pub fn member_mut(&mut self, n: u8) -> &mut Session {
        let i = self.index_of(n);
        &mut self.sessions[i]
    }

    pub fn in_group(&self) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|i| self.sessions[*i].epoch().is_some())
            .collect()
    }

    /// A session that will join later.
    pub fn push(&mut self, n: u8, session: Session) -> usize {
        self.sessions.push(session);
        self.numbers.push(n);
        self.events.push(Vec::new());
        self.errors.push(Vec::new());
        self.drop_welcome_from.push(false);
        self.sessions.len() - 1
    }

    pub fn announce_admitted(&mut self, device: DeviceId) {
        for i in self.in_group() {
            self.sessions[i]
                .handle(Input::Admitted { device }, NOW)
                .unwrap();
        }
    }

    /// Delivers a message to every member in the group, in order.
    pub fn broadcast(&mut self, bytes: &[u8]) {
        for i in 0..self.sessions.len() {
            if self.sessions[i].group_id().is_none() || self.sessions[i].is_evicted() {
                continue;
            }
            if let Err(e) = self.sessions[i].handle(Input::Delivered(bytes.to_vec()), NOW) {
                self.errors[i].push(e);
            }
        }
    }

    /// The server proposes adding the holder of `key_package`.
    pub fn propose_add(&mut self, key_package: &[u8]) {
        let proposal = self
            .server
            .propose_add(self.ds.group(), key_package)
            .unwrap();
        assert!(matches!(self.ds.submit(&proposal), Ok(Verdict::Forward)));
        self.broadcast(&proposal);
        self.pump();
    }

    /// The server proposes removing member `n`.
    pub fn propose_remove(&mut self, n: u8) {
        let leaf = self.member(n).own_leaf().unwrap();
        assert_eq!(self.ds.leaf_of(device_id(n)), Some(leaf));
        let proposal = self.server.propose_remove(self.ds.group(), leaf).unwrap();
        assert!(matches!(self.ds.submit(&proposal), Ok(Verdict::Forward)));
        self.broadcast(&proposal);
        self.pump();
    }

    /// The DS asks member `n` to commit.
    pub fn commit_by(&mut self, n: u8) {
        self.member_mut(n)
            .handle(Input::CommitPending, NOW)
            .unwrap();
        self.pump();
    }

    /// The whole join flow for a new member `n`, committed by the first member.
    pub fn join(&mut self, n: u8) {
        let joiner = session(n);
        let key_package = joiner.key_package();
        self.push(n, joiner);
        self.announce_admitted(device_id(n));
        self.propose_add(&key_package);
        let committer = self.numbers[self.in_group()[0]];
        self.commit_by(committer);
        assert!(self.member(n).epoch().is_some(), "member {n} joined");
    }

    /// Several joiners at once, as the server does when it admits a burst of
    /// people: every device is announced, the server proposes one Add each, and
    /// one commit by `committer` covers them all (one Welcome for all joiners).
    pub fn join_batch(&mut self, ns: &[u8], committer: u8) {
        let mut key_packages = Vec::new();
        for &n in ns {
            let joiner = session(n);
            key_packages.push(joiner.key_package());
            self.push(n, joiner);
            self.announce_admitted(device_id(n));
        }
        for key_package in &key_packages {
            self.propose_add(key_package);
        }
        self.commit_by(committer);
        for &n in ns {
            assert!(self.member(n).epoch().is_some(), "member {n} joined");
        }
    }

    /// Routes every output until nothing moves.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.sessions.len() {
                while let Some(output) = self.sessions[i].poll_output() {
                    moved = true;
                    self.route(i, output);
                }
            }
            if !moved {
                break;
            }
        }
    }

    pub fn route(&mut self, from: usize, output: Output) {
        match output {
            Output::Send(bytes) => match self.ds.submit(&bytes).unwrap() {
                Verdict::Forward => self.broadcast(&bytes),
                _ => {
                    self.drop_welcome_from[from] = true;
                    self.sessions[from]
                        .handle(Input::CommitRejected, NOW)
                        .unwrap();
                }
            },
            Output::Welcome(bytes) => {
                if std::mem::take(&mut self.drop_welcome_from[from]) {
                    return;
                }
                for i in 0..self.sessions.len() {
                    if self.sessions[i].group_id().is_none() {
                        if let Err(e) =
                            self.sessions[i].handle(Input::Delivered(bytes.clone()), NOW)
                        {
                            self.errors[i].push(e);
                        }
                    }
                }
            }
            Output::Event(event) => self.events[from].push(event),
            _ => {}
        }
    }

    /// All active members agree on epoch, code, SFrame secret and membership.
    pub fn assert_consistent(&self) {
        let active = self.in_group();
        let first = &self.sessions[active[0]];
        for i in &active {
            let s = &self.sessions[*i];
            assert_eq!(
                s.epoch(),
                first.epoch(),
                "epoch of member {}",
                self.numbers[*i]
            );
            assert_eq!(s.security_code(), first.security_code());
            assert_eq!(s.sframe_epoch_secret(), first.sframe_epoch_secret());
            assert_eq!(s.members(), first.members());
        }
        assert_eq!(first.members().len(), active.len());
    }

    pub fn take_events(&mut self, n: u8) -> Vec<Event> {
        let i = self.index_of(n);
        std::mem::take(&mut self.events[i])
    }

    pub fn take_errors(&mut self, n: u8) -> Vec<SessionError> {
        let i = self.index_of(n);
        std::mem::take(&mut self.errors[i])
    }
}
