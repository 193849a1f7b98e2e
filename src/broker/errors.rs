//! The error every broker operation returns; `http::error` maps it to a status in one place.

use crate::cluster::{ControllerError, MetaError};
use crate::partition::{FetchError, ReplicaError};

/// Serializable, so a broker that forwards a request can return the leader's error as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum BrokerError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many failed logins; retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("offset {offset} is out of range: the partition holds offsets {log_start_offset}..{high_watermark}")]
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        high_watermark: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// This broker does not lead the group; `leader` is its best guess. Forwarding retries on
    /// it; a client sees it only as 503 once the forwarding deadline passed.
    #[error("this broker does not lead the partition (leader: {leader:?}); retry")]
    NotLeader { leader: Option<u64> },
    /// Nothing was done and the same request may be sent again shortly (an idempotent batch with
    /// the same sequence is in flight, or a new leader is catching up). Forwarding retries it
    /// until its deadline; a client sees 503 with `Retry-After`.
    #[error("{0}")]
    Retry(String),
    /// A forwarded request got no answer; it may have run. Only forwarding sees it.
    #[error("{0}")]
    OutcomeUnknown(String),
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ControllerError> for BrokerError {
    fn from(error: ControllerError) -> Self {
        match error {
            ControllerError::Meta(meta) => meta.into(),
            ControllerError::Replica(replica) => replica.into(),
            ControllerError::Timeout(_) => BrokerError::Unavailable(error.to_string()),
        }
    }
}

impl From<MetaError> for BrokerError {
    fn from(error: MetaError) -> Self {
        match error {
            MetaError::TopicExists(_) | MetaError::UserExists(_) | MetaError::LastSuperuser => {
                BrokerError::Conflict(error.to_string())
            }
            MetaError::NoSuchTopic(_)
            | MetaError::NoSuchUser(_)
            | MetaError::NoSuchAcl(_)
            | MetaError::NoSuchBroker(_)
            | MetaError::NoSuchGroup(_)
            | MetaError::NoSuchMember { .. } => BrokerError::NotFound(error.to_string()),
            MetaError::BrokerInUse(_) => BrokerError::Conflict(error.to_string()),
            MetaError::Placement(_) => BrokerError::BadRequest(error.to_string()),
            MetaError::AlreadyBootstrapped | MetaError::Malformed(_) => {
                BrokerError::Internal(error.to_string())
            }
        }
    }
}

impl From<ReplicaError> for BrokerError {
    fn from(error: ReplicaError) -> Self {
        match error {
            ReplicaError::NotLeader { leader } => BrokerError::NotLeader {
                leader: leader.map(|node| node.0),
            },
            ReplicaError::Invalid(reason) => BrokerError::Conflict(reason),
            ReplicaError::Retry(_) => BrokerError::Retry(error.to_string()),
            ReplicaError::OffsetBeyondEnd { .. } => BrokerError::Conflict(error.to_string()),
            // A leadership transfer is under way: nothing was proposed, so forwarding retries
            // (on this broker or the new leader) until its deadline.
            ReplicaError::Busy => BrokerError::NotLeader { leader: None },
            other => BrokerError::Unavailable(other.to_string()),
        }
    }
}

impl From<FetchError> for BrokerError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            } => BrokerError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            },
            FetchError::Replica(replica) => replica.into(),
        }
    }
}

impl From<crate::storage::StorageError> for BrokerError {
    fn from(error: crate::storage::StorageError) -> Self {
        BrokerError::Internal(error.to_string())
    }
}
