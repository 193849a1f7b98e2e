//! The leader's side of forwarding: runs a request on this broker's replica of its group (a
//! request a peer forwarded, or one this broker leads itself) and checks that this broker
//! leads. Never forwards again: a broker that does not lead answers `NotLeader`.
//!
//! The executors return `BrokerError`; a forwarded request's error goes back to the peer as a
//! `PeerRefusal` (`serve_forwarded`), which the caller's policy reads like a local failure.

use tokio::sync::oneshot;

use super::super::peer_wire::{
    ForwardReply, ForwardRequest, GroupDescription, Held, PeerAnswer, PeerRefusal,
};
use super::super::{Broker, BrokerError};
use super::Answer;

/// The least a fetch reads when the fetch budget is short: 64 KiB (or its own limit if smaller).
/// Past the floor it waits for bytes, and then answers 503. A record larger than the grant is
/// still returned whole, so a consumer never stalls on one.
pub(super) const FETCH_FLOOR_BYTES: u64 = 64 * 1024;
use crate::audit::log::Append;
use crate::audit::UnsealedEvent;
use crate::cluster::METADATA_GROUP;
use crate::partition::dedup::ProducerStamp;
use crate::partition::machine::Describe;
use crate::partition::read::{read_records, FetchLimits};
use crate::partition::{
    AppendResult, ChangeMembership, EncodedRecords, Fetch, IdempotentProduce, PartitionHandle,
    Produce, ReplicaError, ReplicaStatus, TransferLeadership,
};
use crate::raft::{ConfChange, GroupId, NodeId};

impl Broker {
    /// Serves a request peer broker `from` (its certificate's id) forwarded: checks that `from`
    /// may ask for it (`authority::check`), runs it here, never forwards it again, and encodes
    /// the answer. Also returns the fetch budget the answer's records were read under: the
    /// caller keeps it until the encoded answer has left, so answers queued on a peer link
    /// count against the budget like answers being sent to a client.
    pub async fn serve_forwarded(&self, from: u64, body: &[u8]) -> (Vec<u8>, Held) {
        let mut answer: PeerAnswer = match postcard::from_bytes::<ForwardRequest>(body) {
            Ok(request) => {
                let controller_leader = self.parts.controller.replica().status.borrow().leader;
                match super::authority::check(&request, from, controller_leader.map(|n| n.0)) {
                    Ok(()) => self.execute_local(request).await.map_err(PeerRefusal::from),
                    Err(error) => {
                        tracing::debug!(from, %error, "refused a forwarded request");
                        Err(PeerRefusal::from(error))
                    }
                }
            }
            Err(error) => Err(PeerRefusal::from(BrokerError::BadRequest(format!(
                "forwarded request does not decode: {error}"
            )))),
        };
        let held = match &mut answer {
            Ok(ForwardReply::Fetched { held, .. }) => std::mem::take(held),
            _ => Held::default(),
        };
        (
            postcard::to_stdvec(&answer).expect("answers are plain data"),
            held,
        )
    }

