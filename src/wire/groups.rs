//! Wire shapes of the consumer-group routes.
//!
//! A poll answer's records are the fetch record with its topic and partition beside it, so a
//! consumer reads both answers with one record type. (De)serialization only.
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::FetchedRecord;

/// Where a group with no committed offset in a partition starts reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The first stored record.
    #[default]
    Earliest,
    /// Records produced from the join on.
    Latest,
}

/// `POST /v1/groups/{group}/members` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinGroup {
    /// 1 to 100 topic names.
    #[schema(min_items = 1, max_items = 100)]
    pub topics: Vec<String>,
    /// 500 to 600000; the broker's default when omitted.
    #[schema(minimum = 500, maximum = 600_000)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u64>,
    /// `earliest` (the default) or `latest`: where to start in a partition the group never
    /// committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_offset_reset: Option<OffsetReset>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// A member's generation and assignment (join and heartbeat answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub member_id: String,
    pub generation: u64,
    pub assignments: Vec<TopicPartition>,
}

/// Query of `GET /v1/groups/{group}/members/{member}/records`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PollQuery {
    /// Records returned at most; the broker caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
    /// Bytes of record values returned at most; the broker caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Milliseconds to wait for a record when none is there yet; capped at the broker's
    /// `http.wait_ms_max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Where to read in some assigned partitions instead of the group's committed offset: the
    /// consumer's own positions, as `topic:partition:offset` items separated by commas (for
    /// example the previous poll's `next_offsets`). A consumer that keeps its positions can commit
    /// in the background while it polls on. Each partition at most once, and only partitions
    /// assigned to the member; an offset outside the partition's log answers 416.
    #[param(
        pattern = r"^[A-Za-z0-9._-]{1,249}:[0-9]{1,10}:[0-9]{1,20}(,[A-Za-z0-9._-]{1,249}:[0-9]{1,10}:[0-9]{1,20})*$",
        max_length = 8192
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl PollQuery {
    /// The query string's name-value pairs, set fields only, in declaration order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = super::query_pairs([
            ("max_messages", self.max_messages),
            ("max_bytes", self.max_bytes),
            ("wait_ms", self.wait_ms),
        ]);
        if let Some(from) = &self.from {
            pairs.push(("from", from.clone()));
        }
        pairs
    }
}

/// Positions in the form of `PollQuery::from`.
pub fn format_positions(positions: &[OffsetCommit]) -> String {
    let items: Vec<String> = positions
        .iter()
        .map(|p| format!("{}:{}:{}", p.topic, p.partition, p.offset))
        .collect();
    items.join(",")
}

/// The longest `PollQuery::from` accepted, in bytes (a poll of hundreds of partitions fits).
pub const POSITIONS_TEXT_MAX: usize = 8192;

/// Reads `PollQuery::from`: well-formed items, each partition once. Names are checked by the
/// broker like any topic name.
pub fn parse_positions(from: &str) -> Result<Vec<OffsetCommit>, String> {
    if from.len() > POSITIONS_TEXT_MAX {
        return Err(format!(
            "from is {} bytes; at most {POSITIONS_TEXT_MAX} are accepted",
            from.len()
        ));
    }
    let mut positions: Vec<OffsetCommit> = Vec::new();
    for item in from.split(',') {
        let mut parts = item.rsplitn(3, ':');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("from item {item:?} is not topic:partition:offset"));
        };
        let partition: u32 = partition
            .parse()
            .map_err(|_| format!("from item {item:?}: partition {partition:?} is not a number"))?;
        let offset: u64 = offset
            .parse()
            .map_err(|_| format!("from item {item:?}: offset {offset:?} is not a number"))?;
        if positions
            .iter()
            .any(|p| p.topic == topic && p.partition == partition)
        {
            return Err(format!(
                "from names partition {partition} of topic {topic:?} twice"
            ));
        }
        positions.push(OffsetCommit {
            topic: topic.to_string(),
            partition,
            offset,
        });
    }
    Ok(positions)
}

/// One record of a group poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupRecord {
    pub topic: String,
    pub partition: u32,
    #[serde(flatten)]
    pub record: FetchedRecord,
}

/// An offset to commit: the next one to read in a partition. Both a commit body's item and a
/// poll answer's `next_offsets` item, so it rejects unknown fields in either role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// `GET /v1/groups/{group}/members/{member}/records` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupPoll {
    pub member_id: String,
    pub generation: u64,
    pub assignments: Vec<TopicPartition>,
    pub records: Vec<GroupRecord>,
    /// Per partition that returned records: the offset to commit once they are processed.
    pub next_offsets: Vec<OffsetCommit>,
}

/// `POST /v1/groups/{group}/offsets` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitOffsets {
    pub member_id: String,
    pub generation: u64,
    pub offsets: Vec<OffsetCommit>,
}

/// One member of a group description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupMemberView {
    pub member_id: String,
    pub principal: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    #[serde(default)]
    pub joined_ms: u64,
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
    /// Milliseconds since the controller leader last heard from the member.
    #[serde(default)]
    pub last_heartbeat_ms_ago: Option<u64>,
    pub assignments: Vec<TopicPartition>,
}

/// One partition's committed position in a group description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupOffsetView {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: Option<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// Records not yet committed by the group (from the log start when it never committed).
    pub lag: u64,
}

/// `GET /v1/groups/{group}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupDescription {
    pub group: String,
    pub generation: u64,
    pub members: Vec<GroupMemberView>,
    pub offsets: Vec<GroupOffsetView>,
}

/// An item of `GET /v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupSummary {
    pub group: String,
    pub generation: u64,
    pub members: u64,
}

/// `GET /v1/groups` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_back_as_written_and_bad_ones_are_named() {
        let positions = vec![
            OffsetCommit {
                topic: "a.b-c_d".into(),
                partition: 3,
                offset: u64::MAX,
            },
            OffsetCommit {
                topic: "e".into(),
                partition: 0,
                offset: 0,
            },
        ];
        let text = format_positions(&positions);
        assert_eq!(text, format!("a.b-c_d:3:{},e:0:0", u64::MAX));
        assert_eq!(parse_positions(&text), Ok(positions));
        let long = "t:1:2,".repeat(2000);
        for (bad, names) in [
            ("", "not topic:partition:offset"),
            ("t:1", "not topic:partition:offset"),
            ("t:1:2,", "not topic:partition:offset"),
            ("t:-1:2", "partition \"-1\""),
            ("t:1:2x", "offset \"2x\""),
            ("t:1:2,t:1:3", "twice"),
            (long.as_str(), "at most 8192"),
        ] {
            let error = parse_positions(bad).expect_err(bad);
            assert!(error.contains(names), "{bad:?}: {error}");
        }
    }
}
