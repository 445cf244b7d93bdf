//! The server's side: the group's single external sender, and a minimal
//! in-memory delivery-service ordering helper.

use std::fmt;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    ContentType, GroupEpoch, GroupId, KeyPackageIn, LeafNodeIndex, MlsMessageBodyIn, MlsMessageIn,
    ProtocolMessage, ProtocolVersion,
};
use openmls::prelude::{ExternalProposal, SenderExtensionIndex};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::types::SignatureScheme;
use openmls_traits::OpenMlsProvider as _;

use crate::error::SessionError;
use crate::session::{ExternalSenderInfo, MAX_MESSAGE_LEN};

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
    /// Refused; for a commit, tell the committer [`Input::CommitRejected`](crate::Input::CommitRejected).
    Rejected,
}

/// A minimal in-memory ordering helper for one group: the first commit of an
/// epoch wins (and advances the epoch), later commits for that epoch are rejected.
/// It does not check commits cryptographically; a real server should.
#[derive(Clone, Debug)]
pub struct DeliveryService {
    group: GroupRef,
}

impl DeliveryService {
    /// Orders the group `group_id`, currently in `epoch`.
    pub fn new(group_id: Vec<u8>, epoch: u64) -> Self {
        Self {
            group: GroupRef { group_id, epoch },
        }
    }

    /// The group and its current epoch, for the server's proposals.
    pub fn group(&self) -> &GroupRef {
        &self.group
    }

    /// Decides about a message a member submitted.
    pub fn submit(&mut self, bytes: &[u8]) -> Result<Verdict, SessionError> {
        let info = inspect(bytes)?;
        let Some(group) = info.group else {
            return Ok(Verdict::Forward);
        };
        if group.group_id != self.group.group_id {
            return Err(SessionError::WrongGroup);
        }
        match info.kind {
            MessageKind::Commit | MessageKind::EncryptedHandshake => {
                if group.epoch == self.group.epoch {
                    self.group.epoch = self.group.epoch.saturating_add(1);
                    Ok(Verdict::Forward)
                } else {
                    Ok(Verdict::Rejected)
                }
            }
            _ => Ok(Verdict::Forward),
        }
    }
}
