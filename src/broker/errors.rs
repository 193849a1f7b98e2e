//! The error every broker operation returns, its one classification for clients (`ErrorClass`:
//! status, problem type, Retry-After), and its conversions from the errors of the layers below
//! and to and from the inter-broker refusal (`peer_wire::PeerRefusal`).
//!
//! The classification is plain numbers and names, no HTTP types: `http::error` builds responses
//! from it, and audit events record its status, so the two never disagree.
//!
//! `BrokerError` never crosses the peer link itself: a leader's error travels as a `PeerRefusal`
//! and becomes the same `BrokerError` again on the broker the client called, so the client sees
//! the leader's answer unchanged.

use super::peer_wire::{PeerRefusal, Refusal};
use crate::cluster::{ControllerError, MetaError};
use crate::partition::{FetchError, ReplicaError};
use crate::raft::ConfChangeRefusal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// A membership change that does not apply to the group's configuration (409, like any
    /// conflict); typed so the balancer can tell a change that already happened.
    #[error("invalid membership change: {0}")]
    MembershipRefused(ConfChangeRefusal),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many failed logins; retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    /// A per-principal or cluster-wide count is at its bound (429, no Retry-After: waiting does
    /// not help until something is released).
    #[error("{0}")]
    TooMany(String),
    /// A memory budget of this broker is in use by other requests (503 with Retry-After):
    /// nothing was read or written; the same request may be sent again shortly.
    #[error("{0}")]
    Overloaded(String),
    /// This broker's disk has less free space than `storage.disk_free_bytes_min` (507 with
    /// Retry-After): nothing was written; writes resume once space is freed.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("offset {offset} is out of range: the partition holds offsets {log_start_offset}..{high_watermark}")]
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        high_watermark: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// A write reached the leader and may or may not be applied (the leader stepped down or
    /// stopped while it waited for its commit). Never resent by forwarding unless the write is
    /// deduplicated; a client sees 503 and decides.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// This broker does not lead the group; `leader` is its best guess. Forwarding retries on
    /// it; a client sees it only as 503 once the forwarding deadline passed.
    #[error("this broker does not lead the partition (leader: {leader:?}); retry")]
    NotLeader { leader: Option<u64> },
    /// Nothing was done and the same request may be sent again shortly (an idempotent batch with
    /// the same sequence is in flight, or a new leader is catching up). Forwarding retries it
    /// until its deadline; a client sees 503 with `Retry-After`.
    #[error("{0}")]
    Retry(String),
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A conditional append found the log ending at `tail`, not where the writer expected:
    /// nothing was written (409, like any conflict); the writer reads again and decides anew.
    #[error("the log ends at offset {tail}, not {expected}: something was appended meanwhile")]
    TailMoved { expected: u64, tail: u64 },
}

/// How a client is shown an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorClass {
    /// The HTTP status.
    pub status: u16,
    /// The problem type, served as `/problems/{problem_type}`.
    pub problem_type: &'static str,
    /// Seconds a client should wait before sending the request again, when it should.
    pub retry_after_s: Option<u64>,
}

/// The status an audit event records for an operation that was allowed and done.
pub const STATUS_OK: u16 = 200;

/// How long a client is asked to wait after a 503.
const UNAVAILABLE_RETRY_AFTER_S: u64 = 1;

