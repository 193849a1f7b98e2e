//! Any broker serves any call: an operation on a Raft group runs on the broker that leads the
//! group, here or over the peer link.
//!
//! Owns the forwarded request and answer types (postcard over the peer link), the leader search
//! (local status, the last leader that answered, the leader a refusing broker names, then each
//! replica in turn) with its deadline; `local` runs a request on the leader.
//! A forwarded request is never forwarded again: a broker that does not lead answers `NotLeader`
//! and the caller moves on. Authentication, authorization and audit happen once, on the broker
//! the client called; the peer link is mutually authenticated, so the leader trusts its peer.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::groups::{GroupAnswer, GroupCall};
use super::{Broker, BrokerError};
use crate::audit::UnsealedEvent;
use crate::cluster::{MetaError, MetaOutput, METADATA_GROUP};
use crate::partition::dedup::ProducerStamp;
use crate::partition::read::FetchedRecord;
use crate::partition::{EncodedRecords, ReplicaStatus};
use crate::raft::{ConfChange, GroupId};

mod local;

pub use local::not_ready_answer;

/// Sends an encoded request to a peer broker and returns its encoded answer.
pub type PeerCall = Arc<
    dyn Fn(u64, Vec<u8>, Duration) -> BoxFuture<'static, Result<Vec<u8>, PeerCallError>>
        + Send
        + Sync,
>;

/// Why a call to a peer got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerCallError {
    /// The request never left this broker (no link, full queue, too large).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the peer and run there (timeout, connection lost).
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// Pause between attempts while a group has no reachable leader (an election is running).
const RETRY_PAUSE_MS: u64 = 50;
/// One attempt on one broker may take this long (plus a long poll's wait) before the next
/// broker is tried, so a dead leader costs one attempt, not the whole forwarding deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

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
}

