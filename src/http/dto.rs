//! JSON shapes of the v1 API (DESIGN.md section 9). Request types reject unknown fields so a typo
//! is a 400, not a silently ignored option.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::auth::acl::{AclRule, Effect, Operation, Pattern, ResourceType};
use crate::broker::{PartitionView, TopicView};
use crate::partition::batch::Record;
use crate::partition::read::FetchedRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopicRequest {
    pub name: String,
    pub partitions: Option<u32>,
    pub replication_factor: Option<u16>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

#[derive(Serialize)]
pub struct PartitionDto {
    pub partition: u32,
    pub leader: Option<u64>,
    pub replicas: Vec<u64>,
    pub in_sync: Vec<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

#[derive(Serialize)]
pub struct TopicDto {
    pub name: String,
    pub replication_factor: u16,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub partitions: Vec<PartitionDto>,
}

impl From<TopicView> for TopicDto {
    fn from(view: TopicView) -> Self {
        TopicDto {
            name: view.name,
            replication_factor: view.replication_factor,
            retention_ms: view.retention_ms,
            retention_bytes: view.retention_bytes,
            partitions: view
                .partitions
                .into_iter()
                .map(PartitionDto::from)
                .collect(),
        }
    }
}

impl From<PartitionView> for PartitionDto {
    fn from(view: PartitionView) -> Self {
        PartitionDto {
            partition: view.partition,
            leader: view.leader,
            replicas: view.replicas,
            in_sync: view.in_sync,
            high_watermark: view.high_watermark,
            log_start_offset: view.log_start_offset,
        }
    }
}

#[derive(Serialize)]
pub struct TopicList {
    pub topics: Vec<TopicDto>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    pub key: Option<String>,
    pub value: Option<String>,
    pub value_b64: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub partition: Option<u32>,
}

impl RecordIn {
    /// Exactly one of `value` and `value_b64` must be present.
    pub fn into_record(self, position: usize) -> Result<(Record, Option<u32>), String> {
        let (value, value_is_text) = match (self.value, self.value_b64) {
            (Some(text), None) => (text.into_bytes(), true),
            (None, Some(encoded)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|error| {
                        format!("record {position}: value_b64 is not valid base64: {error}")
                    })?;
                (bytes, false)
            }
            (Some(_), Some(_)) => {
                return Err(format!(
                    "record {position}: give either value or value_b64, not both"
                ))
            }
            (None, None) => {
                return Err(format!("record {position}: value or value_b64 is required"))
            }
        };
        let record = Record {
            key: self.key,
            value,
            value_is_text,
            headers: self.headers.into_iter().collect(),
        };
        Ok((record, self.partition))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    pub records: Vec<RecordIn>,
    /// Idempotent produce: an id from `POST /v1/producers`, with `sequence` (records for one
    /// partition) or `sequences` (partition number → sequence, one per partition written).
    pub producer_id: Option<String>,
    pub sequence: Option<u64>,
    pub sequences: Option<BTreeMap<String, u64>>,
}

/// `POST /v1/producers` takes no fields; the body may be empty or `{}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProducerRequest {}

#[derive(Serialize)]
pub struct ProducerCreated {
    pub producer_id: String,
}

#[derive(Serialize)]
pub struct OffsetDto {
    pub partition: u32,
    pub offset: u64,
}

#[derive(Serialize)]
pub struct ProduceResponse {
    pub offsets: Vec<OffsetDto>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    pub offset: Option<u64>,
    pub max_messages: Option<u64>,
    pub max_bytes: Option<u64>,
    pub wait_ms: Option<u64>,
}

#[derive(Serialize)]
pub struct RecordOut {
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub timestamp_ms: u64,
}

impl From<FetchedRecord> for RecordOut {
    fn from(fetched: FetchedRecord) -> Self {
        let record = fetched.record;
        let (value, value_b64) = if record.value_is_text {
            match String::from_utf8(record.value) {
                Ok(text) => (Some(text), None),
                Err(error) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(error.into_bytes())),
                ),
            }
        } else {
            (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&record.value)),
            )
        };
        RecordOut {
            offset: fetched.offset,
            key: record.key,
            value,
            value_b64,
            headers: record.headers.into_iter().collect(),
            timestamp_ms: fetched.timestamp_ms,
        }
    }
}

/// About the JSON size of `records`, so a response buffer is allocated once instead of growing
/// (and being copied) by doubling. Values may grow by a third as base64.
pub fn records_json_bytes(records: &[FetchedRecord]) -> usize {
    records
        .iter()
        .map(|r| r.record.value.len() * 4 / 3 + r.record.size_bytes() as usize + 128)
        .sum::<usize>()
        + 256
}

/// Serializes `value` into a buffer of `capacity` bytes and answers it as JSON.
pub fn json_response<T: Serialize>(
    mut builder: actix_web::HttpResponseBuilder,
    value: &T,
    capacity: usize,
) -> actix_web::HttpResponse {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => builder
            .content_type(actix_web::http::header::ContentType::json())
            .body(body),
        Err(error) => actix_web::HttpResponse::InternalServerError()
            .body(format!("response does not serialize: {error}")),
    }
}

#[derive(Serialize)]
pub struct FetchResponse {
    pub records: Vec<RecordOut>,
    pub next_offset: u64,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub superuser: bool,
}

#[derive(Serialize)]
pub struct UserDto {
    pub username: String,
    pub superuser: bool,
    pub created_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    pub password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAclRequest {
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: Pattern,
    pub operation: Operation,
    pub effect: Effect,
}

#[derive(Serialize)]
pub struct AclList {
    pub acls: Vec<AclRule>,
}

#[derive(Serialize)]
pub struct WhoAmI {
    pub principal: String,
    pub superuser: bool,
    pub token_expires_at_s: u64,
    pub permissions: Vec<AclRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    pub principal: Option<String>,
    pub action: Option<String>,
    pub decision: Option<crate::audit::AuditDecision>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

#[derive(Serialize)]
pub struct AuditEventDto {
    pub offset: u64,
    #[serde(flatten)]
    pub event: crate::audit::AuditEvent,
}

#[derive(Serialize)]
pub struct AuditResponse {
    pub events: Vec<AuditEventDto>,
    pub next_offset: u64,
    pub high_watermark: u64,
}
