//! JSON shapes of the consumer-group routes.

use serde::{Deserialize, Serialize};

use super::dto::RecordOut;
use crate::broker::groups::{GroupRecords, GroupView, MemberView, OffsetReset};
use crate::cluster::groups::TopicPartition;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    pub topics: Vec<String>,
    pub session_timeout_ms: Option<u64>,
    /// `earliest` (default) or `latest`: where to start in a partition the group never committed.
    pub auto_offset_reset: Option<OffsetReset>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TopicPartitionDto {
    pub topic: String,
    pub partition: u32,
}

impl From<TopicPartition> for TopicPartitionDto {
    fn from(tp: TopicPartition) -> Self {
        TopicPartitionDto {
            topic: tp.topic,
            partition: tp.partition,
        }
    }
}

#[derive(Serialize)]
pub struct MemberDto {
    pub member_id: String,
    pub generation: u64,
    pub assignments: Vec<TopicPartitionDto>,
}

impl From<MemberView> for MemberDto {
    fn from(view: MemberView) -> Self {
        MemberDto {
            member_id: view.member_id,
            generation: view.generation,
            assignments: view.assignments.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    pub max_messages: Option<u64>,
    pub max_bytes: Option<u64>,
    pub wait_ms: Option<u64>,
}

/// A record of a group poll: the fetch record with its topic and partition.
#[derive(Serialize)]
pub struct GroupRecordOut {
    pub topic: String,
    pub partition: u32,
    #[serde(flatten)]
    pub record: RecordOut,
}

#[derive(Serialize)]
pub struct CommitOffsetDto {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

#[derive(Serialize)]
pub struct PollResponse {
    pub member_id: String,
    pub generation: u64,
    pub assignments: Vec<TopicPartitionDto>,
    pub records: Vec<GroupRecordOut>,
    /// Per partition that returned records: the offset to commit once they are processed.
    pub next_offsets: Vec<CommitOffsetDto>,
}

impl From<GroupRecords> for PollResponse {
    fn from(polled: GroupRecords) -> Self {
        let mut records = Vec::new();
        let mut next_offsets = Vec::new();
        for partition in polled.partitions {
            if partition.records.is_empty() {
                continue;
            }
            next_offsets.push(CommitOffsetDto {
                topic: partition.partition.topic.clone(),
                partition: partition.partition.partition,
                offset: partition.next_offset,
            });
            for record in partition.records {
                records.push(GroupRecordOut {
                    topic: partition.partition.topic.clone(),
                    partition: partition.partition.partition,
                    record: record.into(),
                });
            }
        }
        PollResponse {
            member_id: polled.member.member_id,
            generation: polled.member.generation,
            assignments: polled
                .member
                .assignments
                .into_iter()
                .map(Into::into)
                .collect(),
            records,
            next_offsets,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetIn {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    pub member_id: String,
    pub generation: u64,
    pub offsets: Vec<OffsetIn>,
}

#[derive(Serialize)]
pub struct GroupMemberDto {
    pub member_id: String,
    pub principal: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    pub joined_ms: u64,
    pub auto_offset_reset: OffsetReset,
    /// Milliseconds since the controller leader last heard from the member.
    pub last_heartbeat_ms_ago: Option<u64>,
    pub assignments: Vec<TopicPartitionDto>,
}

#[derive(Serialize)]
pub struct GroupOffsetDto {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: Option<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// Records not yet committed by the group (from the log start when it never committed).
    pub lag: u64,
}

#[derive(Serialize)]
pub struct GroupDto {
    pub group: String,
    pub generation: u64,
    pub members: Vec<GroupMemberDto>,
    pub offsets: Vec<GroupOffsetDto>,
}

impl From<GroupView> for GroupDto {
    fn from(view: GroupView) -> Self {
        let ages = view.heartbeat_ages_ms;
        let members = view
            .group
            .members
            .into_values()
            .map(|m| GroupMemberDto {
                last_heartbeat_ms_ago: ages
                    .iter()
                    .find(|(id, _)| *id == m.member_id)
                    .map(|(_, age)| *age),
                member_id: m.member_id,
                principal: m.principal,
                topics: m.topics,
                session_timeout_ms: m.session_timeout_ms,
                joined_ms: m.joined_ms,
                auto_offset_reset: m.reset,
                assignments: m.assignments.into_iter().map(Into::into).collect(),
            })
            .collect();
        let offsets = view
            .offsets
            .into_iter()
            .map(|o| GroupOffsetDto {
                lag: o.lag(),
                topic: o.partition.topic,
                partition: o.partition.partition,
                committed_offset: o.committed,
                high_watermark: o.high_watermark,
                log_start_offset: o.log_start_offset,
            })
            .collect();
        GroupDto {
            group: view.name,
            generation: view.group.generation,
            members,
            offsets,
        }
    }
}

#[derive(Serialize)]
pub struct GroupSummaryDto {
    pub group: String,
    pub generation: u64,
    pub members: usize,
}

#[derive(Serialize)]
pub struct GroupList {
    pub groups: Vec<GroupSummaryDto>,
}
