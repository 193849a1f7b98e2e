//! Conversions between the broker's consumer-group types and the group wire shapes.

use crate::broker::groups::{GroupRecords, GroupView, MemberView};
use crate::broker::{OffsetReset, TopicPartition};
use crate::wire;

impl From<TopicPartition> for wire::TopicPartition {
    fn from(tp: TopicPartition) -> Self {
        wire::TopicPartition {
            topic: tp.topic,
            partition: tp.partition,
        }
    }
}

impl From<wire::OffsetReset> for OffsetReset {
    fn from(reset: wire::OffsetReset) -> Self {
        match reset {
            wire::OffsetReset::Earliest => OffsetReset::Earliest,
            wire::OffsetReset::Latest => OffsetReset::Latest,
        }
    }
}

impl From<OffsetReset> for wire::OffsetReset {
    fn from(reset: OffsetReset) -> Self {
        match reset {
            OffsetReset::Earliest => wire::OffsetReset::Earliest,
            OffsetReset::Latest => wire::OffsetReset::Latest,
        }
    }
}

impl From<MemberView> for wire::Member {
    fn from(view: MemberView) -> Self {
        wire::Member {
            member_id: view.member_id,
            generation: view.generation,
            assignments: view.assignments.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<GroupRecords> for wire::GroupPoll {
    fn from(polled: GroupRecords) -> Self {
        let mut records = Vec::new();
        let mut next_offsets = Vec::new();
        for partition in polled.partitions {
            if partition.records.is_empty() {
                continue;
            }
            next_offsets.push(wire::OffsetCommit {
                topic: partition.partition.topic.clone(),
                partition: partition.partition.partition,
                offset: partition.next_offset,
            });
            for record in partition.records {
                records.push(wire::GroupRecord {
                    topic: partition.partition.topic.clone(),
                    partition: partition.partition.partition,
                    record: record.into(),
                });
            }
        }
        wire::GroupPoll {
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

impl From<GroupView> for wire::GroupDescription {
    fn from(view: GroupView) -> Self {
        let ages = view.heartbeat_ages_ms;
        let members = view
            .group
            .members
            .into_values()
            .map(|m| wire::GroupMemberView {
                last_heartbeat_ms_ago: ages
                    .iter()
                    .find(|(id, _)| *id == m.member_id)
                    .map(|(_, age)| *age),
                member_id: m.member_id,
                principal: m.principal,
                topics: m.topics,
                session_timeout_ms: m.session_timeout_ms,
                joined_ms: m.joined_ms,
                auto_offset_reset: m.reset.into(),
                assignments: m.assignments.into_iter().map(Into::into).collect(),
            })
            .collect();
        let offsets = view
            .offsets
            .into_iter()
            .map(|o| wire::GroupOffsetView {
                lag: o.lag(),
                topic: o.partition.topic,
                partition: o.partition.partition,
                committed_offset: o.committed,
                high_watermark: o.high_watermark,
                log_start_offset: o.log_start_offset,
            })
            .collect();
        wire::GroupDescription {
            group: view.name,
            generation: view.group.generation,
            members,
            offsets,
        }
    }
}
