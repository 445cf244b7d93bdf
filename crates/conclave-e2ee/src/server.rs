//! The server's side: the group's single external sender, and the delivery
//! service that validates and orders the group's handshake messages.

use std::fmt;

use conclave_types::DeviceId;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    ContentType, GroupEpoch, GroupId, KeyPackageIn, LeafNodeIndex, MlsMessageBodyIn, MlsMessageIn,
    ProcessedMessageContent, Proposal, ProposalStore, ProtocolMessage, ProtocolVersion,
    PublicGroup, QueuedProposal, Sender,
};
use openmls::prelude::{ExternalProposal, SenderExtensionIndex};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::types::SignatureScheme;
use openmls_traits::OpenMlsProvider as _;

use crate::error::SessionError;
use crate::session::{device_credential, ExternalSenderInfo, MAX_MESSAGE_LEN};

/// Which group, in which epoch, a proposal is for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupRef {
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The epoch the proposal is for (proposals are only valid in their epoch).
    pub epoch: u64,
}

/// The server as the group's single external sender: holds an Ed25519 key and a
/// basic credential, and signs Add and Remove proposals as MLS `PublicMessage`s.
///
/// `Debug` never prints the key.
pub struct ExternalSender {
    signer: SignatureKeyPair,
    info: ExternalSenderInfo,
    provider: OpenMlsRustCrypto,
}

impl fmt::Debug for ExternalSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalSender")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl ExternalSender {
    /// The external sender whose Ed25519 seed is `seed` and whose basic credential
    /// carries `identity` (e.g. the server's host name).
    pub fn from_seed(seed: &[u8; 32], identity: Vec<u8>) -> Self {
        let public = ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes();
        Self {
            signer: SignatureKeyPair::from_raw(
                SignatureScheme::ED25519,
                seed.to_vec(),
                public.to_vec(),
            ),
            info: ExternalSenderInfo {
                signature_key: public,
                identity,
            },
            provider: OpenMlsRustCrypto::default(),
        }
    }

    /// What members need to know about this sender.
    pub fn info(&self) -> ExternalSenderInfo {
        self.info.clone()
    }

    /// An external Add proposal for the joiner whose TLS-serialised KeyPackage is
    /// `key_package` (checked: well-formed, signed, our ciphersuite).
    pub fn propose_add(
        &self,
        group: &GroupRef,
        key_package: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        if key_package.len() > MAX_MESSAGE_LEN {
            return Err(SessionError::Malformed("key package too large"));
        }
        let key_package = KeyPackageIn::tls_deserialize_exact(key_package)
            .map_err(|_| SessionError::Malformed("not a key package"))?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| SessionError::Rejected(e.to_string()))?;
        if key_package.ciphersuite() != crate::CIPHERSUITE {
            return Err(SessionError::Rejected("wrong ciphersuite".into()));
        }
        let message = ExternalProposal::new_add::<OpenMlsRustCrypto>(
            key_package,
            GroupId::from_slice(&group.group_id),
            GroupEpoch::from(group.epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .map_err(|e| SessionError::Library(e.to_string()))?;
        message
            .tls_serialize_detached()
            .map_err(|e| SessionError::Library(e.to_string()))
    }

    /// An external Remove proposal for the member at `leaf`.
    pub fn propose_remove(&self, group: &GroupRef, leaf: u32) -> Result<Vec<u8>, SessionError> {
        let message = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            LeafNodeIndex::new(leaf),
            GroupId::from_slice(&group.group_id),
            GroupEpoch::from(group.epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .map_err(|e| SessionError::Library(e.to_string()))?;
        message
            .tls_serialize_detached()
            .map_err(|e| SessionError::Library(e.to_string()))
    }
}

/// What kind of message a delivery service is looking at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum MessageKind {
    /// A commit (handshake; in plaintext in this protocol).
    Commit,
    /// A proposal.
    Proposal,
    /// An encrypted handshake message (its type is hidden).
    EncryptedHandshake,
    /// An application message.
    Application,
    /// A Welcome (for the joiners only).
    Welcome,
}

/// The routing facts a delivery service can read from a message without keys.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MessageInfo {
    /// What it is.
    pub kind: MessageKind,
    /// The group and epoch (absent for a Welcome).
    pub group: Option<GroupRef>,
}

