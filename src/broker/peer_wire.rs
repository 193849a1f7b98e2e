//! What brokers send each other when one forwards an operation to a group's leader: the request,
//! the reply and the refusal, encoded with postcard into the body of a peer-link envelope.
//!
//! Owns only plain data and the facts about a request that routing needs (its group, whether it
//! may be sent twice, how long it may wait on the leader). A leaf: it imports no other `broker`
//! module, so forwarding (`forward`) and the consumer-group calls (`groups`) both build on it
//! without importing each other. All brokers of a cluster run the same version; the encoding is
//! postcard's (fields in order, enum variants by index), so reordering a variant changes the wire.

use serde::{Deserialize, Serialize};

use crate::audit::UnsealedEvent;
use crate::budget::Reservation;
use crate::cluster::groups::{OffsetReset, TopicPartition};
use crate::cluster::{MetaError, MetaOutput, METADATA_GROUP};
use crate::partition::dedup::ProducerStamp;
use crate::partition::read::FetchedRecord;
use crate::partition::EncodedRecords;
use crate::partition::ReplicaStatus;
use crate::raft::{ConfChange, ConfChangeRefusal, GroupId};

/// An operation that must run on the leader of `group()`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Records encoded once by the broker the client called; the leader writes them as they are.
    Produce {
        group: GroupId,
        records: EncodedRecords,
        timestamp_ms: u64,
    },
    Fetch {
        group: GroupId,
        offset: u64,
        wait_ms: u64,
        records_max: u64,
        bytes_max: u64,
    },
    Describe {
        group: GroupId,
    },
    /// A JSON `MetaEnvelope` for the controller.
    Meta {
        envelope: Vec<u8>,
    },
    Audit {
        group: GroupId,
        events: Vec<UnsealedEvent>,
    },
    Membership {
        group: GroupId,
        change: ConfChange,
    },
    Transfer {
        group: GroupId,
        to: u64,
    },
    /// Broker health as the controller leader sees it.
    Health,
    /// Start a balancer round on the controller leader now.
    Rebalance,
    /// A consumer-group call (member liveness, committed offsets, group fetch).
    Group(GroupCall),
    /// A produce the leader deduplicates by `stamp`: safe to send again after any failure.
    IdempotentProduce {
        group: GroupId,
        records: EncodedRecords,
        timestamp_ms: u64,
        stamp: ProducerStamp,
    },
    /// A produce written only if the batch starts at `expected_base` (nothing else was appended
    /// since the writer read the log); refused with `TailMoved` otherwise. Last, so the
    /// encodings of the variants above stay as they were.
    ConditionalProduce {
        group: GroupId,
        records: EncodedRecords,
        timestamp_ms: u64,
        expected_base: u64,
    },
}

/// Whether a request may be sent again once it may have run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    /// The leader deduplicates it: safe to send again after any failure.
    Deduplicated,
    /// Running it twice could change the outcome: never sent again once it may have run.
    Unsafe,
    /// Running it twice does no harm (reads, and changes the leader checks before making).
    Harmless,
}

impl ForwardRequest {
    pub fn group(&self) -> GroupId {
        match self {
            ForwardRequest::Produce { group, .. }
            | ForwardRequest::IdempotentProduce { group, .. }
            | ForwardRequest::ConditionalProduce { group, .. }
            | ForwardRequest::Fetch { group, .. }
            | ForwardRequest::Describe { group }
            | ForwardRequest::Audit { group, .. }
            | ForwardRequest::Membership { group, .. }
            | ForwardRequest::Transfer { group, .. } => *group,
            ForwardRequest::Meta { .. } | ForwardRequest::Health | ForwardRequest::Rebalance => {
                METADATA_GROUP
            }
            ForwardRequest::Group(call) => call.group(),
        }
    }

    pub fn resend(&self) -> Resend {
        match self {
            ForwardRequest::IdempotentProduce { .. } => Resend::Deduplicated,
            // Sent twice, the second is refused (the tail moved), but the writer cannot tell
            // its own append from another's: never resent once it may have run.
            ForwardRequest::Produce { .. }
            | ForwardRequest::ConditionalProduce { .. }
            | ForwardRequest::Meta { .. }
            | ForwardRequest::Audit { .. } => Resend::Unsafe,
            ForwardRequest::Fetch { .. }
            | ForwardRequest::Describe { .. }
            | ForwardRequest::Membership { .. }
            | ForwardRequest::Transfer { .. }
            | ForwardRequest::Health
            | ForwardRequest::Rebalance
            | ForwardRequest::Group(_) => Resend::Harmless,
        }
    }

