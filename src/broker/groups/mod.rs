//! Consumer groups as the HTTP layer calls them: join, heartbeat, poll, commit, leave, describe.
//!
//! Any broker serves any call: membership and assignments are controller state, liveness is
//! checked on the controller leader, committed offsets live in each partition's replicated state
//! and group fetches run on the partition leaders. This layer authorizes, audits and sequences
//! those calls; the assignment itself is the pure `cluster::groups`.

pub mod calls;
mod poll;
pub mod sessions;

use std::collections::BTreeSet;

use futures_util::future::join_all;

pub use super::peer_wire::{CommitCheck, GroupAnswer, GroupCall};
use super::peer_wire::{ForwardReply, ForwardRequest};
use super::{Broker, BrokerError, Caller};
use crate::audit::actions;
use crate::auth::acl::{Operation, ResourceType};
pub use crate::cluster::groups::OffsetReset;
use crate::cluster::groups::{ConsumerGroup, GroupMember, TopicPartition};
use crate::cluster::{MetaCommand, MetaOutput};
use crate::names::{self, NameKind};
#[cfg(test)]
pub use poll::PartitionRecords;
pub use poll::{GroupRecords, PollRequest};
pub use sessions::GroupSessions;

/// Session timeouts a member may ask for.
pub const SESSION_TIMEOUT_MS_MIN: u64 = 500;
pub const SESSION_TIMEOUT_MS_MAX: u64 = 600_000;
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Topics one member may read.
pub const MEMBER_TOPICS_MAX: usize = 100;

/// A member's view after join or heartbeat.
#[derive(Clone, Debug)]
pub struct MemberView {
    pub member_id: String,
    pub generation: u64,
    pub assignments: Vec<TopicPartition>,
}

#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub topics: Vec<String>,
    pub session_timeout_ms: Option<u64>,
    pub reset: OffsetReset,
}

/// A group as `GET /v1/groups/{group}` shows it.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub name: String,
    pub group: ConsumerGroup,
    /// Milliseconds since each member's last heartbeat, when the controller leader answered.
    pub heartbeat_ages_ms: Vec<(String, u64)>,
    pub offsets: Vec<PartitionOffsets>,
}

#[derive(Clone, Debug)]
pub struct PartitionOffsets {
    pub partition: TopicPartition,
    pub committed: Option<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

impl PartitionOffsets {
    /// Records not yet committed by the group (from the log start when it never committed).
    pub fn lag(&self) -> u64 {
        let from = self
            .committed
            .unwrap_or(self.log_start_offset)
            .max(self.log_start_offset);
        self.high_watermark.saturating_sub(from)
    }
}

impl Broker {
    pub async fn join_group(
        &self,
        caller: &Caller,
        group: &str,
        request: JoinRequest,
    ) -> Result<MemberView, BrokerError> {
        names::validate(NameKind::Group, group)
            .map_err(|e| BrokerError::BadRequest(e.to_string()))?;
        if request.topics.is_empty() || request.topics.len() > MEMBER_TOPICS_MAX {
            return Err(BrokerError::BadRequest(format!(
                "topics must list 1 to {MEMBER_TOPICS_MAX} topics"
            )));
        }
        let topics: BTreeSet<String> = request.topics.iter().cloned().collect();
        for topic in &topics {
            names::validate(NameKind::Topic, topic)
                .map_err(|e| BrokerError::BadRequest(e.to_string()))?;
        }
        let session_timeout_ms = request
            .session_timeout_ms
            .unwrap_or(SESSION_TIMEOUT_MS_DEFAULT);
        if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&session_timeout_ms) {
            return Err(BrokerError::BadRequest(format!(
                "session_timeout_ms must be within {SESSION_TIMEOUT_MS_MIN}..={SESSION_TIMEOUT_MS_MAX}"
            )));
        }
        self.authorize(caller, ResourceType::Group, group, Operation::Read)
            .await?;
        for topic in &topics {
            self.authorize(caller, ResourceType::Topic, topic, Operation::Read)
                .await?;
            self.topic(topic)?;
        }
        let member_id = format!("m-{}", hex::encode(rand::random::<[u8; 12]>()));
        self.record_change(
            caller,
            actions::GROUP_JOIN,
            &format!("group:{group}/{member_id}"),
        )
        .await?;
        let member = GroupMember {
            member_id: member_id.clone(),
            principal: caller.principal.name.clone(),
            topics: topics.into_iter().collect(),
            session_timeout_ms,
            joined_ms: self.now_ms(),
            assignments: Vec::new(),
            reset: request.reset,
        };
        let command = MetaCommand::JoinGroup {
            group: group.to_string(),
            member,
        };
        let MetaOutput::Group(state) = self.propose(command).await? else {
            return Err(BrokerError::Internal(
                "a join was answered with something else".into(),
            ));
        };
        let member = state.members.get(&member_id).ok_or_else(|| {
            BrokerError::Internal("the joined member is missing from the group".into())
        })?;
        Ok(MemberView {
            generation: state.generation,
            assignments: member.assignments.clone(),
            member_id,
        })
    }