impl ForwardRequest {
    pub fn group(&self) -> GroupId {
        match self {
            ForwardRequest::Produce { group, .. }
            | ForwardRequest::IdempotentProduce { group, .. }
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

    /// Whether it may be sent again after an unknown outcome or a retriable refusal.
    fn is_idempotent(&self) -> bool {
        matches!(self, ForwardRequest::IdempotentProduce { .. })
    }

    /// Whether running it twice could change the outcome.
    fn is_write(&self) -> bool {
        matches!(
            self,
            ForwardRequest::Produce { .. }
                | ForwardRequest::Meta { .. }
                | ForwardRequest::Audit { .. }
        )
    }

    /// Extra time the operation may legitimately take on the leader (a long poll).
    fn wait(&self) -> Duration {
        match self {
            ForwardRequest::Fetch { wait_ms, .. } => Duration::from_millis(*wait_ms),
            ForwardRequest::Group(call) => Duration::from_millis(call.wait_ms()),
            _ => Duration::ZERO,
        }
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
    fn from_status(status: &ReplicaStatus) -> GroupDescription {
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

/// The answer of the leader and which broker gave it.
pub struct Led {
    pub reply: ForwardReply,
    pub leader: u64,
}

type Answer = Result<ForwardReply, BrokerError>;

impl Broker {
    /// Runs `request` on the leader of its group, retrying through elections until the
    /// forwarding deadline; then answers 503.
    pub async fn on_leader(&self, request: ForwardRequest) -> Result<Led, BrokerError> {
        let group = request.group();
        let deadline = tokio::time::Instant::now() + self.forward_timeout + request.wait();
        let mut encoded: Option<Vec<u8>> = None;
        let mut hint = self.known_leader(group);
        let mut attempt = 0usize;
        let mut last_error: Option<BrokerError>;
        loop {
            let mut pause = false;
            let target = hint.take().or_else(|| self.candidate(group, attempt));
            attempt += 1;
            let result = match target {
                Some(target) if target == self.broker_id => {
                    self.execute_local(request.clone()).await
                }
                Some(target) => {
                    let body = encoded.get_or_insert_with(|| {
                        postcard::to_stdvec(&request).expect("forwarded requests are plain data")
                    });
                    self.call_remote(target, body.clone(), deadline, request.wait())
                        .await
                }
                None => Err(BrokerError::NotLeader { leader: None }),
            };
            match result {
                Ok(reply) => {
                    let leader = target.expect("an answer comes from a target");
                    self.remember_leader(group, leader);
                    return Ok(Led { reply, leader });
                }
                Err(BrokerError::NotLeader { leader }) => {
                    hint = leader.filter(|named| Some(*named) != target);
                    self.forget_leader(group);
                    last_error = Some(BrokerError::NotLeader { leader });
                }
                Err(BrokerError::Unavailable(reason)) if target != Some(self.broker_id) => {
                    self.forget_leader(group);
                    last_error = Some(BrokerError::Unavailable(reason));
                }
                // The leader did nothing and asks for the same request again shortly (an
                // idempotent batch with that sequence is in flight, or it is catching up).
                Err(BrokerError::Retry(reason)) => {
                    hint = target;
                    pause = true;
                    last_error = Some(BrokerError::Retry(reason));
                }
                // A dropped or refused proposal on this broker: the leader deduplicates a resend.
                Err(BrokerError::Unavailable(reason)) if request.is_idempotent() => {
                    self.forget_leader(group);
                    pause = true;
                    last_error = Some(BrokerError::Unavailable(reason));
                }
                Err(BrokerError::OutcomeUnknown(reason)) => {
                    // That broker may be gone: the next request looks for the leader afresh.
                    self.forget_leader(group);
                    // Running a write again could apply it twice: the caller decides.
                    if request.is_write() {
                        return Err(BrokerError::Unavailable(format!(
                            "{reason}; the write may or may not have been applied"
                        )));
                    }
                    last_error = Some(BrokerError::Unavailable(reason));
                }
                Err(other) => return Err(other),
            }
            if tokio::time::Instant::now() >= deadline {
                let why = last_error.map(|e| e.to_string()).unwrap_or_default();
                return Err(BrokerError::Unavailable(format!(
                    "no leader of partition group {} answered within {:?}: {why}",
                    group.0, self.forward_timeout
                )));
            }
            if hint.is_none() || pause {
                tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
            }
        }
    }

    async fn call_remote(
        &self,
        target: u64,
        body: Vec<u8>,
        deadline: tokio::time::Instant,
        wait: Duration,
    ) -> Answer {
        let Some(peers) = &self.peers else {
            return Err(BrokerError::Unavailable(format!(
                "broker {target} leads this group, but this broker has no peer links"
            )));
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let timeout = remaining.min(ATTEMPT_TIMEOUT + wait);
        let answer = peers(target, body, timeout.max(Duration::from_millis(1)))
            .await
            .map_err(|error| match error {
                PeerCallError::NotSent(reason) => {
                    BrokerError::Unavailable(format!("broker {target} is unreachable: {reason}"))
                }
                PeerCallError::NoAnswer(reason) => {
                    BrokerError::OutcomeUnknown(format!("broker {target} did not answer: {reason}"))
                }
            })?;
        postcard::from_bytes::<Answer>(&answer).map_err(|error| {
            BrokerError::Internal(format!(
                "broker {target} sent an undecodable answer: {error}"
            ))
        })?
    }

    /// The leader this broker believes in: its own replica's view, else the last that answered.
    fn known_leader(&self, group: GroupId) -> Option<u64> {
        let local = if group == METADATA_GROUP {
            self.controller.replica().status.borrow().leader
        } else {
            self.registry
                .get(group)
                .and_then(|handle| handle.status.borrow().leader)
        };
        local.map(|node| node.0).or_else(|| {
            self.leaders
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&group)
                .copied()
        })
    }

    fn remember_leader(&self, group: GroupId, leader: u64) {
        self.leaders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(group, leader);
    }

    fn forget_leader(&self, group: GroupId) {
        self.leaders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&group);
    }

    /// Without a hint, try the members of the group in turn.
    fn candidate(&self, group: GroupId, attempt: usize) -> Option<u64> {
        if let Some(leader) = self.known_leader(group) {
            if attempt % 2 == 0 {
                return Some(leader);
            }
        }
        let state = self.controller.state();
        let members: Vec<u64> = if group == METADATA_GROUP {
            let status = self.controller.replica().status.borrow().clone();
            if status.voters.is_empty() {
                state.brokers.keys().copied().collect()
            } else {
                status.voters.iter().map(|node| node.0).collect()
            }
        } else {
            state
                .topics
                .values()
                .flat_map(|topic| &topic.partitions)
                .find(|assignment| assignment.group == group)
                .map(|assignment| assignment.replicas.clone())
                .unwrap_or_default()
        };
        (!members.is_empty()).then(|| members[attempt % members.len()])
    }
}
