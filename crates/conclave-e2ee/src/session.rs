//! One member's state in one meeting's MLS group.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use conclave_identity::{
    CredentialClaims, CredentialError, DeviceCredential, DeviceKey, OrganisationPublicKey,
};
use conclave_types::{DeviceId, Timestamp};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, ContentType, Credential, CredentialType, CredentialWithKey,
    Extension, Extensions, ExternalSender as MlsExternalSender, GroupId, KeyPackage, LeafNode,
    MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn,
    ProcessedMessage, ProcessedMessageContent, Proposal, ProtocolMessage, QueuedProposal, Sender,
    SenderExtensionIndex, SignaturePublicKey, StagedCommit, StagedWelcome,
    MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::types::SignatureScheme;
use openmls_traits::OpenMlsProvider as _;
use zeroize::Zeroizing;

use crate::code::security_code;
use crate::error::{RefusalReason, SessionError};

/// The only ciphersuite Conclave uses.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// The RFC 9605 §5.2 exporter label for the SFrame base key.
pub const SFRAME_EXPORTER_LABEL: &str = "SFrame 1.0 Base Key";

/// Length of the exported SFrame base key, in bytes: RFC 9605 §5.2 exports `AEAD.Nk`
/// bytes, 16 for SFrame's AES_128_GCM_SHA256_128 (what `conclave-frame` uses).
pub const SFRAME_SECRET_LEN: usize = 16;

/// How many past epochs' secrets a member keeps to decrypt late application messages.
const MAX_PAST_EPOCHS: usize = 2;

/// Most application messages queued while the group is busy.
const MAX_QUEUED_APPLICATION: usize = 256;

/// Largest input accepted by [`Session::handle`] (bytes); bigger is refused unparsed.
pub const MAX_MESSAGE_LEN: usize = 4 * 1024 * 1024;

/// What a participant brings: its organisation-signed device credential and the
/// 32-byte Ed25519 seed of the device key the credential names.
///
/// `Debug` never prints the seed.
pub struct MemberIdentity {
    credential: DeviceCredential,
    seed: Zeroizing<[u8; 32]>,
}

impl MemberIdentity {
    /// Bundles a credential with the seed of its device key (checked by
    /// [`Session::new`]).
    pub fn new(credential: DeviceCredential, seed: [u8; 32]) -> Self {
        Self {
            credential,
            seed: Zeroizing::new(seed),
        }
    }

    /// The device credential.
    pub fn credential(&self) -> &DeviceCredential {
        &self.credential
    }
}

impl fmt::Debug for MemberIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberIdentity")
            .field("credential", &self.credential)
            .field("seed", &"[redacted]")
            .finish()
    }
}

/// The public identity of the group's single external sender (the server): its
/// Ed25519 public key and the identity of its MLS basic credential. Members
/// create the group with exactly this sender in the `external_senders`
/// extension and accept Add/Remove proposals only from it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExternalSenderInfo {
    /// Ed25519 public key (32 bytes).
    pub signature_key: [u8; 32],
    /// The identity bytes of the server's basic credential.
    pub identity: Vec<u8>,
}

impl ExternalSenderInfo {
    pub(crate) fn to_mls(&self) -> MlsExternalSender {
        MlsExternalSender::new(
            SignaturePublicKey::from(self.signature_key.to_vec()),
            Credential::from(BasicCredential::new(self.identity.clone())),
        )
    }
}

/// A member of the group, as its organisation-signed credential describes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MemberInfo {
    /// The member's leaf index in the ratchet tree (its sender index in
    /// application messages and the SFrame key id base).
    pub leaf: u32,
    /// The verified claims of the member's device credential (`Debug` redacts names).
    pub claims: CredentialClaims,
}

/// Secret bytes (an exported key). `Debug` prints only the length; zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {}])", self.0.len())
    }
}

