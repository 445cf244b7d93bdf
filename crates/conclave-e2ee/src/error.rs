//! Errors and refusal reasons.

use conclave_types::DeviceId;

/// Why [`Session`](crate::Session) or [`ExternalSender`](crate::ExternalSender)
/// could not do what it was asked.
///
/// The variants fall in two groups: **hostile or broken input** (bytes from the
/// network that do not parse or do not verify; log and carry on, the session is
/// unchanged) and **misuse** (the caller asked for something that makes no sense
/// in the current state; a bug in the run loop).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Input: the bytes are not a well-formed MLS message (or key package).
    #[error("malformed MLS input: {0}")]
    Malformed(&'static str),
    /// Input: the message is for another group.
    #[error("message for another MLS group")]
    WrongGroup,
    /// Input: a well-formed message that MLS processing rejected (bad signature,
    /// wrong epoch, cannot be decrypted, invalid commit, ...). The text is
    /// openmls's explanation and contains no secrets.
    #[error("MLS message rejected: {0}")]
    Rejected(String),
    /// Input: a group whose `external_senders` extension does not name exactly
    /// this server (the delivery service refuses to serve it).
    #[error("the group's external sender is not this server")]
    WrongExternalSender,
    /// Input: a Welcome arrived although this member is already in the group.
    #[error("unexpected Welcome: already in the group")]
    UnexpectedWelcome,
    /// Misuse: the operation needs a group and this member has none yet.
    #[error("not in a group yet")]
    NoGroup,
    /// Misuse: [`Input::CreateGroup`](crate::Input::CreateGroup) while already in a group.
    #[error("already in a group")]
    AlreadyInGroup,
    /// Misuse: this member was removed from the group; the session is finished.
    #[error("removed from the group")]
    Evicted,
    /// Misuse: a commit of ours is still waiting for the delivery service's verdict.
    #[error("a commit of ours is still pending")]
    CommitInFlight,
    /// Misuse: too many application messages queued while the group was busy.
    #[error("application message queue is full")]
    QueueFull,
    /// Misuse: the identity given to [`Session::new`](crate::Session::new) is
    /// inconsistent (seed does not match the credential's key, credential invalid).
    #[error("invalid member identity: {0}")]
    BadIdentity(&'static str),
    /// An internal MLS operation failed where it should not have; the text is
    /// openmls's explanation.
    #[error("MLS library error: {0}")]
    Library(String),
}

/// Why a member refused an Add (or a commit or Welcome carrying one).
///
/// Refusals are reported as [`Event::Refused`](crate::Event::Refused) and the
/// offending proposal is not stored (so this member never commits it), or the
/// offending commit or Welcome is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The leaf's credential is not a basic credential holding a well-formed
    /// Conclave device credential.
    MalformedCredential,
    /// The device credential is not signed by the organisation.
    NotSignedByOrganisation,
    /// The device credential has expired.
    CredentialExpired,
    /// The device credential is not valid yet.
    CredentialNotYetValid,
    /// The leaf's MLS signature key is not the device key the credential names.
    KeyMismatch {
        /// The device the credential names.
        device: DeviceId,
    },
    /// The device was announced as revoked.
    Revoked {
        /// The revoked device.
        device: DeviceId,
    },
    /// An Add for a device the server never announced as admitted (a "ghost").
    NotAdmitted {
        /// The device the Add would bring in.
        device: DeviceId,
    },
    /// The proposal was not sent by the group's external sender (the server).
    NotFromServer,
    /// A proposal type, or a sender, this protocol does not use.
    UnsupportedProposal,
    /// A commit replaces a member's credential with one for another device.
    CredentialChanged {
        /// The leaf whose credential would change.
        leaf: u32,
    },
    /// A Welcome into a group whose external sender is not our server.
    WrongExternalSender,
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MalformedCredential => f.write_str("malformed device credential"),
            Self::NotSignedByOrganisation => {
                f.write_str("device credential not signed by the organisation")
            }
            Self::CredentialExpired => f.write_str("device credential expired"),
            Self::CredentialNotYetValid => f.write_str("device credential not valid yet"),
            Self::KeyMismatch { device } => {
                write!(f, "leaf signature key is not the device key of {device}")
            }
            Self::Revoked { device } => write!(f, "device {device} is revoked"),
            Self::NotAdmitted { device } => write!(f, "device {device} was not admitted"),
            Self::NotFromServer => f.write_str("proposal not sent by the server"),
            Self::UnsupportedProposal => f.write_str("unsupported proposal or sender"),
            Self::CredentialChanged { leaf } => {
                write!(f, "commit changes the device of leaf {leaf}")
            }
            Self::WrongExternalSender => f.write_str("group's external sender is not our server"),
        }
    }
}
