//! Errors at the boundary of the Raft core.

use thiserror::Error;

use super::types::{GroupId, NodeId};

/// Why the caller's log store could not answer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StorageError {
    /// The index lies in the compacted prefix (below the snapshot index).
    #[error("log index is compacted")]
    Compacted,
    /// The data exists but cannot be read right now (for example past the last index).
    #[error("log entry is unavailable")]
    Unavailable,
    #[error("log store I/O error: {0}")]
    Io(String),
}

/// Why a proposal, a membership change or a transfer was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("a membership change is still uncommitted")]
    ConfChangePending,
    #[error("the leader has not yet committed an entry of its own term")]
    NoCommitInTerm,
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    #[error("invalid membership change: {reason}")]
    InvalidConfChange { reason: ConfChangeRefusal },
    #[error("invalid transfer target {target:?}")]
    InvalidTransferTarget { target: NodeId },
}

/// Why a single-server membership change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
pub enum ConfChangeRefusal {
    #[error("node is already a member")]
    AlreadyMember,
    #[error("node is not a learner")]
    NotLearner,
    #[error("node is not a member")]
    NotMember,
    #[error("cannot remove the last voter")]
    LastVoter,
}

/// Why an incoming message was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StepError {
    #[error("message for group {got:?} stepped into group {expected:?}")]
    WrongGroup { expected: GroupId, got: GroupId },
    #[error("message for node {got:?} stepped into node {expected:?}")]
    WrongRecipient { expected: NodeId, got: NodeId },
}