impl BrokerError {
    /// The one mapping from an error to what the client sees.
    pub fn class(&self) -> ErrorClass {
        let (status, problem_type) = match self {
            BrokerError::BadRequest(_) => (400, "bad-request"),
            BrokerError::Unauthenticated(_) => (401, "unauthenticated"),
            BrokerError::Forbidden(_) => (403, "forbidden"),
            BrokerError::NotFound(_) => (404, "not-found"),
            BrokerError::Conflict(_)
            | BrokerError::MembershipRefused(_)
            | BrokerError::TailMoved { .. } => (409, "conflict"),
            BrokerError::TooLarge(_) => (413, "too-large"),
            BrokerError::RateLimited { .. } => (429, "rate-limited"),
            BrokerError::TooMany(_) => (429, "too-many"),
            BrokerError::Overloaded(_) => (503, "overloaded"),
            BrokerError::InsufficientStorage(_) => (507, "insufficient-storage"),
            BrokerError::OffsetOutOfRange { .. } => (416, "offset-out-of-range"),
            BrokerError::Unavailable(_)
            | BrokerError::OutcomeUnknown(_)
            | BrokerError::NotLeader { .. }
            | BrokerError::Retry(_) => (503, "unavailable"),
            BrokerError::AuditUnavailable(_) => (503, "audit-unavailable"),
            BrokerError::Internal(_) => (500, "internal"),
        };
        let retry_after_s = match self {
            BrokerError::RateLimited { retry_after_s } => Some(*retry_after_s),
            BrokerError::Unavailable(_)
            | BrokerError::OutcomeUnknown(_)
            | BrokerError::NotLeader { .. }
            | BrokerError::Retry(_)
            | BrokerError::Overloaded(_)
            | BrokerError::InsufficientStorage(_)
            | BrokerError::AuditUnavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_S),
            BrokerError::BadRequest(_)
            | BrokerError::Unauthenticated(_)
            | BrokerError::Forbidden(_)
            | BrokerError::NotFound(_)
            | BrokerError::Conflict(_)
            | BrokerError::MembershipRefused(_)
            | BrokerError::TailMoved { .. }
            | BrokerError::TooLarge(_)
            | BrokerError::TooMany(_)
            | BrokerError::OffsetOutOfRange { .. }
            | BrokerError::Internal(_) => None,
        };
        ErrorClass {
            status,
            problem_type,
            retry_after_s,
        }
    }

    /// The HTTP status the client gets, as audit events record it.
    pub fn status(&self) -> u16 {
        self.class().status
    }
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
            MetaError::TooManyMembers { .. }
            | MetaError::TooManyGroups { .. }
            | MetaError::TooManyTopics { .. } => BrokerError::TooMany(error.to_string()),
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
            ReplicaError::ConfChange(refusal) => BrokerError::MembershipRefused(refusal),
            ReplicaError::Retry(_) => BrokerError::Retry(error.to_string()),
            ReplicaError::TooLarge { .. } => BrokerError::TooLarge(error.to_string()),
            ReplicaError::OffsetBeyondEnd { .. } => BrokerError::Conflict(error.to_string()),
            ReplicaError::TailMoved { expected, tail } => BrokerError::TailMoved { expected, tail },
            // A leadership transfer is under way: nothing was proposed, so forwarding retries
            // (on this broker or the new leader) until its deadline.
            ReplicaError::Busy => BrokerError::NotLeader { leader: None },
            // The proposal was in the log of a leader that stepped down or stopped: a new
            // leader may still commit it.
            ReplicaError::LeadershipLost | ReplicaError::Stopped => {
                BrokerError::OutcomeUnknown(error.to_string())
            }
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

/// A leader's error as it goes back over the peer link.
impl From<BrokerError> for PeerRefusal {
    fn from(error: BrokerError) -> Self {
        let refusal = match error {
            BrokerError::NotLeader { leader } => return PeerRefusal::NotLeader { leader },
            BrokerError::Retry(reason) => return PeerRefusal::Retry { reason },
            BrokerError::Unavailable(reason) => return PeerRefusal::Unavailable { reason },
            BrokerError::OutcomeUnknown(reason) => return PeerRefusal::OutcomeUnknown { reason },
            BrokerError::BadRequest(detail) => Refusal::BadRequest(detail),
            BrokerError::Unauthenticated(detail) => Refusal::Unauthenticated(detail),
            BrokerError::Forbidden(detail) => Refusal::Forbidden(detail),
            BrokerError::NotFound(detail) => Refusal::NotFound(detail),
            BrokerError::Conflict(detail) => Refusal::Conflict(detail),
            BrokerError::MembershipRefused(refusal) => Refusal::MembershipRefused(refusal),
            BrokerError::TooLarge(detail) => Refusal::TooLarge(detail),
            BrokerError::RateLimited { retry_after_s } => Refusal::RateLimited { retry_after_s },
            BrokerError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            } => Refusal::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            },
            BrokerError::AuditUnavailable(detail) => Refusal::AuditUnavailable(detail),
            BrokerError::Internal(detail) => Refusal::Internal(detail),
            BrokerError::TooMany(detail) => Refusal::TooMany(detail),
            BrokerError::Overloaded(detail) => Refusal::Overloaded(detail),
            BrokerError::InsufficientStorage(detail) => Refusal::InsufficientStorage(detail),
            BrokerError::TailMoved { expected, tail } => Refusal::TailMoved { expected, tail },
        };
        PeerRefusal::Refused(refusal)
    }
}

