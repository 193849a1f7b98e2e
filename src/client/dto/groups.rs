//! Consumer-group shapes of the HTTP API v1, as the client sends and reads them.

use serde::{Deserialize, Serialize};

use super::FetchedRecord;

/// `POST /v1/groups/{group}/members` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroup {
    pub topics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u64>,
    /// `earliest` or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_offset_reset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// A member's generation and assignment (join and heartbeat answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member_id: String,
    pub generation: u64,
    pub assignments: Vec<TopicPartition>,
}

/// One record of a group poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub topic: String,
    pub partition: u32,
    #[serde(flatten)]
    pub record: FetchedRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// `GET /v1/groups/{group}/members/{member}/records` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPoll {
    pub member_id: String,
    pub generation: u64,
    pub assignments: Vec<TopicPartition>,
    pub records: Vec<GroupRecord>,
    pub next_offsets: Vec<OffsetCommit>,
}

/// `POST /v1/groups/{group}/offsets` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOffsets {
    pub member_id: String,
    pub generation: u64,
    pub offsets: Vec<OffsetCommit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberView {
    pub member_id: String,
    pub principal: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    #[serde(default)]
    pub last_heartbeat_ms_ago: Option<u64>,
    pub assignments: Vec<TopicPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffsetView {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: Option<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    pub lag: u64,
}

/// `GET /v1/groups/{group}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    pub group: String,
    pub generation: u64,
    pub members: Vec<GroupMemberView>,
    pub offsets: Vec<GroupOffsetView>,
}
