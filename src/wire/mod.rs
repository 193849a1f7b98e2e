//! JSON wire shapes of the HTTP API v1 (DESIGN.md section 9): the one definition that the
//! broker's routes and the client share.
//!
//! Owns the requests, responses, query strings and the problem body as serde types, plus pure
//! helpers on them. Field names are the wire names and field order is the order the broker
//! writes. Request types reject unknown fields, so a typo is a 400 at the broker rather than
//! an ignored option; optional request fields are omitted when unset, except where section 9
//! shows an explicit `null` (`retention_bytes`). Response types ignore unknown fields and give
//! late additions a default, so a client still reads a broker that adds or omits one.
//!
//! Must not import anything of the crate but `names`: the broker (`http`) converts its own
//! types into these, and the client uses them as they are.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

mod admin;
mod cluster;
mod groups;

pub use admin::{
    AclList, AclRule, AuditDecision, AuditEntry, AuditEvent, AuditFilters, AuditHead, AuditPage,
    CreateAcl, CreateStreamTicket, CreateUser, Effect, ExplainDecision, ExplainQuery, Explanation,
    Operation, Pattern, ResourceType, RotatedKey, SetPassword, SigningKeyList, SigningKeyView,
    StreamTicket, User, UserCreated, UserList,
};
pub use cluster::{
    AddBroker, BrokerView, ClusterView, ControllerView, DecommissionStarted, PartitionView,
    RebalanceStarted,
};
pub use groups::{
    format_positions, parse_positions, CommitOffsets, GroupDescription, GroupList, GroupMemberView,
    GroupOffsetView, GroupPoll, GroupRecord, GroupSummary, JoinGroup, Member, OffsetCommit,
    OffsetReset, PollQuery, TopicPartition,
};

/// `POST /v1/auth/token` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// `POST /v1/auth/token` reply.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Lifetime of the token from issue, in seconds.
    pub expires_in: u64,
}

/// `GET /v1/whoami` reply: the principal and the ACL rules that apply to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub principal: String,
    #[serde(default)]
    pub superuser: bool,
    /// When the presented token expires, Unix seconds.
    #[serde(default)]
    pub token_expires_at_s: u64,
    #[serde(default)]
    pub permissions: Vec<AclRule>,
}

/// `POST /v1/topics` body. `retention_*` set to `null` means "no limit of that kind"; omitted
/// fields take the broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    #[schema(min_length = 1, max_length = 249, pattern = "^[A-Za-z0-9._-]+$")]
    pub name: String,
    /// At least 1 and at most the broker's `topics.partitions_max`.
    #[schema(minimum = 1)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u16>,
    #[serde(default)]
    pub retention_ms: Option<u64>,
    #[serde(default)]
    pub retention_bytes: Option<u64>,
}

/// `GET /v1/topics/{topic}` reply (also the items of `GET /v1/topics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopicDescription {
    pub name: String,
    pub replication_factor: u16,
    /// Retention by age; `null` keeps records of any age.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Retention by partition size; `null` keeps any number of bytes.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    pub partitions: Vec<PartitionDescription>,
}

/// `GET /v1/topics` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicDescription>,
}

/// One partition of a topic description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionDescription {
    pub partition: u32,
    /// Broker id of the current leader; `None` while an election runs.
    pub leader: Option<u64>,
    pub replicas: Vec<u64>,
    pub in_sync: Vec<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// `POST /v1/topics/{topic}/messages` body of a plain produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    pub records: Vec<ProduceRecord>,
}

/// `POST /v1/topics/{topic}/messages` body of an idempotent produce, as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdempotentProduceRequest {
    pub records: Vec<ProduceRecord>,
    pub producer_id: String,
    /// The batch's sequence when every record lands in one partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Partition number (as text) → sequence, one per partition written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences: Option<BTreeMap<String, u64>>,
}

/// `POST /v1/topics/{topic}/messages` body as the broker reads it: a [`ProduceRequest`], or an
/// [`IdempotentProduceRequest`] when `producer_id` is present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    pub records: Vec<ProduceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences: Option<BTreeMap<String, u64>>,
}

/// One record to produce: `value` for UTF-8 text or `value_b64` for bytes (exactly one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Explicit partition; otherwise keyed records hash and unkeyed ones spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

/// `POST /v1/topics/{topic}/messages` reply: one position per record, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProduceResponse {
    pub offsets: Vec<RecordPosition>,
}

/// Where one produced record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordPosition {
    pub partition: u32,
    pub offset: u64,
}

/// `POST /v1/producers` body: no fields (the body may also be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProducer {}

/// `POST /v1/producers` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProducerCreated {
    /// Names the producer in idempotent produce bodies (`producer_id`).
    pub producer_id: String,
}

/// Query of `GET /v1/topics/{topic}/partitions/{p}/messages`; a missing `offset` reads from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FetchQuery {
    /// The first offset to read (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Records returned at most; the broker caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
    /// Bytes of record values returned at most; the broker caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Milliseconds to wait for a record when none is there yet (a long poll); capped at the
    /// broker's `http.wait_ms_max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

impl FetchQuery {
    /// The query string's name-value pairs, set fields only, in declaration order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        query_pairs([
            ("offset", self.offset),
            ("max_messages", self.max_messages),
            ("max_bytes", self.max_bytes),
            ("wait_ms", self.wait_ms),
        ])
    }
}

/// The set ones of `fields` as query pairs, in the given order.
pub(crate) fn query_pairs<const N: usize>(
    fields: [(&'static str, Option<u64>); N],
) -> Vec<(&'static str, String)> {
    fields
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value.to_string())))
        .collect()
}

/// `GET /v1/topics/{topic}/partitions/{p}/messages` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FetchResponse {
    pub records: Vec<FetchedRecord>,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// One past the last committed offset.
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// One committed record: `value` when it was sent as text and is UTF-8, else `value_b64`.
/// The broker always writes `headers`, empty or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FetchedRecord {
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timestamp_ms: u64,
}

/// `GET /healthz` and `GET /readyz` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok` (alive) or `ready` (serving).
    pub status: String,
}

/// Stands in for secrets in `Debug` output, so logging a DTO never leaks a credential.
pub(crate) const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenRequest")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// An `application/problem+json` error body (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub problem_type: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// The round-trip check shared by the DTO tests.
#[cfg(test)]
pub(crate) mod wire_check {
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use serde_json::Value;

    /// Decodes `wire`, re-encodes it, and checks that nothing was renamed, dropped or added.
    pub fn round_trip<T: Serialize + DeserializeOwned>(wire: &str) -> T {
        let decoded: T = serde_json::from_str(wire).expect("example decodes");
        let encoded = serde_json::to_value(&decoded).expect("encodes");
        let expected: Value = serde_json::from_str(wire).expect("example is JSON");
        assert_eq!(encoded, expected, "round trip changed {wire}");
        decoded
    }
}

#[cfg(test)]
mod tests;