    /// Keeps the member alive and returns its current generation and assignment.
    pub async fn heartbeat(
        &self,
        caller: &Caller,
        group: &str,
        member_id: &str,
    ) -> Result<MemberView, BrokerError> {
        self.authorize(caller, ResourceType::Group, group, Operation::Read)
            .await?;
        self.member_call(caller, group, member_id, None).await
    }

    /// The member's state on the controller leader (which also records it as alive).
    pub(super) async fn member_call(
        &self,
        caller: &Caller,
        group: &str,
        member_id: &str,
        check: Option<CommitCheck>,
    ) -> Result<MemberView, BrokerError> {
        let call = GroupCall::Heartbeat {
            group: group.to_string(),
            member_id: member_id.to_string(),
            principal: caller.principal.name.clone(),
            check,
        };
        let led = match self.on_leader(ForwardRequest::Group(call)).await {
            Ok(led) => led,
            // The controller leader refused another principal's member: audited here, where
            // the caller is known.
            Err(BrokerError::Forbidden(detail)) => {
                let resource = format!("group:{group}/{member_id}");
                return Err(self.deny(caller, &resource, detail).await);
            }
            Err(error) => return Err(error),
        };
        let ForwardReply::Group(GroupAnswer::Member {
            generation,
            assignments,
        }) = led.reply
        else {
            return Err(BrokerError::Internal(
                "a heartbeat was answered with something else".into(),
            ));
        };
        Ok(MemberView {
            member_id: member_id.to_string(),
            generation,
            assignments,
        })
    }

    pub async fn leave_group(
        &self,
        caller: &Caller,
        group: &str,
        member_id: &str,
    ) -> Result<(), BrokerError> {
        self.authorize(caller, ResourceType::Group, group, Operation::Read)
            .await?;
        // Only the member's own principal may remove it; a superuser may remove any.
        let state = self.parts.controller.state();
        if let Some(member) = state
            .groups
            .get(group)
            .and_then(|g| g.members.get(member_id))
        {
            if member.principal != caller.principal.name && !caller.principal.superuser {
                let detail = format!(
                    "member '{member_id}' of consumer group '{group}' belongs to another principal"
                );
                let resource = format!("group:{group}/{member_id}");
                return Err(self.deny(caller, &resource, detail).await);
            }
        }
        self.record_change(
            caller,
            actions::GROUP_LEAVE,
            &format!("group:{group}/{member_id}"),
        )
        .await?;
        self.propose(MetaCommand::LeaveGroup {
            group: group.to_string(),
            member_id: member_id.to_string(),
        })
        .await?;
        Ok(())
    }