/// Reads the routing facts (kind, group id, epoch) of an MLS message.
pub fn inspect(bytes: &[u8]) -> Result<MessageInfo, SessionError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(SessionError::Malformed("message too large"));
    }
    let message = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|_| SessionError::Malformed("not an MLS message"))?;
    let protocol: ProtocolMessage = match message.extract() {
        MlsMessageBodyIn::Welcome(_) => {
            return Ok(MessageInfo {
                kind: MessageKind::Welcome,
                group: None,
            })
        }
        MlsMessageBodyIn::PublicMessage(m) => m.into(),
        MlsMessageBodyIn::PrivateMessage(m) => m.into(),
        _ => return Err(SessionError::Malformed("not a group message or Welcome")),
    };
    let encrypted = matches!(protocol, ProtocolMessage::PrivateMessage(_));
    let kind = match (protocol.content_type(), encrypted) {
        (ContentType::Application, _) => MessageKind::Application,
        (_, true) => MessageKind::EncryptedHandshake,
        (ContentType::Commit, false) => MessageKind::Commit,
        (ContentType::Proposal, false) => MessageKind::Proposal,
    };
    Ok(MessageInfo {
        kind,
        group: Some(GroupRef {
            group_id: protocol.group_id().to_vec(),
            epoch: protocol.epoch().as_u64(),
        }),
    })
}

/// The delivery service's verdict on a submitted message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Verdict {
    /// Forward to every member (commits: including the committer, who merges on
    /// seeing its own commit; Welcomes: to the joiners).
    Forward,
    /// A commit for an epoch that another commit already ended: the author
    /// lost the race. Do not forward it; tell the author
    /// [`Input::CommitRejected`](crate::Input::CommitRejected).
    Rejected,
}

/// The delivery service (DS) of one group: validates handshake messages
/// against the group's public state and orders them. The first valid commit
/// of an epoch wins and advances the epoch; later commits for that epoch are
/// [`Verdict::Rejected`].
///
/// # Validation
///
/// A DS made with [`DeliveryService::from_group_info`] tracks the group's
/// public state (ratchet tree and group context, an openmls `PublicGroup`;
/// no secrets) and accepts a handshake message only if openmls's public
/// processing accepts it and it fits this protocol:
///
/// - **proposals** must be the configured external sender's (the server's):
///   signature verified against the `external_senders` extension, for the
///   current epoch, Add (of a valid KeyPackage) or Remove (of a current
///   member) only. Members send no proposals. Accepted
///   proposals are remembered, since commits cover them by reference.
/// - **commits** must be for the current epoch, signed by the key of the
///   committer's current leaf (so from a current member), cover only the
///   server's Add and Remove proposals, keep the committer's device in its
///   leaf, and apply to the tree (path, parent hashes, tree hash, lifetimes).
///   The DS then merges the commit: its epoch and membership follow the group.
///   What the DS cannot check is the confirmation tag and the encrypted path
///   secrets (it has no epoch secrets): a member that holds them still checks
///   and refuses a commit that fails there.
/// - **encrypted handshake messages** are refused: the DS cannot validate them,
///   and members of this protocol never send them.
/// - **application messages** are forwarded if they are for this group and
///   not for a future epoch (members decrypt up to two past epochs).
/// - **Welcomes** are forwarded; the caller delivers one only if the commit it
///   belongs to was forwarded.
///
/// # What the server calls when
///
/// 1. The first admitted participant creates the group and uploads
///    [`Session::group_info`](crate::Session::group_info); the server makes
///    the DS with [`DeliveryService::from_group_info`] (which checks the
///    group names this server as its only external sender) before it proposes
///    anything. The uploaded group is the meeting's group from then on.
/// 2. For each admission or departure, the server builds its proposal for
///    [`DeliveryService::group`] (current epoch) with [`ExternalSender`] and
///    passes it through [`DeliveryService::submit`] like any other message, so
///    the DS knows it; [`DeliveryService::leaf_of`] gives the leaf of a device
///    to remove.
/// 3. Every message a member sends goes through [`DeliveryService::submit`]:
///    `Ok(Forward)`: send to every member (and a commit's Welcome to its
///    joiners); `Ok(Rejected)`: tell the author
///    [`Input::CommitRejected`](crate::Input::CommitRejected) and drop its
///    Welcome; `Err(_)`: hostile or broken input, drop it (and its Welcome),
///    log, and, if it was a commit the author is waiting on, send the author
///    [`Input::CommitRejected`](crate::Input::CommitRejected) too. An error
///    leaves the DS unchanged.
/// 4. Proposals that the winning commit did not cover are void in the new
///    epoch: propose them again for [`DeliveryService::group`].
///
/// The DS performs no I/O and never reads the clock (openmls checks leaf
/// lifetimes against the system clock, as on members).
#[derive(Debug)]
pub struct DeliveryService {
    group: GroupRef,
    /// `None` only for the ordering-only DS of [`DeliveryService::new`].
    public: Option<Box<PublicGroup>>,
    provider: OpenMlsRustCrypto,
}

