//! The parts of a consumer-group call that run on a group leader: member liveness and checks on
//! the controller leader, committed offsets and group fetches on a partition leader.
//!
//! Runs the forwarded `GroupCall` (defined with the other inter-broker types in `peer_wire`)
//! where it belongs and never forwards again (the caller's `on_leader` finds the leader).

use tokio::sync::oneshot;

use super::super::peer_wire::{CommitCheck, ForwardReply, GroupAnswer, GroupCall};
use super::super::{Broker, BrokerError};
use crate::cluster::groups::OffsetReset;
use crate::cluster::METADATA_GROUP;
use crate::partition::read::FetchLimits;
use crate::partition::{CommitOffset, PartitionHandle, ReadGroupPosition};

impl Broker {
    /// Runs a group call here; this broker must lead the call's group.
    pub(in crate::broker) async fn group_call_local(
        &self,
        call: GroupCall,
    ) -> Result<ForwardReply, BrokerError> {
        match call {
            GroupCall::Heartbeat {
                group,
                member_id,
                principal,
                check,
            } => {
                self.leading(METADATA_GROUP)?;
                let answer = self.heartbeat_local(&group, &member_id, &principal, check)?;
                Ok(ForwardReply::Group(answer))
            }
            GroupCall::Sessions { group } => {
                self.leading(METADATA_GROUP)?;
                let sessions = self.parts.group_sessions.ages(&group);
                Ok(ForwardReply::Group(GroupAnswer::Sessions(sessions)))
            }
            GroupCall::Committed {
                partition_group,
                consumer_group,
            } => {
                let handle = self.leading_partition(partition_group)?;
                let answer = committed(&handle, &consumer_group).await?;
                Ok(ForwardReply::Group(answer))
            }
            GroupCall::Commit {
                partition_group,
                consumer_group,
                offset,
            } => {
                let handle = self.leading_partition(partition_group)?;
                commit(self, &handle, consumer_group, offset).await?;
                Ok(ForwardReply::Done)
            }
            GroupCall::Fetch {
                partition_group,
                consumer_group,
                reset,
                wait_ms,
                records_max,
                bytes_max,
            } => {
                let handle = self.leading_partition(partition_group)?;
                let start = self.group_start(&handle, consumer_group, reset).await?;
                let limits = FetchLimits {
                    records_max,
                    bytes_max,
                };
                self.fetch_local(partition_group, start, wait_ms, limits)
                    .await
            }
        }
    }

    fn heartbeat_local(
        &self,
        group: &str,
        member_id: &str,
        principal: &str,
        check: Option<CommitCheck>,
    ) -> Result<GroupAnswer, BrokerError> {
        let state = self.parts.controller.state();
        let unknown = || {
            BrokerError::NotFound(format!(
            "member '{member_id}' is not in consumer group '{group}' (it left or its session expired); join again"
        ))
        };
        let member = state
            .groups
            .get(group)
            .and_then(|g| g.members.get(member_id).map(|m| (g.generation, m)))
            .ok_or_else(unknown)?;
        let (generation, member) = member;
        if member.principal != principal {
            return Err(BrokerError::Forbidden(format!(
                "member '{member_id}' of consumer group '{group}' belongs to another principal"
            )));
        }
        if let Some(check) = check {
            if check.generation != generation {
                return Err(BrokerError::Conflict(format!(
                    "generation {} is stale: consumer group '{group}' is at generation {generation}; \
                     heartbeat for the current assignment",
                    check.generation
                )));
            }
            if let Some(foreign) = check
                .partitions
                .iter()
                .find(|tp| !member.assignments.contains(tp))
            {
                return Err(BrokerError::Conflict(format!(
                    "partition {} of topic '{}' is not assigned to member '{member_id}' in generation {generation}",
                    foreign.partition, foreign.topic
                )));
            }
        }
        self.parts.group_sessions.touch(group, member_id);
        Ok(GroupAnswer::Member {
            generation,
            assignments: member.assignments.clone(),
        })
    }

    /// Where the group reads next: its committed offset, else the reset position (a `Latest`
    /// start is committed at once so it does not move with the log). A committed offset that
    /// retention removed starts at the log start.
    async fn group_start(
        &self,
        handle: &PartitionHandle,
        consumer_group: String,
        reset: OffsetReset,
    ) -> Result<u64, BrokerError> {
        let GroupAnswer::Committed {
            offset,
            high_watermark,
            log_start_offset,
        } = committed(handle, &consumer_group).await?
        else {
            unreachable!("committed answers Committed");
        };
        match (offset, reset) {
            (Some(offset), _) => Ok(offset.clamp(log_start_offset, high_watermark)),
            (None, OffsetReset::Earliest) => Ok(log_start_offset),
            (None, OffsetReset::Latest) => {
                commit(self, handle, consumer_group, high_watermark).await?;
                Ok(high_watermark)
            }
        }
    }
}

async fn committed(
    handle: &PartitionHandle,
    consumer_group: &str,
) -> Result<GroupAnswer, BrokerError> {
    let position = handle
        .addr
        .send(ReadGroupPosition {
            consumer_group: consumer_group.to_string(),
        })
        .await
        .map_err(|_| BrokerError::Unavailable("partition stopped".into()))?;
    Ok(GroupAnswer::Committed {
        offset: position.committed,
        high_watermark: position.high_watermark,
        log_start_offset: position.log_start_offset,
    })
}

async fn commit(
    broker: &Broker,
    handle: &PartitionHandle,
    consumer_group: String,
    offset: u64,
) -> Result<(), BrokerError> {
    let _slot = broker.write_slot(handle).await?;
    let (reply, wait) = oneshot::channel();
    handle.addr.do_send(CommitOffset {
        consumer_group,
        offset,
        reply,
    });
    wait.await
        .map_err(|_| BrokerError::Unavailable("partition stopped".into()))??;
    Ok(())
}
