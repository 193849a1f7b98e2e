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

mod admin;
mod cluster;
mod groups;

pub use admin::{
    AclList, AclRule, AuditDecision, AuditEntry, AuditEvent, AuditFilters, AuditPage, CreateAcl,
    CreateUser, Effect, Operation, Pattern, ResourceType, SetPassword, User, UserList,
};
pub use cluster::{AddBroker, BrokerView, ClusterView, ControllerView, PartitionView};
pub use groups::{
    CommitOffsets, GroupDescription, GroupList, GroupMemberView, GroupOffsetView, GroupPoll,
    GroupRecord, GroupSummary, JoinGroup, Member, OffsetCommit, OffsetReset, PollQuery,
    TopicPartition,
};

/// `POST /v1/auth/token` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub username: String,
    pub password: String,
}

/// `POST /v1/auth/token` reply.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When the presented token expires, Unix seconds.
    #[serde(default)]
    pub token_expires_at_s: u64,
    #[serde(default)]
    pub permissions: Vec<AclRule>,
}

/// `POST /v1/topics` body. `retention_*` set to `null` means "no limit of that kind"; omitted
/// fields take the broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Retention by age; `null` keeps records of any age.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Retention by partition size; `null` keeps any number of bytes.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    pub partitions: Vec<PartitionDescription>,
}

/// `GET /v1/topics` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicList {
    pub topics: Vec<TopicDescription>,
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

/// `POST /v1/topics/{topic}/messages` body of a plain produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    pub records: Vec<ProduceRecord>,
}

/// `POST /v1/topics/{topic}/messages` body of an idempotent produce, as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
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

/// `POST /v1/producers` body: no fields (the body may also be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProducer {}

/// `POST /v1/producers` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerCreated {
    pub producer_id: String,
}

/// Query of `GET /v1/topics/{topic}/partitions/{p}/messages`; a missing `offset` reads from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
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
/// The broker always writes `headers`, empty or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
mod tests {
    use super::wire_check::round_trip;
    use super::*;
    use serde_json::json;