/// A leader's final answer, as the broker the client called returns it.
impl From<Refusal> for BrokerError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::BadRequest(detail) => BrokerError::BadRequest(detail),
            Refusal::Unauthenticated(detail) => BrokerError::Unauthenticated(detail),
            Refusal::Forbidden(detail) => BrokerError::Forbidden(detail),
            Refusal::NotFound(detail) => BrokerError::NotFound(detail),
            Refusal::Conflict(detail) => BrokerError::Conflict(detail),
            Refusal::MembershipRefused(refusal) => BrokerError::MembershipRefused(refusal),
            Refusal::TooLarge(detail) => BrokerError::TooLarge(detail),
            Refusal::RateLimited { retry_after_s } => BrokerError::RateLimited { retry_after_s },
            Refusal::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            } => BrokerError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            },
            Refusal::AuditUnavailable(detail) => BrokerError::AuditUnavailable(detail),
            Refusal::Internal(detail) => BrokerError::Internal(detail),
            Refusal::TooMany(detail) => BrokerError::TooMany(detail),
            Refusal::Overloaded(detail) => BrokerError::Overloaded(detail),
            Refusal::InsufficientStorage(detail) => BrokerError::InsufficientStorage(detail),
            Refusal::TailMoved { expected, tail } => BrokerError::TailMoved { expected, tail },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of error, with the status, problem type and Retry-After clients rely on.
    fn every_kind() -> Vec<(BrokerError, u16, &'static str, Option<u64>)> {
        vec![
            (
                BrokerError::BadRequest("b".into()),
                400,
                "bad-request",
                None,
            ),
            (
                BrokerError::Unauthenticated("u".into()),
                401,
                "unauthenticated",
                None,
            ),
            (BrokerError::Forbidden("f".into()), 403, "forbidden", None),
            (BrokerError::NotFound("n".into()), 404, "not-found", None),
            (BrokerError::Conflict("c".into()), 409, "conflict", None),
            (
                BrokerError::MembershipRefused(ConfChangeRefusal::NotMember),
                409,
                "conflict",
                None,
            ),
            (BrokerError::TooLarge("t".into()), 413, "too-large", None),
            (
                BrokerError::RateLimited { retry_after_s: 7 },
                429,
                "rate-limited",
                Some(7),
            ),
            (
                BrokerError::OffsetOutOfRange {
                    offset: 1,
                    log_start_offset: 2,
                    high_watermark: 3,
                },
                416,
                "offset-out-of-range",
                None,
            ),
            (
                BrokerError::Unavailable("a".into()),
                503,
                "unavailable",
                Some(1),
            ),
            (
                BrokerError::OutcomeUnknown("a".into()),
                503,
                "unavailable",
                Some(1),
            ),
            (
                BrokerError::NotLeader { leader: Some(2) },
                503,
                "unavailable",
                Some(1),
            ),
            (BrokerError::Retry("r".into()), 503, "unavailable", Some(1)),
            (
                BrokerError::AuditUnavailable("a".into()),
                503,
                "audit-unavailable",
                Some(1),
            ),
            (BrokerError::Internal("i".into()), 500, "internal", None),
            (BrokerError::TooMany("t".into()), 429, "too-many", None),
            (
                BrokerError::Overloaded("o".into()),
                503,
                "overloaded",
                Some(1),
            ),
            (
                BrokerError::InsufficientStorage("s".into()),
                507,
                "insufficient-storage",
                Some(1),
            ),
            (
                BrokerError::TailMoved {
                    expected: 3,
                    tail: 4,
                },
                409,
                "conflict",
                None,
            ),
        ]
    }

    /// Names each variant, so a new one fails to compile here until `every_kind` lists it.
    fn variant(error: &BrokerError) -> &'static str {
        match error {
            BrokerError::BadRequest(_) => "BadRequest",
            BrokerError::Unauthenticated(_) => "Unauthenticated",
            BrokerError::Forbidden(_) => "Forbidden",
            BrokerError::NotFound(_) => "NotFound",
            BrokerError::Conflict(_) => "Conflict",
            BrokerError::MembershipRefused(_) => "MembershipRefused",
            BrokerError::TooLarge(_) => "TooLarge",
            BrokerError::RateLimited { .. } => "RateLimited",
            BrokerError::OffsetOutOfRange { .. } => "OffsetOutOfRange",
            BrokerError::Unavailable(_) => "Unavailable",
            BrokerError::OutcomeUnknown(_) => "OutcomeUnknown",
            BrokerError::NotLeader { .. } => "NotLeader",
            BrokerError::Retry(_) => "Retry",
            BrokerError::AuditUnavailable(_) => "AuditUnavailable",
            BrokerError::Internal(_) => "Internal",
            BrokerError::TooMany(_) => "TooMany",
            BrokerError::Overloaded(_) => "Overloaded",
            BrokerError::InsufficientStorage(_) => "InsufficientStorage",
            BrokerError::TailMoved { .. } => "TailMoved",
        }
    }

    #[test]
    fn the_classification_is_total_and_stable() {
        let kinds = every_kind();
        let names: std::collections::BTreeSet<_> = kinds.iter().map(|k| variant(&k.0)).collect();
        assert_eq!(names.len(), 19, "every variant is listed once: {names:?}");
        for (error, status, problem_type, retry_after_s) in kinds {
            let expected = ErrorClass {
                status,
                problem_type,
                retry_after_s,
            };
            assert_eq!(error.class(), expected, "{error:?}");
            assert_eq!(error.status(), status, "{error:?}");
        }
    }
}
