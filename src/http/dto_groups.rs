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

/// A poll answer as JSON in chunks of about `FETCH_CHUNK_BYTES`, produced as the connection takes
/// them, byte for byte what `wire::GroupPoll` serializes to. Each record is freed once written;
/// the fetch budget the records hold is given back when the last chunk is made.
pub fn group_poll_body(
    polled: GroupRecords,
) -> impl Iterator<Item = Result<actix_web::web::Bytes, std::convert::Infallible>> {
    let assignments: Vec<wire::TopicPartition> = polled
        .member
        .assignments
        .iter()
        .cloned()
        .map(Into::into)
        .collect();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"{\"member_id\":");
    serde_json::to_writer(&mut head, &polled.member.member_id).expect("a string serializes");
    head.extend_from_slice(
        format!(
            ",\"generation\":{},\"assignments\":",
            polled.member.generation
        )
        .as_bytes(),
    );
    serde_json::to_writer(&mut head, &assignments).expect("assignments serialize");
    head.extend_from_slice(b",\"records\":[");
    let next_offsets: Vec<wire::OffsetCommit> = polled
        .partitions
        .iter()
        .filter(|partition| !partition.records.is_empty())
        .map(|partition| wire::OffsetCommit {
            topic: partition.partition.topic.clone(),
            partition: partition.partition.partition,
            offset: partition.next_offset,
        })
        .collect();
    let mut tail = b"],\"next_offsets\":".to_vec();
    serde_json::to_writer(&mut tail, &next_offsets).expect("offsets serialize");
    tail.push(b'}');
    let mut held = Vec::new();
    let records = polled.partitions.into_iter().flat_map(move |partition| {
        held.push(partition.held);
        // Shared, so naming the topic in every record copies no string.
        let topic: std::sync::Arc<str> = partition.partition.topic.into();
        let number = partition.partition.partition;
        partition
            .records
            .into_iter()
            .map(move |record| (topic.clone(), number, record))
    });
    let mut records = records.peekable();
    let mut state = Some((head, tail, true));
    std::iter::from_fn(move || {
        let (mut chunk, tail, first_chunk) = state.take()?;
        let mut first = first_chunk;
        chunk.reserve(super::dto::FETCH_CHUNK_CAPACITY.saturating_sub(chunk.len()));
        while chunk.len() < super::dto::FETCH_CHUNK_BYTES {
            let Some((topic, partition, record)) = records.next() else {
                break;
            };
            if !first {
                chunk.push(b',');
            }
            first = false;
            super::record_json::write_group_record(&mut chunk, &topic, partition, &record);
        }
        if records.peek().is_none() {
            chunk.extend_from_slice(&tail);
        } else {
            state = Some((
                Vec::with_capacity(super::dto::FETCH_CHUNK_CAPACITY),
                tail,
                first,
            ));
        }
        Some(Ok(actix_web::web::Bytes::from(chunk)))
    })
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