/// What the run loop feeds a [`Session`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// This participant is the first admitted: create the group (epoch 0, alone,
    /// with the server as external sender).
    CreateGroup,
    /// Bytes from the delivery service: an MLS message (proposal, commit,
    /// application message) or a Welcome.
    Delivered(Vec<u8>),
    /// Signalling announced that the server admitted this device; an Add for it
    /// may now be accepted.
    Admitted {
        /// The admitted device.
        device: DeviceId,
    },
    /// Signalling announced that this device's credential is revoked; Adds for it
    /// are refused from now on, even if it is announced as admitted later.
    Revoked {
        /// The revoked device.
        device: DeviceId,
    },
    /// The delivery service chose this member to commit the pending proposals.
    CommitPending,
    /// The delivery service refused our commit (another won the epoch): discard it.
    CommitRejected,
    /// Encrypt and send an application message to the group.
    SendApplication(Vec<u8>),
}

/// What a [`Session`] asks the run loop to do or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send this MLS message (commit or application message) to the delivery service.
    Send(Vec<u8>),
    /// Send this Welcome (an MLS message) to the delivery service for the joiners.
    Welcome(Vec<u8>),
    /// Something happened.
    Event(Event),
}

/// Something that happened in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// This member is now in the group (created it or processed a Welcome).
    Joined {
        /// The epoch joined.
        epoch: u64,
    },
    /// A new epoch began; members should compare the new security code.
    EpochChanged {
        /// The new epoch.
        epoch: u64,
        /// The epoch's security code.
        security_code: String,
    },
    /// A member was added (also reported for members already present when joining).
    MemberAdded(Box<MemberInfo>),
    /// The member at this leaf was removed (this member itself, if it is `own_leaf`).
    MemberRemoved {
        /// The removed leaf.
        leaf: u32,
    },
    /// This epoch's media key material: the SFrame base secret (RFC 9605 §5.2,
    /// `MLS-Exporter("SFrame 1.0 Base Key", "", 16)`) and this member's leaf index.
    KeyMaterial {
        /// The epoch it belongs to.
        epoch: u64,
        /// The exported secret.
        sframe_epoch_secret: Secret,
        /// This member's leaf index.
        own_leaf: u32,
    },
    /// A decrypted application message.
    Application {
        /// The sender's leaf index.
        sender_leaf: u32,
        /// The plaintext.
        data: Vec<u8>,
    },
    /// An Add (proposal, commit or Welcome) was refused and not applied.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
}

/// One member's state in one meeting's MLS group. Sans-IO: feed inputs with
/// [`Session::handle`], drain outputs with [`Session::poll_output`].
pub struct Session {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential_with_key: CredentialWithKey,
    key_package: Vec<u8>,
    org: OrganisationPublicKey,
    server: ExternalSenderInfo,
    group: Option<MlsGroup>,
    evicted: bool,
    admitted: HashSet<DeviceId>,
    revoked: HashSet<DeviceId>,
    pending_commit: Option<Vec<u8>>,
    queued: VecDeque<Vec<u8>>,
    /// Digests of our latest application messages, to ignore their echoes.
    recent_sent: VecDeque<[u8; 32]>,
    outputs: VecDeque<Output>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("epoch", &self.epoch())
            .field("evicted", &self.evicted)
            .field("pending_commit", &self.pending_commit.is_some())
            .finish_non_exhaustive()
    }
}

/// How many of our own application messages we recognise when echoed.
const MAX_RECENT_SENT: usize = 64;

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn lib_err(e: impl fmt::Display) -> SessionError {
    SessionError::Library(e.to_string())
}

fn rejected(e: impl fmt::Display) -> SessionError {
    SessionError::Rejected(e.to_string())
}

fn server_index() -> SenderExtensionIndex {
    SenderExtensionIndex::new(0)
}

/// Parses the device credential out of an MLS credential.
pub(crate) fn device_credential(credential: &Credential) -> Option<DeviceCredential> {
    if credential.credential_type() != CredentialType::Basic {
        return None;
    }
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    DeviceCredential::from_bytes(basic.identity()).ok()
}

