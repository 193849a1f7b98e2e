//! A member's poll: the committed records of its assigned partitions, from the group's committed
//! offsets onward, fetched from every partition leader at once.
//!
//! A consumer that keeps its own positions (`PollRequest::from`, Kafka's consumer position) reads
//! from them instead, so its commits need not come between its polls.
//!
//! First every partition is asked without waiting; only when none has a record does the poll
//! wait, on all partitions at once, and it answers with the first partition that gets records.

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::super::peer_wire::{ForwardReply, ForwardRequest, Held};
use super::super::{Broker, BrokerError, Caller};
use super::{GroupCall, MemberView, OffsetReset};
use crate::auth::acl::{Operation, ResourceType};
use crate::cluster::groups::TopicPartition;
use crate::partition::read::FetchedRecord;
use crate::raft::GroupId;

#[derive(Clone, Debug)]
pub struct PollRequest {
    pub max_messages: Option<u64>,
    pub max_bytes: Option<u64>,
    pub wait_ms: Option<u64>,
    /// The consumer's own positions in some assigned partitions, read from instead of the
    /// group's committed offsets.
    pub from: Vec<(TopicPartition, u64)>,
}

/// Records of one partition and the offset to commit once they are processed.
#[derive(Clone, Debug)]
pub struct PartitionRecords {
    pub partition: TopicPartition,
    pub records: Vec<FetchedRecord>,
    pub next_offset: u64,
    pub high_watermark: u64,
    /// The fetch budget the records hold on this broker (when it leads the partition) until the
    /// answer is written.
    pub held: Held,
}

#[derive(Clone, Debug)]
pub struct GroupRecords {
    pub member: MemberView,
    pub partitions: Vec<PartitionRecords>,
}

struct Target {
    partition: TopicPartition,
    group: GroupId,
    records_max: u64,
    /// The consumer's position, when it gave one; else the group's committed offset.
    from: Option<u64>,
}

/// How much one poll may return, within the broker's limits.
struct PollLimits {
    records_max: u64,
    bytes_max: u64,
    wait_ms: u64,
}

impl Broker {
    pub async fn poll_group(
        &self,
        caller: &Caller,
        group: &str,
        member_id: &str,
        request: PollRequest,
    ) -> Result<GroupRecords, BrokerError> {
        self.authorize(caller, ResourceType::Group, group, Operation::Read)
            .await?;
        let member = self.member_call(caller, group, member_id, None).await?;
        let mut authorized = std::collections::BTreeSet::new();
        for tp in &member.assignments {
            if authorized.insert(tp.topic.clone()) {
                self.authorize(caller, ResourceType::Topic, &tp.topic, Operation::Read)
                    .await?;
            }
        }
        if let Some((foreign, _)) = request
            .from
            .iter()
            .find(|(tp, _)| !member.assignments.contains(tp))
        {
            return Err(BrokerError::Conflict(format!(
                "from names partition {} of topic '{}', which is not assigned to member '{member_id}' in generation {}; \
                 poll without it and take the assignment from the answer",
                foreign.partition, foreign.topic, member.generation
            )));
        }
        let limits = self.poll_limits(&request);
        let (targets, reset) = self.poll_targets(group, &member, limits.records_max, &request.from);
        if targets.is_empty() {
            // More members than partitions: nothing to read until a rebalance, which the next
            // poll's answer shows. Waiting keeps such a member from polling in a tight loop.
            tokio::time::sleep(std::time::Duration::from_millis(limits.wait_ms)).await;
            return Ok(GroupRecords {
                member,
                partitions: Vec::new(),
            });
        }
        // Shares are of the whole assignment, as in `poll_targets`.
        let count = member.assignments.len().max(1) as u64;
        let per_partition_bytes = (limits.bytes_max / count).max(1);
        let mut partitions = self
            .fetch_targets(group, &targets, reset, 0, per_partition_bytes)
            .await?;
        if limits.wait_ms > 0 && partitions.iter().all(|p| p.records.is_empty()) {
            partitions = self
                .fetch_targets(group, &targets, reset, limits.wait_ms, per_partition_bytes)
                .await?;
        }
        keep_within(&mut partitions, limits.records_max);
        Ok(GroupRecords { member, partitions })
    }