    /// Runs `request` on this broker's replica, which must lead its group.
    pub(in crate::broker) async fn execute_local(&self, request: ForwardRequest) -> Answer {
        match request {
            ForwardRequest::Meta { envelope } => {
                self.leading(METADATA_GROUP)?;
                let (index, output) = self.parts.controller.propose_encoded(envelope).await?;
                Ok(ForwardReply::Meta {
                    index: index.0,
                    output,
                })
            }
            ForwardRequest::Produce {
                group,
                records,
                timestamp_ms,
            } => self.produce_local(group, records, timestamp_ms, None).await,
            ForwardRequest::ConditionalProduce {
                group,
                records,
                timestamp_ms,
                expected_base,
            } => {
                self.produce_local(group, records, timestamp_ms, Some(expected_base))
                    .await
            }
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
                self.parts.balancer.trigger.notify_one();
                Ok(ForwardReply::Done)
            }
            ForwardRequest::Group(call) => self.group_call_local(call).await,
        }
    }

    fn health_local(&self) -> Vec<(u64, Option<u64>)> {
        let state = self.parts.controller.state();
        state
            .brokers
            .keys()
            .map(|id| {
                let silence = if *id == self.parts.broker_id {
                    Some(0)
                } else {
                    self.parts
                        .liveness
                        .as_ref()
                        .and_then(|liveness| liveness(*id))
                        .map(|d| d.as_millis() as u64)
                };
                (*id, silence)
            })
            .collect()
    }

    /// `Ok` if this broker's replica of `group` leads, else `NotLeader` with its guess.
    pub(in crate::broker) fn leading(&self, group: GroupId) -> Result<(), BrokerError> {
        if group == METADATA_GROUP {
            check_leads(&self.parts.controller.replica().status.borrow())
        } else {
            self.leading_partition(group).map(drop)
        }
    }

    /// This broker's replica of partition `group`, if it leads.
    pub(in crate::broker) fn leading_partition(
        &self,
        group: GroupId,
    ) -> Result<PartitionHandle, BrokerError> {
        let handle = self
            .parts
            .registry
            .get(group)
            .ok_or(BrokerError::NotLeader { leader: None })?;
        check_leads(&handle.status.borrow())?;
        Ok(handle)
    }

    async fn produce_local(
        &self,
        group: GroupId,
        records: EncodedRecords,
        timestamp_ms: u64,
        expected_base: Option<u64>,
    ) -> Answer {
        let handle = self.leading_partition(group)?;
        self.parts
            .disk
            .check()
            .map_err(|full| BrokerError::InsufficientStorage(full.to_string()))?;
        let slot = self.write_slot(&handle).await?;
        let (reply, wait) = oneshot::channel();
        handle.addr.do_send(Produce {
            records,
            timestamp_ms,
            expected_base,
            reply,
        });
        let answer = produced(wait).await;
        drop(slot);
        answer
    }

    async fn idempotent_produce_local(
        &self,
        group: GroupId,
        records: EncodedRecords,
        timestamp_ms: u64,
        stamp: ProducerStamp,
    ) -> Answer {
        let handle = self.leading_partition(group)?;
        let slot = self.write_slot(&handle).await?;
        let (reply, wait) = oneshot::channel();
        handle.addr.do_send(IdempotentProduce {
            records,
            timestamp_ms,
            stamp,
            reply,
        });
        let answer = produced(wait).await;
        drop(slot);
        answer
    }

    pub(in crate::broker) async fn fetch_local(
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
        // Bytes are reserved once records are there to read, never while a long poll waits.
        let budgets = &self.parts.budgets;
        let floor = FETCH_FLOOR_BYTES.min(limits.bytes_max);
        let mut reservation = budgets
            .fetch
            .reserve(limits.bytes_max, floor, budgets.wait)
            .await
            .map_err(|exhausted| BrokerError::Overloaded(exhausted.to_string()))?;
        let limits = FetchLimits {
            bytes_max: limits.bytes_max.min(reservation.bytes()),
            ..limits
        };
        let store = self.parts.store.clone();
        let records =
            tokio::task::spawn_blocking(move || read_records(&store, group, window, limits))
                .await
                .map_err(|error| BrokerError::Internal(error.to_string()))??;
        reservation.shrink_to(records.iter().map(|r| r.record.size_bytes()).sum());
        Ok(ForwardReply::Fetched {
            records,
            offset: window.offset,
            high_watermark: window.high_watermark,
            log_start_offset: window.log_start_offset,
            held: Held::new(reservation),
        })
    }

    async fn describe_local(&self, group: GroupId) -> Answer {
        if group == METADATA_GROUP {
            self.leading(group)?;
            let description =
                GroupDescription::from_status(&self.parts.controller.replica().status.borrow());
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
            self.parts.audit.do_send(Append {
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
            self.parts.controller.replica().addr.do_send(message);
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
            self.parts.controller.replica().addr.send(message).await
        } else {
            self.leading_partition(group)?.addr.send(message).await
        };
        result.map_err(|_| BrokerError::Unavailable("replica stopped".into()))??;
        Ok(ForwardReply::Done)
    }
}

/// The answer to a produce once the partition applied (or refused) it.
impl Broker {
    /// One of the partition's write slots, waiting up to `limits.budget_wait_ms` for it; then
    /// 503 `overloaded`, with nothing sent to the replica.
    pub(in crate::broker) async fn write_slot(
        &self,
        handle: &PartitionHandle,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, BrokerError> {
        let wait = self.parts.budgets.wait;
        match tokio::time::timeout(wait, handle.writes.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(_)) | Err(_) => Err(BrokerError::Overloaded(format!(
                "partition group {} already holds {} writes in flight; none finished within {} ms",
                handle.group.0,
                crate::partition::WRITES_IN_FLIGHT_MAX,
                wait.as_millis()
            ))),
        }
    }
}

async fn produced(wait: oneshot::Receiver<Result<AppendResult, ReplicaError>>) -> Answer {
    // A reply dropped unanswered: the replica stopped, perhaps with the write in its log.
    let appended = wait
        .await
        .map_err(|_| BrokerError::OutcomeUnknown("partition stopped".into()))??;
    Ok(ForwardReply::Produced {
        base_offset: appended.base_offset,
    })
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

/// The answer of a broker that does not serve forwarded requests (still starting, or
/// stopping): nothing ran, so the forwarding broker tries another replica.
pub fn unavailable_answer(reason: &str) -> Vec<u8> {
    let answer: PeerAnswer = Err(PeerRefusal::Unavailable {
        reason: reason.to_string(),
    });
    postcard::to_stdvec(&answer).expect("answers are plain data")
}