    /// Extra time the operation may legitimately take on the leader (a long poll), in ms.
    pub fn wait_ms(&self) -> u64 {
        match self {
            ForwardRequest::Fetch { wait_ms, .. } => *wait_ms,
            ForwardRequest::Group(call) => call.wait_ms(),
            _ => 0,
        }
    }

    /// A fetch's byte limit (plain or a group's): the broker that forwards it holds the answer
    /// until it is written, so it reserves that much of its own fetch budget first.
    pub fn fetch_bytes_max(&self) -> Option<u64> {
        match self {
            ForwardRequest::Fetch { bytes_max, .. }
            | ForwardRequest::Group(GroupCall::Fetch { bytes_max, .. }) => Some(*bytes_max),
            _ => None,
        }
    }

    /// The same fetch with another wait and byte limit; any other request unchanged.
    pub fn fetch_with(&self, wait: u64, bytes: u64) -> ForwardRequest {
        let mut request = self.clone();
        match &mut request {
            ForwardRequest::Fetch {
                wait_ms, bytes_max, ..
            }
            | ForwardRequest::Group(GroupCall::Fetch {
                wait_ms, bytes_max, ..
            }) => {
                *wait_ms = wait;
                *bytes_max = bytes;
            }
            _ => {}
        }
        request
    }
}

/// A group as its leader sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    pub leader: Option<u64>,
    pub term: u64,
    pub commit: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Each member's matched index, as the leader knows it.
    pub progress: Vec<(u64, u64)>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

impl GroupDescription {
    pub fn from_status(status: &ReplicaStatus) -> GroupDescription {
        GroupDescription {
            leader: status.leader.map(|node| node.0),
            term: status.term.0,
            // The commit index the progress was measured against.
            commit: status.progress_commit.0,
            voters: status.voters.iter().map(|node| node.0).collect(),
            learners: status.learners.iter().map(|node| node.0).collect(),
            progress: status
                .progress
                .iter()
                .map(|(node, index)| (node.0, index.0))
                .collect(),
            high_watermark: 0,
            log_start_offset: 0,
        }
    }

    /// Members whose log reaches the commit index.
    pub fn in_sync(&self) -> Vec<u64> {
        self.progress
            .iter()
            .filter(|(_, matched)| *matched >= self.commit)
            .map(|(node, _)| *node)
            .collect()
    }
}

/// Bytes of this broker's fetch budget that an answer holds while it is in this process, given
/// back when the last clone is dropped. Not part of the wire format: a peer's answer arrives
/// holding none.
#[derive(Clone, Debug, Default)]
pub struct Held {
    _reservation: Option<std::sync::Arc<Reservation>>,
}