fn rejected(e: impl fmt::Display) -> SessionError {
    SessionError::Rejected(e.to_string())
}

impl DeliveryService {
    /// An **ordering-only** DS for the group `group_id`, currently in `epoch`:
    /// first commit of an epoch wins, nothing is checked cryptographically.
    /// Only for tests and tools that cannot supply the group's public state; a
    /// server uses [`DeliveryService::from_group_info`].
    pub fn new(group_id: Vec<u8>, epoch: u64) -> Self {
        Self {
            group: GroupRef { group_id, epoch },
            public: None,
            provider: OpenMlsRustCrypto::default(),
        }
    }

    /// A validating DS for the group whose signed GroupInfo (with the ratchet
    /// tree inside) is `group_info`, as [`Session::group_info`](crate::Session::group_info)
    /// exports it. Checks that the GroupInfo is signed by a member of the tree,
    /// the tree is valid, the ciphersuite is ours, and the group's
    /// `external_senders` extension names exactly `server` (this server).
    pub fn from_group_info(
        group_info: &[u8],
        server: &ExternalSenderInfo,
    ) -> Result<Self, SessionError> {
        if group_info.len() > MAX_MESSAGE_LEN {
            return Err(SessionError::Malformed("group info too large"));
        }
        let message = MlsMessageIn::tls_deserialize_exact(group_info)
            .map_err(|_| SessionError::Malformed("not an MLS message"))?;
        let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
            return Err(SessionError::Malformed("not a GroupInfo"));
        };
        if info.ciphersuite() != crate::CIPHERSUITE {
            return Err(SessionError::Rejected("wrong ciphersuite".into()));
        }
        let tree = info
            .extensions()
            .ratchet_tree()
            .ok_or(SessionError::Malformed("GroupInfo without a ratchet tree"))?
            .ratchet_tree()
            .clone();
        let provider = OpenMlsRustCrypto::default();
        let (public, _) = PublicGroup::from_external(
            provider.crypto(),
            provider.storage(),
            tree,
            info,
            ProposalStore::new(),
        )
        .map_err(rejected)?;
        let expected = server.to_mls();
        let ours = public
            .group_context()
            .extensions()
            .external_senders()
            .is_some_and(|senders| senders.len() == 1 && senders[0] == expected);
        if !ours {
            return Err(SessionError::WrongExternalSender);
        }
        Ok(Self {
            group: GroupRef {
                group_id: public.group_id().to_vec(),
                epoch: public.group_context().epoch().as_u64(),
            },
            public: Some(Box::new(public)),
            provider,
        })
    }

    /// The group and its current epoch, for the server's proposals.
    pub fn group(&self) -> &GroupRef {
        &self.group
    }

    /// Whether this DS validates handshake messages (made with
    /// [`DeliveryService::from_group_info`]).
    pub fn validates(&self) -> bool {
        self.public.is_some()
    }

    /// The group's members as the DS sees them: leaf index and the device its
    /// credential names (not verified against the organisation key here; members
    /// verify). Empty for an ordering-only DS.
    pub fn members(&self) -> Vec<(u32, DeviceId)> {
        let Some(public) = self.public.as_deref() else {
            return Vec::new();
        };
        public
            .members()
            .filter_map(|m| {
                let credential = device_credential(&m.credential)?;
                Some((m.index.u32(), credential.claims().device_id))
            })
            .collect()
    }

    /// The leaf of `device`, if it is in the group (for
    /// [`ExternalSender::propose_remove`]).
    pub fn leaf_of(&self, device: DeviceId) -> Option<u32> {
        self.members()
            .into_iter()
            .find_map(|(leaf, d)| (d == device).then_some(leaf))
    }

    /// Decides about a message submitted for the group (by a member or the
    /// server itself). See the type's documentation for what is checked.
    /// Errors are hostile or broken input and leave the DS unchanged.
    pub fn submit(&mut self, bytes: &[u8]) -> Result<Verdict, SessionError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(SessionError::Malformed("message too large"));
        }
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|_| SessionError::Malformed("not an MLS message"))?;
        let protocol: ProtocolMessage = match message.extract() {
            MlsMessageBodyIn::Welcome(_) => return Ok(Verdict::Forward),
            MlsMessageBodyIn::PublicMessage(m) => m.into(),
            MlsMessageBodyIn::PrivateMessage(m) => m.into(),
            _ => return Err(SessionError::Malformed("not a group message or Welcome")),
        };
        if protocol.group_id().as_slice() != self.group.group_id.as_slice() {
            return Err(SessionError::WrongGroup);
        }
        let epoch = protocol.epoch().as_u64();
        let encrypted = matches!(protocol, ProtocolMessage::PrivateMessage(_));
        let content = protocol.content_type();
        let Some(public) = self.public.as_deref_mut() else {
            // Ordering only: the first commit of an epoch wins.
            if content == ContentType::Commit || (encrypted && content != ContentType::Application)
            {
                if epoch != self.group.epoch {
                    return Ok(Verdict::Rejected);
                }
                self.group.epoch = self.group.epoch.saturating_add(1);
            }
            return Ok(Verdict::Forward);
        };
        if content == ContentType::Application {
            if epoch > self.group.epoch {
                return Err(SessionError::Rejected(
                    "application message for a future epoch".into(),
                ));
            }
            return Ok(Verdict::Forward);
        }
        if encrypted {
            return Err(SessionError::Rejected(
                "encrypted handshake message: the delivery service cannot validate it".into(),
            ));
        }
        if epoch < self.group.epoch {
            return match content {
                // Another commit already ended that epoch: a lost race.
                ContentType::Commit => Ok(Verdict::Rejected),
                _ => Err(SessionError::Rejected("proposal for a past epoch".into())),
            };
        }
        if epoch > self.group.epoch {
            return Err(SessionError::Rejected("message for a future epoch".into()));
        }
        let processed = public
            .process_message(self.provider.crypto(), protocol)
            .map_err(rejected)?;
        let sender = processed.sender().clone();
        match processed.into_content() {
            ProcessedMessageContent::ProposalMessage(proposal) => {
                check_proposal(&proposal)?;
                if let Proposal::Remove(remove) = proposal.proposal() {
                    if public.leaf(remove.removed()).is_none() {
                        return Err(SessionError::Rejected(
                            "Remove of a leaf that holds no member".into(),
                        ));
                    }
                }
                public
                    .add_proposal(self.provider.storage(), *proposal)
                    .map_err(|e| SessionError::Library(e.to_string()))?;
                Ok(Verdict::Forward)
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let Sender::Member(committer) = sender else {
                    return Err(SessionError::Rejected("commit from a non-member".into()));
                };
                for queued in staged.queued_proposals() {
                    check_proposal(queued)?;
                }
                if let Some(leaf) = staged.update_path_leaf_node() {
                    let before = public
                        .leaf(committer)
                        .and_then(|l| device_credential(l.credential()))
                        .map(|c| c.claims().device_id);
                    let after = device_credential(leaf.credential()).map(|c| c.claims().device_id);
                    if before.is_none() || before != after {
                        return Err(SessionError::Rejected(
                            "commit changes the committer's device".into(),
                        ));
                    }
                }
                public
                    .merge_commit(self.provider.storage(), *staged)
                    .map_err(|e| SessionError::Library(e.to_string()))?;
                self.group.epoch = public.group_context().epoch().as_u64();
                Ok(Verdict::Forward)
            }
            _ => Err(SessionError::Rejected(
                "not a proposal or commit this protocol uses".into(),
            )),
        }
    }
}

/// A proposal (on its own or covered by a commit) must be the server's Add or
/// Remove.
fn check_proposal(proposal: &QueuedProposal) -> Result<(), SessionError> {
    if *proposal.sender() != Sender::External(SenderExtensionIndex::new(0)) {
        return Err(SessionError::Rejected(
            "proposal not sent by the external sender".into(),
        ));
    }
    match proposal.proposal() {
        Proposal::Add(_) | Proposal::Remove(_) => Ok(()),
        _ => Err(SessionError::Rejected("unsupported proposal type".into())),
    }
}