    #[test]
    fn token_request_and_response_match_design_examples() {
        let request: TokenRequest = round_trip(r#"{"username":"admin","password":"..."}"#);
        assert_eq!(request.username, "admin");
        let response: TokenResponse =
            round_trip(r#"{"access_token":"<jwt>","token_type":"Bearer","expires_in":3600}"#);
        assert_eq!(response.expires_in, 3600);
        assert_eq!(response.token_type, "Bearer");
    }

    #[test]
    fn create_topic_matches_design_example_including_null_retention_bytes() {
        let topic: CreateTopic = round_trip(
            r#"{"name":"orders","partitions":6,"replication_factor":3,
                "retention_ms":604800000,"retention_bytes":null}"#,
        );
        assert_eq!(topic.partitions, Some(6));
        assert_eq!(topic.retention_ms, Some(604_800_000));
        assert_eq!(topic.retention_bytes, None);
    }

    #[test]
    fn produce_request_matches_design_example() {
        let request: ProduceRequest = round_trip(
            r#"{"records":[{"key":"k1","value":"text","headers":{"h":"v"}},
                           {"value_b64":"AAEC","partition":2}]}"#,
        );
        assert_eq!(request.records[0].key.as_deref(), Some("k1"));
        assert_eq!(
            request.records[0].headers.get("h").map(String::as_str),
            Some("v")
        );
        assert_eq!(request.records[1].value_b64.as_deref(), Some("AAEC"));
        assert_eq!(request.records[1].partition, Some(2));
        assert_eq!(request.records[1].value, None);
    }

    #[test]
    fn produce_response_matches_design_example() {
        let response: ProduceResponse =
            round_trip(r#"{"offsets":[{"partition":4,"offset":17},{"partition":2,"offset":9}]}"#);
        assert_eq!(
            response.offsets,
            vec![
                RecordPosition {
                    partition: 4,
                    offset: 17
                },
                RecordPosition {
                    partition: 2,
                    offset: 9
                },
            ]
        );
    }

    #[test]
    fn fetch_response_matches_design_example() {
        let response: FetchResponse = round_trip(
            r#"{"records":[{"offset":17,"key":"k1","value":"text","headers":{"h":"v"},
                            "timestamp_ms":1764422400000}],
                "next_offset":18,"high_watermark":18,"log_start_offset":0}"#,
        );
        assert_eq!(response.records[0].offset, 17);
        assert_eq!(response.records[0].timestamp_ms, 1_764_422_400_000);
        assert_eq!(response.next_offset, 18);
        assert_eq!(response.high_watermark, 18);
    }

    #[test]
    fn topic_description_matches_design_example() {
        let topic: TopicDescription = round_trip(
            r#"{"name":"orders","replication_factor":3,"retention_ms":604800000,
                "retention_bytes":null,"partitions":[
                 {"partition":0,"leader":2,"replicas":[2,3,1],"in_sync":[2,3,1],
                  "high_watermark":18,"log_start_offset":0}]}"#,
        );
        assert_eq!(topic.partitions[0].leader, Some(2));
        assert_eq!(topic.partitions[0].replicas, vec![2, 3, 1]);
        assert_eq!(topic.retention_ms, Some(604_800_000));
    }

    #[test]
    fn responses_tolerate_added_fields() {
        let wire = json!({"access_token":"t","token_type":"Bearer","expires_in":60,"scope":"x"});
        let response: TokenResponse = serde_json::from_value(wire).expect("extra field ignored");
        assert_eq!(response.access_token, "t");
    }

    #[test]
    fn binary_record_omits_text_fields() {
        let record = ProduceRecord {
            value_b64: Some("AAEC".to_string()),
            ..ProduceRecord::default()
        };
        assert_eq!(
            serde_json::to_value(&record).expect("encodes"),
            json!({"value_b64":"AAEC"})
        );
    }

    #[test]
    fn problem_uses_type_as_its_wire_name() {
        let problem: Problem = round_trip(
            r#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"no ACL"}"#,
        );
        assert_eq!(problem.problem_type.as_deref(), Some("about:blank"));
        assert_eq!(problem.status, Some(403));
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let login = TokenRequest {
            username: "admin".to_string(),
            password: "hunter2".to_string(),
        };
        let token = TokenResponse {
            access_token: "eyJ.secret.sig".to_string(),
            token_type: "Bearer".to_string(),
            expires_in: 1,
        };
        let user = CreateUser {
            username: "bob".to_string(),
            password: "hunter2".to_string(),
            superuser: false,
        };
        let change = SetPassword {
            password: "hunter2".to_string(),
        };
        let printed = format!("{login:?} {token:?} {user:?} {change:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("eyJ.secret.sig"), "{printed}");
        assert!(
            printed.contains("admin") && printed.contains("bob"),
            "{printed}"
        );
    }

    #[test]
    fn broker_reads_both_client_produce_bodies() {
        let record = ProduceRecord {
            value: Some("a".to_string()),
            ..ProduceRecord::default()
        };
        let plain = ProduceRequest {
            records: vec![record.clone()],
        };
        let read: ProduceBody =
            serde_json::from_slice(&serde_json::to_vec(&plain).expect("encodes")).expect("reads");
        assert_eq!(
            read,
            ProduceBody {
                records: vec![record.clone()],
                ..ProduceBody::default()
            }
        );
        let idempotent = IdempotentProduceRequest {
            records: vec![record.clone()],
            producer_id: "p-1".to_string(),
            sequence: None,
            sequences: Some(BTreeMap::from([("0".to_string(), 4)])),
        };
        let read: ProduceBody =
            serde_json::from_slice(&serde_json::to_vec(&idempotent).expect("encodes"))
                .expect("reads");
        assert_eq!(read.producer_id.as_deref(), Some("p-1"));
        assert_eq!(read.sequences, idempotent.sequences);
        assert_eq!(read.records, vec![record]);
    }

    #[test]
    fn requests_reject_unknown_fields() {
        let typo = r#"{"name":"orders","partition":3}"#;
        assert!(serde_json::from_str::<CreateTopic>(typo).is_err());
        let typo = r#"{"records":[{"value":"a","heders":{}}]}"#;
        assert!(serde_json::from_str::<ProduceBody>(typo).is_err());
    }

    #[test]
    fn round_trip_check_catches_a_renamed_field() {
        // A DTO whose field name differs from the wire name must fail the round-trip check.
        #[derive(Serialize, serde::Deserialize)]
        struct Renamed {
            #[serde(alias = "access_token")]
            token: String,
        }
        let outcome = std::panic::catch_unwind(|| {
            round_trip::<Renamed>(r#"{"access_token":"t"}"#);
        });
        assert!(outcome.is_err(), "round trip accepted a renamed field");
    }
}