impl Held {
    pub fn new(reservation: Reservation) -> Held {
        Held {
            _reservation: Some(std::sync::Arc::new(reservation)),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardReply {
    Produced {
        base_offset: u64,
    },
    Fetched {
        records: Vec<FetchedRecord>,
        offset: u64,
        high_watermark: u64,
        log_start_offset: u64,
        /// The fetch budget the records hold on this broker; never sent.
        #[serde(skip)]
        held: Held,
    },
    Described(GroupDescription),
    Meta {
        index: u64,
        output: Result<MetaOutput, MetaError>,
    },
    /// Per broker: milliseconds since it was last heard from (`None`: never).
    Health(Vec<(u64, Option<u64>)>),
    Group(GroupAnswer),
    Done,
}

/// What a commit must match: the member's generation and assigned partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCheck {
    pub generation: u64,
    pub partitions: Vec<TopicPartition>,
}

/// The part of a consumer-group call that runs on a group leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GroupCall {
    /// On the controller leader: the member is alive. With `check`, also refuses a stale
    /// generation or a partition not assigned to the member.
    Heartbeat {
        group: String,
        member_id: String,
        principal: String,
        check: Option<CommitCheck>,
    },
    /// On the controller leader: how long ago each member of `group` was last heard from.
    Sessions { group: String },
    /// On a partition leader: the group's committed offset there.
    Committed {
        partition_group: GroupId,
        consumer_group: String,
    },
    /// On a partition leader: store the group's next offset.
    Commit {
        partition_group: GroupId,
        consumer_group: String,
        offset: u64,
    },
    /// On a partition leader: records from the group's committed offset (long poll).
    Fetch {
        partition_group: GroupId,
        consumer_group: String,
        reset: OffsetReset,
        wait_ms: u64,
        records_max: u64,
        bytes_max: u64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GroupAnswer {
    Member {
        generation: u64,
        assignments: Vec<TopicPartition>,
    },
    /// Per member id: milliseconds since its last heartbeat on the controller leader.
    Sessions(Vec<(String, u64)>),
    Committed {
        offset: Option<u64>,
        high_watermark: u64,
        log_start_offset: u64,
    },
}

impl GroupCall {
    pub fn group(&self) -> GroupId {
        match self {
            GroupCall::Heartbeat { .. } | GroupCall::Sessions { .. } => METADATA_GROUP,
            GroupCall::Committed {
                partition_group, ..
            }
            | GroupCall::Commit {
                partition_group, ..
            }
            | GroupCall::Fetch {
                partition_group, ..
            } => *partition_group,
        }
    }

    /// A long poll's wait.
    pub fn wait_ms(&self) -> u64 {
        match self {
            GroupCall::Fetch { wait_ms, .. } => *wait_ms,
            _ => 0,
        }
    }
}

/// The answer a broker sends back for a forwarded request.
pub type PeerAnswer = Result<ForwardReply, PeerRefusal>;

/// Why a broker did not answer a forwarded request with a reply. The first three say the request
/// should go elsewhere or again; `Refused` is final.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PeerRefusal {
    /// This broker does not lead the group; `leader` is the leader it knows of.
    #[error("this broker does not lead the partition (leader: {leader:?}); retry")]
    NotLeader { leader: Option<u64> },
    /// Nothing was done and the same request may be sent again shortly (an idempotent batch with
    /// the same sequence is in flight, or a new leader is catching up).
    #[error("{reason}")]
    Retry { reason: String },
    /// The broker could not run the request now (its replica stopped, a proposal was dropped, the
    /// broker is starting).
    #[error("{reason}")]
    Unavailable { reason: String },
    /// The leader's final answer, which the client sees unchanged.
    #[error("{0}")]
    Refused(Refusal),
    /// The write reached the leader's log and may or may not be applied (the leader stepped
    /// down or stopped while it waited): resent only if it is deduplicated. Last, so the
    /// encodings of the variants above stay as they were.
    #[error("{reason}")]
    OutcomeUnknown { reason: String },
}

/// A leader's final answer to a forwarded request, by the kind of error the client is shown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
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
    #[error("invalid membership change: {0}")]
    MembershipRefused(ConfChangeRefusal),
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
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// Appended last: variants are encoded by position.
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Overloaded(String),
    /// Appended last: variants are encoded by position.
    #[error("{0}")]
    InsufficientStorage(String),
    /// Appended last: variants are encoded by position.
    #[error("the log ends at offset {tail}, not {expected}: something was appended meanwhile")]
    TailMoved { expected: u64, tail: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_say_whether_they_may_run_twice_and_how_long_they_wait() {
        let meta = ForwardRequest::Meta { envelope: vec![1] };
        assert_eq!(meta.resend(), Resend::Unsafe);
        assert_eq!(meta.group(), METADATA_GROUP);
        let audit = ForwardRequest::Audit {
            group: GroupId(4),
            events: Vec::new(),
        };
        assert_eq!(audit.resend(), Resend::Unsafe);
        let fetch = ForwardRequest::Fetch {
            group: GroupId(5),
            offset: 0,
            wait_ms: 300,
            records_max: 10,
            bytes_max: 1000,
        };
        assert_eq!((fetch.resend(), fetch.wait_ms()), (Resend::Harmless, 300));
        let poll = ForwardRequest::Group(GroupCall::Fetch {
            partition_group: GroupId(6),
            consumer_group: "g".into(),
            reset: OffsetReset::Earliest,
            wait_ms: 700,
            records_max: 10,
            bytes_max: 1000,
        });
        assert_eq!((poll.resend(), poll.wait_ms()), (Resend::Harmless, 700));
        assert_eq!(poll.group(), GroupId(6));
        assert_eq!(ForwardRequest::Health.wait_ms(), 0);
    }

    /// Found by the `peer_frame` fuzz target: a produce for group 5 whose records are a count of
    /// one and no record. It decoded, and the leader proposed an entry nobody could read.
    #[test]
    fn a_produce_whose_records_do_not_decode_is_refused() {
        let body = [0, 5, 1, 1, 190, 33];
        let decoded = postcard::from_bytes::<ForwardRequest>(&body);
        assert!(decoded.is_err(), "{decoded:?}");
    }
}