    fn poll_limits(&self, request: &PollRequest) -> PollLimits {
        PollLimits {
            records_max: request
                .max_messages
                .unwrap_or(self.parts.limits.fetch_records_max)
                .clamp(1, self.parts.limits.fetch_records_max),
            bytes_max: request
                .max_bytes
                .unwrap_or(self.parts.limits.fetch_bytes_max)
                .clamp(1, self.parts.limits.fetch_bytes_max),
            wait_ms: request
                .wait_ms
                .unwrap_or(0)
                .min(self.parts.limits.wait_ms_max),
        }
    }

    /// The member's assigned partitions that exist, each with its share of `records_max`, and
    /// where the member starts in a partition the group never committed in.
    fn poll_targets(
        &self,
        group: &str,
        member: &MemberView,
        records_max: u64,
        from: &[(TopicPartition, u64)],
    ) -> (Vec<Target>, OffsetReset) {
        let state = self.parts.controller.state();
        let reset = state
            .groups
            .get(group)
            .and_then(|g| g.members.get(&member.member_id))
            .map(|m| m.reset)
            .unwrap_or_default();
        let count = member.assignments.len().max(1) as u64;
        let targets = member
            .assignments
            .iter()
            .filter_map(|tp| {
                let assignment = state.partition(&tp.topic, tp.partition)?;
                Some(Target {
                    partition: tp.clone(),
                    group: assignment.group,
                    records_max: records_max.div_ceil(count),
                    from: from
                        .iter()
                        .find(|(position, _)| position == tp)
                        .map(|(_, offset)| *offset),
                })
            })
            .collect();
        (targets, reset)
    }

    /// Fetches every target at once. Without a wait, answers when all answered; with a wait,
    /// answers as soon as one partition has records (partitions still waiting are left out).
    async fn fetch_targets(
        &self,
        group: &str,
        targets: &[Target],
        reset: OffsetReset,
        wait_ms: u64,
        bytes_max: u64,
    ) -> Result<Vec<PartitionRecords>, BrokerError> {
        let mut pending: FuturesUnordered<_> = targets
            .iter()
            .enumerate()
            .map(|(position, target)| {
                let request = match target.from {
                    Some(offset) => ForwardRequest::Fetch {
                        group: target.group,
                        offset,
                        wait_ms,
                        records_max: target.records_max,
                        bytes_max,
                    },
                    None => ForwardRequest::Group(GroupCall::Fetch {
                        partition_group: target.group,
                        consumer_group: group.to_string(),
                        reset,
                        wait_ms,
                        records_max: target.records_max,
                        bytes_max,
                    }),
                };
                async move { (position, self.on_leader(request).await) }
            })
            .collect();
        let mut results: Vec<Option<PartitionRecords>> = targets.iter().map(|_| None).collect();
        while let Some((position, result)) = pending.next().await {
            let ForwardReply::Fetched {
                records,
                offset,
                high_watermark,
                held,
                ..
            } = result?.reply
            else {
                return Err(BrokerError::Internal(
                    "a group fetch was answered with something else".into(),
                ));
            };
            let next_offset = records.last().map_or(offset, |r| r.offset + 1);
            let found = !records.is_empty();
            results[position] = Some(PartitionRecords {
                partition: targets[position].partition.clone(),
                records,
                next_offset,
                high_watermark,
                held,
            });
            if found && wait_ms > 0 {
                break;
            }
        }
        Ok(results.into_iter().flatten().collect())
    }
}

/// Truncates the partitions' records so the poll returns at most `records_max` in sum (the first
/// round asks every partition for its share rounded up), moving each next offset back with them.
fn keep_within(partitions: &mut [PartitionRecords], records_max: u64) {
    let mut total = 0u64;
    for partition in partitions {
        let room = records_max.saturating_sub(total) as usize;
        if partition.records.len() > room {
            partition.records.truncate(room);
            partition.next_offset = partition
                .records
                .last()
                .map_or(partition.next_offset, |r| r.offset + 1);
        }
        total += partition.records.len() as u64;
    }
}