    /// Stores the member's next offsets after checking its generation and assignment.
    pub async fn commit_offsets(
        &self,
        caller: &Caller,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: Vec<(TopicPartition, u64)>,
    ) -> Result<(), BrokerError> {
        self.authorize(caller, ResourceType::Group, group, Operation::Read)
            .await?;
        if offsets.is_empty() {
            return Err(BrokerError::BadRequest("offsets must not be empty".into()));
        }
        let partitions: BTreeSet<&TopicPartition> = offsets.iter().map(|(tp, _)| tp).collect();
        if partitions.len() != offsets.len() {
            return Err(BrokerError::BadRequest(
                "offsets name a partition more than once".into(),
            ));
        }
        let state = self.parts.controller.state();
        let mut targets = Vec::with_capacity(offsets.len());
        for (tp, offset) in &offsets {
            let assignment = state.partition(&tp.topic, tp.partition).ok_or_else(|| {
                BrokerError::NotFound(format!(
                    "partition {} of topic '{}' does not exist",
                    tp.partition, tp.topic
                ))
            })?;
            targets.push((assignment.group, *offset));
        }
        let check = CommitCheck {
            generation,
            partitions: partitions.into_iter().cloned().collect(),
        };
        self.member_call(caller, group, member_id, Some(check))
            .await?;
        let commits = targets.into_iter().map(|(partition_group, offset)| {
            self.on_leader(ForwardRequest::Group(GroupCall::Commit {
                partition_group,
                consumer_group: group.to_string(),
                offset,
            }))
        });
        for result in join_all(commits).await {
            result?;
        }
        Ok(())
    }

    pub async fn describe_consumer_group(
        &self,
        caller: &Caller,
        group: &str,
    ) -> Result<GroupView, BrokerError> {
        self.authorize(caller, ResourceType::Group, group, Operation::Describe)
            .await?;
        let state = self.parts.controller.state();
        let consumer_group = state.groups.get(group).cloned().ok_or_else(|| {
            BrokerError::NotFound(format!("consumer group '{group}' does not exist"))
        })?;
        let sessions = self
            .on_leader(ForwardRequest::Group(GroupCall::Sessions {
                group: group.to_string(),
            }))
            .await;
        let heartbeat_ages_ms = match sessions {
            Ok(led) => match led.reply {
                ForwardReply::Group(GroupAnswer::Sessions(ages)) => ages,
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        let mut partitions = Vec::new();
        for topic in &consumer_group.topics {
            if let Some(meta) = state.topics.get(topic) {
                for assignment in &meta.partitions {
                    let tp = TopicPartition {
                        topic: topic.clone(),
                        partition: assignment.partition,
                    };
                    partitions.push((tp, assignment.group));
                }
            }
        }
        let reads = partitions.iter().map(|(_, partition_group)| {
            self.on_leader(ForwardRequest::Group(GroupCall::Committed {
                partition_group: *partition_group,
                consumer_group: group.to_string(),
            }))
        });
        let mut offsets = Vec::with_capacity(partitions.len());
        for ((tp, _), result) in partitions.iter().zip(join_all(reads).await) {
            let ForwardReply::Group(GroupAnswer::Committed {
                offset,
                high_watermark,
                log_start_offset,
            }) = result?.reply
            else {
                return Err(BrokerError::Internal(
                    "a committed-offset read was answered with something else".into(),
                ));
            };
            offsets.push(PartitionOffsets {
                partition: tp.clone(),
                committed: offset,
                high_watermark,
                log_start_offset,
            });
        }
        Ok(GroupView {
            name: group.to_string(),
            group: consumer_group,
            heartbeat_ages_ms,
            offsets,
        })
    }

    /// Groups the caller may describe, with their generation and member count.
    pub fn list_consumer_groups(&self, caller: &Caller) -> Vec<(String, u64, usize)> {
        let state = self.parts.controller.state();
        state
            .groups
            .iter()
            .filter(|(name, _)| {
                crate::auth::acl::check(
                    &caller.principal,
                    state.acls.values(),
                    ResourceType::Group,
                    name,
                    Operation::Describe,
                ) == crate::auth::acl::Decision::Allow
            })
            .map(|(name, g)| (name.clone(), g.generation, g.members.len()))
            .collect()
    }
}
