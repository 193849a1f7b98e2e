//! JSON shapes of the HTTP API v1 (DESIGN.md section 9), as the client sends and reads them.
//!
//! Field names are the wire names. Optional request fields are omitted when unset, except
//! where section 9 shows an explicit `null` (`retention_bytes`). Responses ignore unknown
//! fields, so the server may add fields without breaking the client. This module holds no
//! logic beyond (de)serialization.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /v1/auth/token` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub username: String,
    pub password: String,
}

/// `POST /v1/auth/token` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Lifetime of the token from issue, in seconds.
    pub expires_in: u64,
}

/// `GET /v1/whoami` reply: the principal and the ACL rules that apply to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whoami {
    pub principal: String,
    #[serde(default)]
    pub superuser: bool,
    #[serde(default)]
    pub permissions: Vec<AclRule>,
}

/// `POST /v1/topics` body. `retention_*` set to `null` means "no limit of that kind"; omitted
/// fields take the broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopic {
    pub name: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDescription {
    pub name: String,
    pub replication_factor: u16,
    pub partitions: Vec<PartitionDescription>,
}

/// One partition of a topic description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDescription {
    pub partition: u32,
    /// Broker id of the current leader; `None` while an election runs.
    pub leader: Option<u64>,
    pub replicas: Vec<u64>,
    pub in_sync: Vec<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// `POST /v1/topics/{topic}/messages` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProduceRequest {
    pub records: Vec<ProduceRecord>,
}

/// One record to produce: `value` for UTF-8 text or `value_b64` for bytes (exactly one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    pub offsets: Vec<RecordPosition>,
}

/// Where one produced record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPosition {
    pub partition: u32,
    pub offset: u64,
}

/// Query of `GET /v1/topics/{topic}/partitions/{p}/messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FetchQuery {
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// `GET /v1/topics/{topic}/partitions/{p}/messages` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub records: Vec<FetchedRecord>,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// One past the last committed offset.
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// One committed record: `value` when it was sent as text and is UTF-8, else `value_b64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedRecord {
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub timestamp_ms: u64,
}

/// An item of `GET /v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub superuser: bool,
}

/// `POST /v1/users` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub superuser: bool,
}

/// `PUT /v1/users/{user}/password` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPassword {
    pub password: String,
}

/// Resource types an ACL rule can name (DESIGN.md section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    User,
    Audit,
}

/// Which names a rule covers: `{"literal":"orders"}`, `{"prefix":"orders."}` or `"any"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Literal(String),
    Prefix(String),
    Any,
}

/// Operations an ACL rule can grant or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Describe,
    Alter,
}

/// Whether a matching rule allows or denies; deny wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// `POST /v1/acls` body: a rule without its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAcl {
    /// A user name, or `"*"` for every principal.
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: Pattern,
    pub operation: Operation,
    pub effect: Effect,
}

/// An item of `GET /v1/acls` (and the reply of `POST /v1/acls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRule {
    pub id: u64,
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: Pattern,
    pub operation: Operation,
    pub effect: Effect,
}

/// Query of `GET /v1/audit`; every filter is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditFilters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<AuditDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Outcome recorded by an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Allow,
    Deny,
    Success,
    Failure,
}

/// One hash-chained audit event (DESIGN.md section 8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub time_ms: u64,
    pub broker: u64,
    pub request_id: String,
    pub principal: Option<String>,
    pub source: String,
    pub action: String,
    pub resource: String,
    pub decision: AuditDecision,
    pub status: u16,
    #[serde(default)]
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// An `application/problem+json` error body (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