impl Session {
    /// A participant who will create or join a group: checks that the seed is the
    /// key the credential names and that the credential is valid at `now`, then
    /// prepares the leaf credential and a KeyPackage ([`Session::key_package`]).
    pub fn new(
        identity: MemberIdentity,
        org: OrganisationPublicKey,
        server: ExternalSenderInfo,
        now: Timestamp,
    ) -> Result<Self, SessionError> {
        let claims = identity
            .credential
            .verify(&org, now)
            .map_err(|_| SessionError::BadIdentity("credential does not verify at `now`"))?;
        let public = DeviceKey::from_seed(&identity.seed).public();
        if public != claims.device_key {
            return Err(SessionError::BadIdentity(
                "seed is not the credential's device key",
            ));
        }
        let public = public.to_bytes().to_vec();
        let signer = SignatureKeyPair::from_raw(
            SignatureScheme::ED25519,
            identity.seed.to_vec(),
            public.clone(),
        );
        let credential_with_key = CredentialWithKey {
            credential: BasicCredential::new(identity.credential.to_bytes()).into(),
            signature_key: public.into(),
        };
        let provider = OpenMlsRustCrypto::default();
        let bundle = KeyPackage::builder()
            .build(CIPHERSUITE, &provider, &signer, credential_with_key.clone())
            .map_err(lib_err)?;
        let key_package = bundle
            .key_package()
            .tls_serialize_detached()
            .map_err(lib_err)?;
        Ok(Self {
            provider,
            signer,
            credential_with_key,
            key_package,
            org,
            server,
            group: None,
            evicted: false,
            admitted: HashSet::new(),
            revoked: HashSet::new(),
            pending_commit: None,
            queued: VecDeque::new(),
            recent_sent: VecDeque::new(),
            outputs: VecDeque::new(),
        })
    }

    /// The TLS-serialised KeyPackage the joiner gives the server at admission
    /// (the server wraps it in its external Add proposal).
    pub fn key_package(&self) -> Vec<u8> {
        self.key_package.clone()
    }

    /// The group id, once in a group.
    pub fn group_id(&self) -> Option<Vec<u8>> {
        self.group.as_ref().map(|g| g.group_id().to_vec())
    }

    /// The current epoch, once in a group (and not removed).
    pub fn epoch(&self) -> Option<u64> {
        self.active_group().map(|g| g.epoch().as_u64())
    }

    /// This member's leaf index, once in a group.
    pub fn own_leaf(&self) -> Option<u32> {
        self.active_group().map(|g| g.own_leaf_index().u32())
    }

    /// Whether this member was removed from the group.
    pub fn is_evicted(&self) -> bool {
        self.evicted
    }

    /// The current epoch's security code (see [`security_code`]).
    pub fn security_code(&self) -> Option<String> {
        self.active_group()
            .map(|g| security_code(g.epoch_authenticator().as_slice()))
    }

    /// The current epoch's SFrame base secret.
    pub fn sframe_epoch_secret(&self) -> Option<Secret> {
        let group = self.active_group()?;
        group
            .export_secret(
                self.provider.crypto(),
                SFRAME_EXPORTER_LABEL,
                b"",
                SFRAME_SECRET_LEN,
            )
            .ok()
            .map(|s| Secret(Zeroizing::new(s)))
    }

    /// The members, with the claims of their (verified on entry) credentials.
    pub fn members(&self) -> Vec<MemberInfo> {
        let Some(group) = self.active_group() else {
            return Vec::new();
        };
        group
            .members()
            .filter_map(|m| {
                let credential = device_credential(&m.credential)?;
                Some(MemberInfo {
                    leaf: m.index.u32(),
                    claims: credential.claims().clone(),
                })
            })
            .collect()
    }

