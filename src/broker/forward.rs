//! Any broker serves any call: an operation on a Raft group runs on the broker that leads the
//! group, here or over the peer link.
//!
//! Owns the forwarded request and answer types (postcard over the peer link), the leader search
//! (local status, the last leader that answered, the leader a refusing broker names, then each
//! replica in turn) with its deadline, and the execution of a forwarded request on the leader.
//! A forwarded request is never forwarded again: a broker that does not lead answers `NotLeader`
//! and the caller moves on. Authentication, authorization and audit happen once, on the broker
//! the client called; the peer link is mutually authenticated, so the leader trusts its peer.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::groups::{GroupAnswer, GroupCall};
use super::{Broker, BrokerError};
use crate::audit::log::Append;
use crate::audit::UnsealedEvent;
use crate::cluster::{MetaError, MetaOutput, METADATA_GROUP};
use crate::partition::batch::Record;
use crate::partition::dedup::ProducerStamp;
use crate::partition::machine::Describe;
use crate::partition::read::{read_records, FetchLimits, FetchedRecord};
use crate::partition::{
    ChangeMembership, Fetch, IdempotentProduce, PartitionHandle, Produce, ReplicaStatus,
    TransferLeadership,
};
use crate::raft::{ConfChange, GroupId, NodeId};

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
    Produce {
        group: GroupId,
        records: Vec<Record>,
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
        records: Vec<Record>,
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

    /// Serves a request a peer forwarded: runs it here, never forwards it again.
    pub async fn serve_forwarded(&self, body: &[u8]) -> Vec<u8> {
        let answer: Answer = match postcard::from_bytes::<ForwardRequest>(body) {
            Ok(request) => self.execute_local(request).await,
            Err(error) => Err(BrokerError::BadRequest(format!(
                "forwarded request does not decode: {error}"
            ))),
        };
        postcard::to_stdvec(&answer).expect("answers are plain data")
    }

    /// Runs `request` on this broker's replica, which must lead its group.
    pub(super) async fn execute_local(&self, request: ForwardRequest) -> Answer {
        match request {
            ForwardRequest::Meta { envelope } => {
                self.leading(METADATA_GROUP)?;
                let (index, output) = self.controller.propose_encoded(envelope).await?;
                Ok(ForwardReply::Meta {
                    index: index.0,
                    output,
                })
            }
            ForwardRequest::Produce {
                group,
                records,
                timestamp_ms,
            } => self.produce_local(group, records, timestamp_ms).await,
            ForwardRequest::IdempotentProduce {
                group,
                records,
                timestamp_ms,
                stamp,
            } => {
                self.idempotent_produce_local(group, records, timestamp_ms, stamp)
                    .await
            }
            ForwardRequest::Fetch {
                group,
                offset,
                wait_ms,
                records_max,
                bytes_max,
            } => {
                let limits = FetchLimits {
                    records_max,
                    bytes_max,
                };
                self.fetch_local(group, offset, wait_ms, limits).await
            }
            ForwardRequest::Describe { group } => self.describe_local(group).await,
            ForwardRequest::Audit { group, events } => self.audit_local(group, events).await,
            ForwardRequest::Membership { group, change } => {
                self.membership_local(group, change).await
            }
            ForwardRequest::Transfer { group, to } => self.transfer_local(group, to).await,
            ForwardRequest::Health => {
                self.leading(METADATA_GROUP)?;
                Ok(ForwardReply::Health(self.health_local()))
            }
            ForwardRequest::Rebalance => {
                self.leading(METADATA_GROUP)?;
                self.balancer.trigger.notify_one();
                Ok(ForwardReply::Done)
            }
            ForwardRequest::Group(call) => self.group_call_local(call).await,
        }
    }

    fn health_local(&self) -> Vec<(u64, Option<u64>)> {
        let state = self.controller.state();
        state
            .brokers
            .keys()
            .map(|id| {
                let silence = if *id == self.broker_id {
                    Some(0)
                } else {
                    self.liveness
                        .as_ref()
                        .and_then(|liveness| liveness(*id))
                        .map(|d| d.as_millis() as u64)
                };
                (*id, silence)
            })
            .collect()
    }

    /// `Ok` if this broker's replica of `group` leads, else `NotLeader` with its guess.
    fn leading(&self, group: GroupId) -> Result<(), BrokerError> {
        if group == METADATA_GROUP {
            check_leads(&self.controller.replica().status.borrow())
        } else {
            self.leading_partition(group).map(drop)
        }
    }

    /// `Ok` if this broker leads the controller.
    pub(super) fn leading_controller(&self) -> Result<(), BrokerError> {
        self.leading(METADATA_GROUP)
    }

    /// This broker's replica of partition `group`, if it leads.
    pub(super) fn leading_partition_handle(
        &self,
        group: GroupId,
    ) -> Result<PartitionHandle, BrokerError> {
        self.leading_partition(group)
    }

    /// This broker's replica of partition `group`, if it leads.
    fn leading_partition(&self, group: GroupId) -> Result<PartitionHandle, BrokerError> {
        let handle = self
            .registry
            .get(group)
            .ok_or(BrokerError::NotLeader { leader: None })?;
        check_leads(&handle.status.borrow())?;
        Ok(handle)
    }

    async fn produce_local(
        &self,
        group: GroupId,
        records: Vec<Record>,
        timestamp_ms: u64,
    ) -> Answer {
        let handle = self.leading_partition(group)?;
        let (reply, wait) = oneshot::channel();
        handle.addr.do_send(Produce {
            records,
            timestamp_ms,
            reply,
        });
        let appended = wait
            .await
            .map_err(|_| BrokerError::Unavailable("partition stopped".into()))??;
        Ok(ForwardReply::Produced {
            base_offset: appended.base_offset,
        })
    }

    pub(super) async fn fetch_here(
        &self,
        group: GroupId,
        offset: u64,
        wait_ms: u64,
        limits: FetchLimits,
    ) -> Answer {
        self.fetch_local(group, offset, wait_ms, limits).await
    }

    async fn idempotent_produce_local(
        &self,
        group: GroupId,
        records: Vec<Record>,
        timestamp_ms: u64,
        stamp: ProducerStamp,
    ) -> Answer {
        let handle = self.leading_partition(group)?;
        let (reply, wait) = oneshot::channel();
        handle.addr.do_send(IdempotentProduce {
            records,
            timestamp_ms,
            stamp,
            reply,
        });
        let appended = wait
            .await
            .map_err(|_| BrokerError::Unavailable("partition stopped".into()))??;
        Ok(ForwardReply::Produced {
            base_offset: appended.base_offset,
        })
    }

    async fn fetch_local(
        &self,
        group: GroupId,
        offset: u64,
        wait_ms: u64,
        limits: FetchLimits,
    ) -> Answer {
        let handle = self.leading_partition(group)?;
        let (reply, wait) = oneshot::channel();
        handle.addr.do_send(Fetch {
            offset,
            wait_ms,
            reply,
        });
        let window = wait
            .await
            .map_err(|_| BrokerError::Unavailable("partition stopped".into()))??;
        let store = self.store.clone();
        let records =
            tokio::task::spawn_blocking(move || read_records(&store, group, window, limits))
                .await
                .map_err(|error| BrokerError::Internal(error.to_string()))??;
        Ok(ForwardReply::Fetched {
            records,
            offset: window.offset,
            high_watermark: window.high_watermark,
            log_start_offset: window.log_start_offset,
        })
    }

    async fn describe_local(&self, group: GroupId) -> Answer {
        if group == METADATA_GROUP {
            self.leading(group)?;
            let description =
                GroupDescription::from_status(&self.controller.replica().status.borrow());
            return Ok(ForwardReply::Described(description));
        }
        let handle = self.leading_partition(group)?;
        let mut description = GroupDescription::from_status(&handle.status.borrow());
        let state = handle
            .addr
            .send(Describe)
            .await
            .map_err(|_| BrokerError::Unavailable("partition stopped".into()))?;
        description.high_watermark = state.high_watermark;
        description.log_start_offset = state.log_start_offset;
        Ok(ForwardReply::Described(description))
    }

    async fn audit_local(&self, group: GroupId, events: Vec<UnsealedEvent>) -> Answer {
        self.leading(group)?;
        let mut waits = Vec::with_capacity(events.len());
        for event in events {
            let (reply, wait) = oneshot::channel();
            self.audit.do_send(Append {
                event,
                reply: Some(reply),
            });
            waits.push(wait);
        }
        for wait in waits {
            match wait.await {
                Ok(Ok(())) => {}
                Ok(Err(crate::audit::log::AuditError::Write(replica))) => {
                    return Err(replica.into())
                }
                Ok(Err(error)) => return Err(BrokerError::AuditUnavailable(error.to_string())),
                Err(_) => return Err(BrokerError::AuditUnavailable("audit log stopped".into())),
            }
        }
        Ok(ForwardReply::Done)
    }

    async fn membership_local(&self, group: GroupId, change: ConfChange) -> Answer {
        let (reply, wait) = oneshot::channel();
        let message = ChangeMembership { change, reply };
        if group == METADATA_GROUP {
            self.leading(group)?;
            self.controller.replica().addr.do_send(message);
        } else {
            self.leading_partition(group)?.addr.do_send(message);
        }
        wait.await
            .map_err(|_| BrokerError::Unavailable("replica stopped".into()))??;
        Ok(ForwardReply::Done)
    }

    async fn transfer_local(&self, group: GroupId, to: u64) -> Answer {
        let message = TransferLeadership(NodeId(to));
        let result = if group == METADATA_GROUP {
            self.leading(group)?;
            self.controller.replica().addr.send(message).await
        } else {
            self.leading_partition(group)?.addr.send(message).await
        };
        result.map_err(|_| BrokerError::Unavailable("replica stopped".into()))??;
        Ok(ForwardReply::Done)
    }
}

/// `Ok` if `status` is a leader's, else `NotLeader` naming the leader it knows of.
fn check_leads(status: &ReplicaStatus) -> Result<(), BrokerError> {
    if status.is_leader {
        Ok(())
    } else {
        Err(BrokerError::NotLeader {
            leader: status.leader.map(|node| node.0),
        })
    }
}

/// The answer of a broker that is still starting.
pub fn not_ready_answer() -> Vec<u8> {
    let answer: Answer = Err(BrokerError::Unavailable(
        "the broker is starting".to_string(),
    ));
    postcard::to_stdvec(&answer).expect("answers are plain data")
}