    /// This member's view of the group's public state for the delivery
    /// service: a GroupInfo (TLS-serialised MLS message) for the current epoch,
    /// signed by this member, with the ratchet tree inside. The creator uploads
    /// it right after [`Input::CreateGroup`] and the server makes its
    /// [`DeliveryService`](crate::DeliveryService) from it
    /// ([`DeliveryService::from_group_info`](crate::DeliveryService::from_group_info)).
    /// It holds no secrets (its `external_pub` extension is an HPKE public key
    /// for external commits, which members and the DS refuse anyway).
    pub fn group_info(&self) -> Result<Vec<u8>, SessionError> {
        let group = match self.group.as_ref() {
            Some(g) if g.is_active() => g,
            Some(_) => return Err(SessionError::Evicted),
            None => return Err(SessionError::NoGroup),
        };
        group
            .export_group_info(self.provider.crypto(), &self.signer, true)
            .map_err(lib_err)?
            .tls_serialize_detached()
            .map_err(lib_err)
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn active_group(&self) -> Option<&MlsGroup> {
        self.group.as_ref().filter(|g| g.is_active())
    }

    /// Feeds one input. Hostile input and misuse return an error and leave the
    /// session unchanged; refusals of Adds are reported as events.
    pub fn handle(&mut self, input: Input, now: Timestamp) -> Result<(), SessionError> {
        match input {
            Input::CreateGroup => self.create_group(),
            Input::Delivered(bytes) => self.delivered(&bytes, now),
            Input::Admitted { device } => {
                // A revocation sticks: admitting a revoked device changes nothing.
                self.admitted.insert(device);
                Ok(())
            }
            Input::Revoked { device } => {
                self.admitted.remove(&device);
                self.revoked.insert(device);
                Ok(())
            }
            Input::CommitPending => self.commit(),
            Input::CommitRejected => {
                let provider = &self.provider;
                if let Some(group) = self.group.as_mut() {
                    group
                        .clear_pending_commit(provider.storage())
                        .map_err(lib_err)?;
                }
                self.pending_commit = None;
                Ok(())
            }
            Input::SendApplication(data) => {
                if self.evicted {
                    return Err(SessionError::Evicted);
                }
                if self.queued.len() >= MAX_QUEUED_APPLICATION {
                    return Err(SessionError::QueueFull);
                }
                self.queued.push_back(data);
                self.flush_application()
            }
        }
    }

    fn create_group(&mut self) -> Result<(), SessionError> {
        if self.evicted {
            return Err(SessionError::Evicted);
        }
        if self.group.is_some() {
            return Err(SessionError::AlreadyInGroup);
        }
        let extensions = Extensions::single(Extension::ExternalSenders(vec![self.server.to_mls()]))
            .map_err(lib_err)?;
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .max_past_epochs(MAX_PAST_EPOCHS)
            .with_group_context_extensions(extensions)
            .build();
        let group_id = GroupId::random(self.provider.rand());
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &config,
            group_id,
            self.credential_with_key.clone(),
        )
        .map_err(lib_err)?;
        self.group = Some(group);
        self.after_join()
    }

    fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .max_past_epochs(MAX_PAST_EPOCHS)
            .build()
    }

    fn after_join(&mut self) -> Result<(), SessionError> {
        let epoch = self.epoch().ok_or(SessionError::NoGroup)?;
        self.outputs
            .push_back(Output::Event(Event::Joined { epoch }));
        for member in self.members() {
            self.outputs
                .push_back(Output::Event(Event::MemberAdded(Box::new(member))));
        }
        self.announce_epoch()?;
        self.flush_application()
    }

    fn announce_epoch(&mut self) -> Result<(), SessionError> {
        let (epoch, code, own_leaf) = match self.active_group() {
            Some(g) => (
                g.epoch().as_u64(),
                security_code(g.epoch_authenticator().as_slice()),
                g.own_leaf_index().u32(),
            ),
            None => return Err(SessionError::NoGroup),
        };
        let secret = self.sframe_epoch_secret().ok_or(SessionError::Library(
            "cannot export the epoch secret".into(),
        ))?;
        self.outputs.push_back(Output::Event(Event::EpochChanged {
            epoch,
            security_code: code,
        }));
        self.outputs.push_back(Output::Event(Event::KeyMaterial {
            epoch,
            sframe_epoch_secret: secret,
            own_leaf,
        }));
        Ok(())
    }

    /// Sends queued application messages if the group can encrypt now (openmls
    /// refuses while proposals are pending or before joining).
    fn flush_application(&mut self) -> Result<(), SessionError> {
        let Some(group) = self.group.as_mut() else {
            return Ok(());
        };
        if !group.is_active() || group.has_pending_proposals() || self.pending_commit.is_some() {
            return Ok(());
        }
        while let Some(data) = self.queued.pop_front() {
            let message = group
                .create_message(&self.provider, &self.signer, &data)
                .map_err(lib_err)?;
            let bytes = message.tls_serialize_detached().map_err(lib_err)?;
            if self.recent_sent.len() >= MAX_RECENT_SENT {
                self.recent_sent.pop_front();
            }
            self.recent_sent.push_back(digest(&bytes));
            self.outputs.push_back(Output::Send(bytes));
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), SessionError> {
        if self.pending_commit.is_some() {
            return Err(SessionError::CommitInFlight);
        }
        let provider = &self.provider;
        let signer = &self.signer;
        let group = match self.group.as_mut() {
            Some(g) if g.is_active() => g,
            Some(_) => return Err(SessionError::Evicted),
            None => return Err(SessionError::NoGroup),
        };
        let (commit, welcome, _group_info) = group
            .commit_to_pending_proposals(provider, signer)
            .map_err(lib_err)?;
        let commit = commit.tls_serialize_detached().map_err(lib_err)?;
        let welcome = match welcome {
            Some(w) => Some(w.tls_serialize_detached().map_err(lib_err)?),
            None => None,
        };
        self.pending_commit = Some(commit.clone());
        self.outputs.push_back(Output::Send(commit));
        if let Some(welcome) = welcome {
            self.outputs.push_back(Output::Welcome(welcome));
        }
        Ok(())
    }

    fn delivered(&mut self, bytes: &[u8], now: Timestamp) -> Result<(), SessionError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(SessionError::Malformed("message too large"));
        }
        if !self.recent_sent.is_empty() && self.recent_sent.contains(&digest(bytes)) {
            // The delivery service echoed our own application message.
            return Ok(());
        }
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|_| SessionError::Malformed("not an MLS message"))?;
        let protocol: ProtocolMessage = match message.extract() {
            MlsMessageBodyIn::Welcome(welcome) => return self.welcome(welcome, now),
            MlsMessageBodyIn::PublicMessage(m) => m.into(),
            MlsMessageBodyIn::PrivateMessage(m) => m.into(),
            _ => return Err(SessionError::Malformed("not a group message or Welcome")),
        };
        if self.evicted {
            return Err(SessionError::Evicted);
        }
        let own_commit = self.pending_commit.as_deref() == Some(bytes);
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        if protocol.group_id() != group.group_id() {
            return Err(SessionError::WrongGroup);
        }
        if own_commit {
            return self.merge_own_commit();
        }
        if self.pending_commit.is_some()
            && protocol.content_type() == ContentType::Commit
            && protocol.epoch() == group.epoch()
        {
            // Another member's commit for our epoch: if the delivery service
            // forwards it, their commit won, so ours is void. (Proposals that
            // arrive meanwhile do not void it.)
            group
                .clear_pending_commit(self.provider.storage())
                .map_err(lib_err)?;
            self.pending_commit = None;
        }
        let processed: ProcessedMessage = group
            .process_message(&self.provider, protocol)
            .map_err(rejected)?;
        let sender = processed.sender().clone();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let Sender::Member(leaf) = sender else {
                    return Err(SessionError::Rejected(
                        "application from a non-member".into(),
                    ));
                };
                self.outputs.push_back(Output::Event(Event::Application {
                    sender_leaf: leaf.u32(),
                    data: app.into_bytes(),
                }));
                Ok(())
            }
            ProcessedMessageContent::ProposalMessage(proposal) => self.proposal(*proposal, now),
            ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                self.refuse(RefusalReason::UnsupportedProposal);
                Ok(())
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                self.staged_commit(*staged, &sender, now)
            }
            _ => Err(SessionError::Rejected("unsupported message content".into())),
        }
    }

    fn refuse(&mut self, reason: RefusalReason) {
        self.outputs
            .push_back(Output::Event(Event::Refused { reason }));
    }

    /// Checks a leaf's credential: well-formed, signed by the organisation, valid
    /// at `now`, the leaf's signature key is the credential's device key, and the
    /// device is not revoked.
    fn check_leaf(
        &self,
        leaf: &LeafNode,
        now: Timestamp,
    ) -> Result<CredentialClaims, RefusalReason> {
        let credential =
            device_credential(leaf.credential()).ok_or(RefusalReason::MalformedCredential)?;
        let claims = credential.verify(&self.org, now).map_err(|e| match e {
            CredentialError::Expired => RefusalReason::CredentialExpired,
            CredentialError::NotYetValid => RefusalReason::CredentialNotYetValid,
            _ => RefusalReason::NotSignedByOrganisation,
        })?;
        if leaf.signature_key().as_slice() != claims.device_key.to_bytes() {
            return Err(RefusalReason::KeyMismatch {
                device: claims.device_id,
            });
        }
        if self.revoked.contains(&claims.device_id) {
            return Err(RefusalReason::Revoked {
                device: claims.device_id,
            });
        }
        Ok(claims.clone())
    }

    /// Checks an Add: sent by the server, valid leaf credential, announced as admitted.
    fn check_add(
        &self,
        sender: &Sender,
        leaf: &LeafNode,
        now: Timestamp,
    ) -> Result<CredentialClaims, RefusalReason> {
        if *sender != Sender::External(server_index()) {
            return Err(RefusalReason::NotFromServer);
        }
        let claims = self.check_leaf(leaf, now)?;
        if !self.admitted.contains(&claims.device_id) {
            return Err(RefusalReason::NotAdmitted {
                device: claims.device_id,
            });
        }
        Ok(claims)
    }

    fn proposal(&mut self, proposal: QueuedProposal, now: Timestamp) -> Result<(), SessionError> {
        let verdict = match proposal.proposal() {
            Proposal::Add(add) => self
                .check_add(proposal.sender(), add.key_package().leaf_node(), now)
                .map(|_| ()),
            Proposal::Remove(_) if *proposal.sender() == Sender::External(server_index()) => Ok(()),
            Proposal::Remove(_) => Err(RefusalReason::NotFromServer),
            _ => Err(RefusalReason::UnsupportedProposal),
        };
        match verdict {
            Ok(()) => {
                if self.evicted {
                    return Err(SessionError::Evicted);
                }
                let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
                group
                    .store_pending_proposal(self.provider.storage(), proposal)
                    .map_err(lib_err)
            }
            Err(reason) => {
                self.refuse(reason);
                Ok(())
            }
        }
    }

    /// Checks everything a commit would change: each proposal is an Add or Remove
    /// from the server (Adds fully checked), and a path update keeps the
    /// committer's device.
    fn check_commit(
        &self,
        staged: &StagedCommit,
        sender: Option<u32>,
        now: Timestamp,
    ) -> Result<Vec<DeviceId>, RefusalReason> {
        let mut added = Vec::new();
        for queued in staged.queued_proposals() {
            match queued.proposal() {
                Proposal::Add(add) => {
                    let claims =
                        self.check_add(queued.sender(), add.key_package().leaf_node(), now)?;
                    added.push(claims.device_id);
                }
                Proposal::Remove(_) => {
                    if *queued.sender() != Sender::External(server_index()) {
                        return Err(RefusalReason::NotFromServer);
                    }
                }
                _ => return Err(RefusalReason::UnsupportedProposal),
            }
        }
        if let Some(leaf) = staged.update_path_leaf_node() {
            let claims = self.check_leaf(leaf, now)?;
            let leaf_index = sender.unwrap_or(u32::MAX);
            let before = self
                .members()
                .into_iter()
                .find(|m| m.leaf == leaf_index)
                .map(|m| m.claims.device_id);
            if before != Some(claims.device_id) {
                return Err(RefusalReason::CredentialChanged { leaf: leaf_index });
            }
        }
        Ok(added)
    }

    fn staged_commit(
        &mut self,
        staged: StagedCommit,
        sender: &Sender,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        let sender = match sender {
            Sender::Member(leaf) => Some(leaf.u32()),
            _ => None,
        };
        let added = match self.check_commit(&staged, sender, now) {
            Ok(added) => added,
            Err(reason) => {
                self.refuse(reason);
                return Ok(());
            }
        };
        let removed: Vec<u32> = staged
            .remove_proposals()
            .map(|r| r.remove_proposal().removed().u32())
            .collect();
        let self_removed = staged.self_removed();
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        group
            .merge_staged_commit(&self.provider, staged)
            .map_err(lib_err)?;
        self.after_commit(&added, &removed, self_removed)
    }

    fn merge_own_commit(&mut self) -> Result<(), SessionError> {
        let provider = &self.provider;
        let group = self.group.as_mut().ok_or(SessionError::NoGroup)?;
        let (added, removed) = match group.pending_commit() {
            Some(staged) => (
                staged
                    .add_proposals()
                    .filter_map(|a| {
                        device_credential(a.add_proposal().key_package().leaf_node().credential())
                    })
                    .map(|c| c.claims().device_id)
                    .collect::<Vec<_>>(),
                staged
                    .remove_proposals()
                    .map(|r| r.remove_proposal().removed().u32())
                    .collect::<Vec<_>>(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        group.merge_pending_commit(provider).map_err(lib_err)?;
        self.pending_commit = None;
        self.after_commit(&added, &removed, false)
    }

    fn after_commit(
        &mut self,
        added: &[DeviceId],
        removed: &[u32],
        self_removed: bool,
    ) -> Result<(), SessionError> {
        for leaf in removed {
            self.outputs
                .push_back(Output::Event(Event::MemberRemoved { leaf: *leaf }));
        }
        if self_removed {
            self.evicted = true;
            self.pending_commit = None;
            self.queued.clear();
            return Ok(());
        }
        for device in added {
            self.admitted.remove(device);
        }
        let members = self.members();
        for member in members
            .into_iter()
            .filter(|m| added.contains(&m.claims.device_id))
        {
            self.outputs
                .push_back(Output::Event(Event::MemberAdded(Box::new(member))));
        }
        self.announce_epoch()?;
        self.flush_application()
    }

    fn welcome(
        &mut self,
        welcome: openmls::prelude::Welcome,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        if self.evicted {
            return Err(SessionError::Evicted);
        }
        if self.group.is_some() {
            return Err(SessionError::UnexpectedWelcome);
        }
        let staged =
            StagedWelcome::new_from_welcome(&self.provider, &Self::join_config(), welcome, None)
                .map_err(rejected)?;
        let expected = self.server.to_mls();
        let external_ok = staged
            .group_context()
            .extensions()
            .external_senders()
            .is_some_and(|senders| senders.len() == 1 && senders[0] == expected);
        if !external_ok {
            self.refuse(RefusalReason::WrongExternalSender);
            return Ok(());
        }
        for member in staged.members() {
            let Some(credential) = device_credential(&member.credential) else {
                self.refuse(RefusalReason::MalformedCredential);
                return Ok(());
            };
            let verdict = match credential.verify(&self.org, now) {
                Err(CredentialError::Expired) => Err(RefusalReason::CredentialExpired),
                Err(CredentialError::NotYetValid) => Err(RefusalReason::CredentialNotYetValid),
                Err(_) => Err(RefusalReason::NotSignedByOrganisation),
                Ok(claims) if claims.device_key.to_bytes().as_slice() != member.signature_key => {
                    Err(RefusalReason::KeyMismatch {
                        device: claims.device_id,
                    })
                }
                Ok(claims) if self.revoked.contains(&claims.device_id) => {
                    Err(RefusalReason::Revoked {
                        device: claims.device_id,
                    })
                }
                Ok(_) => Ok(()),
            };
            if let Err(reason) = verdict {
                self.refuse(reason);
                return Ok(());
            }
        }
        let group = staged.into_group(&self.provider).map_err(rejected)?;
        self.group = Some(group);
        self.after_join()
    }
}
