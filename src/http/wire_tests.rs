//! The broker's side of each answer, serialized the way its route serializes it, must decode
//! into the client's wire type with nothing lost, and must stay byte for byte what clients have
//! always read (the pinned examples). The problem body is built by `http::error`, apart from
//! its wire type, so these tests are what keeps the two in step.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::dto::{fetch_body, json_response, record_from_wire};
use crate::broker::groups::{GroupRecords, MemberView, PartitionRecords};
use crate::broker::FetchedRecord;
use crate::broker::Record;
use crate::broker::TopicPartition;
use crate::wire;

/// The body the broker sends for `value`: `json_response`, as the fetch and poll routes use.
async fn server_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let response = json_response(HttpResponse::Ok(), value, 64);
    let body = actix_web::body::to_bytes(response.into_body()).await;
    body.expect("body reads").to_vec()
}

/// Decodes the broker's bytes as the client does and checks that re-encoding the client's
/// value gives the same JSON: no field renamed, dropped or added on either side.
fn client_reads<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> T {
    let decoded: T = serde_json::from_slice(bytes).expect("client decodes the broker's body");
    let sent: serde_json::Value = serde_json::from_slice(bytes).expect("body is JSON");
    let read = serde_json::to_value(&decoded).expect("encodes");
    assert_eq!(read, sent, "client and broker disagree on {sent}");
    decoded
}

fn fetched(offset: u64, value: &[u8], value_is_text: bool) -> FetchedRecord {
    FetchedRecord {
        offset,
        timestamp_ms: 1_764_422_400_000,
        record: Record {
            key: (offset == 17).then(|| "k1".to_string()),
            value: value.to_vec(),
            value_is_text,
            headers: if offset == 17 {
                vec![("h".to_string(), "v".to_string())]
            } else {
                Vec::new()
            },
        },
    }
}

#[actix_web::test]
async fn topic_answer_reads_back_on_the_client() {
    let view = wire::TopicDescription {
        name: "orders".to_string(),
        replication_factor: 3,
        retention_ms: Some(604_800_000),
        retention_bytes: None,
        partitions: vec![wire::PartitionDescription {
            partition: 0,
            leader: Some(2),
            replicas: vec![2, 3, 1],
            in_sync: vec![2, 3],
            high_watermark: 18,
            log_start_offset: 0,
        }],
    };
    let bytes = server_bytes(&view).await;
    assert_eq!(
        std::str::from_utf8(&bytes).expect("UTF-8"),
        r#"{"name":"orders","replication_factor":3,"retention_ms":604800000,"retention_bytes":null,"partitions":[{"partition":0,"leader":2,"replicas":[2,3,1],"in_sync":[2,3],"high_watermark":18,"log_start_offset":0}]}"#
    );
    let topic: wire::TopicDescription = client_reads(&bytes);
    assert_eq!(topic.partitions[0].in_sync, vec![2, 3]);
    assert_eq!(topic.retention_bytes, None);
}

/// The fetch route's body, as the connection would take it chunk by chunk.
fn streamed(records: Vec<FetchedRecord>, next: u64, high: u64, start: u64) -> Vec<u8> {
    joined(fetch_body(
        records,
        next,
        high,
        start,
        crate::broker::Held::default(),
    ))
}

/// The bytes of a streamed body's chunks, in order.
fn joined(
    chunks: impl IntoIterator<Item = Result<actix_web::web::Bytes, std::convert::Infallible>>,
) -> Vec<u8> {
    chunks
        .into_iter()
        .flat_map(|chunk| chunk.expect("infallible").to_vec())
        .collect()
}

#[test]
fn a_streamed_fetch_answer_is_the_json_of_the_answer_in_every_size() {
    for count in [0usize, 1, 2, 63, 64, 65, 1_000] {
        // 1 KiB values, so the larger answers span many 64 KiB chunks.
        let records: Vec<FetchedRecord> = (0..count as u64)
            .map(|n| fetched(n, &vec![b'a' + (n % 26) as u8; 1024], n % 3 != 0))
            .collect();
        let whole = wire::FetchResponse {
            records: records
                .iter()
                .cloned()
                .map(wire::FetchedRecord::from)
                .collect(),
            next_offset: count as u64,
            high_watermark: 5_000,
            log_start_offset: 3,
        };
        let expected = serde_json::to_vec(&whole).expect("serializes");
        let chunks: Vec<_> = fetch_body(
            records,
            count as u64,
            5_000,
            3,
            crate::broker::Held::default(),
        )
        .collect();
        assert!(
            chunks.len() > count / 80,
            "{count} records in {} chunks",
            chunks.len()
        );
        let bytes = joined(chunks);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            String::from_utf8(expected).unwrap(),
            "{count} records"
        );
    }
}

#[actix_web::test]
async fn fetch_answer_with_text_and_binary_values_reads_back_on_the_client() {
    let records = vec![
        fetched(17, b"text", true),
        fetched(18, &[0, 1, 2, 255], false),
        // Sent as text but not UTF-8: answered as base64 rather than mangled.
        fetched(19, &[0xff, 0xfe], true),
    ];
    let answer = wire::FetchResponse {
        records: records
            .iter()
            .cloned()
            .map(wire::FetchedRecord::from)
            .collect(),
        next_offset: 20,
        high_watermark: 20,
        log_start_offset: 0,
    };
    let bytes = streamed(records, 20, 20, 0);
    assert_eq!(
        std::str::from_utf8(&bytes).expect("UTF-8"),
        concat!(
            r#"{"records":[{"offset":17,"key":"k1","value":"text","headers":{"h":"v"},"timestamp_ms":1764422400000},"#,
            r#"{"offset":18,"value_b64":"AAEC/w==","headers":{},"timestamp_ms":1764422400000},"#,
            r#"{"offset":19,"value_b64":"//4=","headers":{},"timestamp_ms":1764422400000}],"#,
            r#""next_offset":20,"high_watermark":20,"log_start_offset":0}"#
        )
    );
    let read: wire::FetchResponse = client_reads(&bytes);
    assert_eq!(read, answer);
    assert_eq!(read.records[0].value.as_deref(), Some("text"));
    assert_eq!(read.records[1].value_b64.as_deref(), Some("AAEC/w=="));
}

#[actix_web::test]
async fn group_poll_answer_reads_back_on_the_client() {
    let tp = TopicPartition {
        topic: "orders".to_string(),
        partition: 1,
    };
    let polled = GroupRecords {
        member: MemberView {
            member_id: "m-1".to_string(),
            generation: 4,
            assignments: vec![tp.clone()],
        },
        partitions: vec![PartitionRecords {
            partition: tp,
            records: vec![fetched(17, b"text", true), fetched(18, &[7], false)],
            next_offset: 19,
            high_watermark: 19,
            held: crate::broker::Held::default(),
        }],
    };
    let bytes = server_bytes(&wire::GroupPoll::from(polled)).await;
    assert_eq!(
        std::str::from_utf8(&bytes).expect("UTF-8"),
        concat!(
            r#"{"member_id":"m-1","generation":4,"assignments":[{"topic":"orders","partition":1}],"#,
            r#""records":[{"topic":"orders","partition":1,"offset":17,"key":"k1","value":"text","headers":{"h":"v"},"timestamp_ms":1764422400000},"#,
            r#"{"topic":"orders","partition":1,"offset":18,"value_b64":"Bw==","headers":{},"timestamp_ms":1764422400000}],"#,
            r#""next_offsets":[{"topic":"orders","partition":1,"offset":19}]}"#
        )
    );
    let poll: wire::GroupPoll = client_reads(&bytes);
    assert_eq!(poll.records[1].record.value_b64.as_deref(), Some("Bw=="));
    assert_eq!(poll.next_offsets[0].offset, 19);
}

#[actix_web::test]
async fn problem_body_reads_back_on_the_client() {
    let response = crate::http::error::problem(
        StatusCode::FORBIDDEN,
        "forbidden",
        "no ACL allows write on topic orders".to_string(),
    );
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..])
    );
    let bytes = actix_web::body::to_bytes(response.into_body())
        .await
        .expect("body reads");
    let problem: wire::Problem = client_reads(&bytes);
    assert_eq!(problem.problem_type.as_deref(), Some("/problems/forbidden"));
    assert_eq!(problem.title.as_deref(), Some("Forbidden"));
    assert_eq!(problem.status, Some(403));
    assert_eq!(
        problem.detail.as_deref(),
        Some("no ACL allows write on topic orders")
    );
}

/// `GET /v1/cluster` for the view built below, byte for byte.
const CLUSTER_BYTES: &str = concat!(
    r#"{"broker":2,"controller":{"leader":1,"term":3,"voters":[1,2,3],"learners":[4]},"#,
    r#""brokers":[{"id":1,"http":"https://127.0.0.1:8441","peer":"127.0.0.1:9441","#,
    r#""rack":null,"state":"up","controller":"voter","silence_ms":12}],"#,
    r#""partitions":[{"topic":"orders","partition":0,"group":5,"replicas":[1,2,3],"#,
    r#""leader":1,"term":7,"commit":120,"lag":{"2":0,"3":4},"voters":[1,2,3],"learners":[]}],"#,
    r#""moves_in_flight":1}"#
);

#[actix_web::test]
async fn cluster_answer_keeps_its_bytes_and_reads_back_on_the_client() {
    let view = wire::ClusterView {
        broker: 2,
        controller: wire::ControllerView {
            leader: Some(1),
            term: Some(3),
            voters: vec![1, 2, 3],
            learners: vec![4],
        },
        brokers: vec![wire::BrokerView {
            id: 1,
            http: "https://127.0.0.1:8441".to_string(),
            peer: "127.0.0.1:9441".to_string(),
            rack: None,
            state: "up".to_string(),
            controller: "voter".to_string(),
            silence_ms: Some(12),
        }],
        partitions: vec![wire::PartitionView {
            topic: "orders".to_string(),
            partition: 0,
            group: Some(5),
            replicas: vec![1, 2, 3],
            leader: Some(1),
            term: Some(7),
            commit: Some(120),
            lag: std::collections::BTreeMap::from([("2".to_string(), 0), ("3".to_string(), 4)]),
            voters: vec![1, 2, 3],
            learners: Vec::new(),
        }],
        moves_in_flight: 1,
    };
    let bytes = server_bytes(&view).await;
    assert_eq!(
        std::str::from_utf8(&bytes).expect("UTF-8"),
        CLUSTER_BYTES,
        "the cluster answer keeps its documented bytes"
    );
    let read: wire::ClusterView = client_reads(&bytes);
    assert_eq!(read, view);
    assert_eq!(read.controller.term, Some(3));
    assert_eq!(read.partitions[0].lag.get("3"), Some(&4));
    assert_eq!(read.brokers[0].silence_ms, Some(12));
}

#[test]
fn users_answer_keeps_its_sorted_keys_and_reads_back_on_the_client() {
    let users = vec![wire::User {
        username: "bob".to_string(),
        superuser: true,
        created_ms: 7,
    }];
    let bytes =
        serde_json::to_vec(&serde_json::json!(wire::UserList { users })).expect("serializes");
    assert_eq!(
        std::str::from_utf8(&bytes).expect("UTF-8"),
        r#"{"users":[{"created_ms":7,"superuser":true,"username":"bob"}]}"#
    );
    let list: wire::UserList = client_reads(&bytes);
    assert_eq!(list.users[0].username, "bob");
}

/// The query string the client sends for `pairs`, encoded as its URLs encode it.
fn client_query(pairs: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("https://broker.test/").expect("URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

#[test]
fn client_queries_read_back_on_the_broker() {
    let fetch = wire::FetchQuery {
        offset: Some(17),
        max_messages: Some(5),
        max_bytes: Some(1 << 20),
        wait_ms: Some(1000),
    };
    let read = web::Query::<wire::FetchQuery>::from_query(&client_query(&fetch.pairs()))
        .expect("broker parses the fetch query");
    assert_eq!(read.into_inner(), fetch);
    let poll = wire::PollQuery {
        max_messages: Some(10),
        max_bytes: None,
        wait_ms: Some(250),
        from: Some(wire::format_positions(&[
            wire::OffsetCommit {
                topic: "orders.eu-1".into(),
                partition: 2,
                offset: 17,
            },
            wire::OffsetCommit {
                topic: "orders_b".into(),
                partition: 0,
                offset: 0,
            },
        ])),
    };
    let read = web::Query::<wire::PollQuery>::from_query(&client_query(&poll.pairs()))
        .expect("broker parses the poll query");
    assert_eq!(read.into_inner(), poll);
    for decision in [
        wire::AuditDecision::Allow,
        wire::AuditDecision::Deny,
        wire::AuditDecision::Success,
        wire::AuditDecision::Failure,
    ] {
        let filters = wire::AuditFilters {
            offset: Some(3),
            limit: Some(50),
            principal: Some("a b&c".to_string()),
            action: Some("topic.create".to_string()),
            decision: Some(decision),
            since_ms: Some(1),
            until_ms: Some(2),
        };
        let query = client_query(&filters.pairs());
        let read = web::Query::<wire::AuditFilters>::from_query(&query)
            .expect("broker parses the audit query");
        assert_eq!(read.into_inner(), filters, "{query}");
    }
}

#[test]
fn produced_wire_records_become_broker_records() {
    let text = wire::ProduceRecord {
        key: Some("k".to_string()),
        value: Some("hi".to_string()),
        partition: Some(3),
        ..wire::ProduceRecord::default()
    };
    let (record, partition) = record_from_wire(text, 0).expect("text record");
    assert_eq!(
        (record.value.as_slice(), record.value_is_text),
        (&b"hi"[..], true)
    );
    assert_eq!(partition, Some(3));
    let binary = wire::ProduceRecord {
        value_b64: Some("AAEC/w==".to_string()),
        ..wire::ProduceRecord::default()
    };
    let (record, _) = record_from_wire(binary, 1).expect("binary record");
    assert_eq!(record.value, vec![0, 1, 2, 255]);
    assert!(!record.value_is_text);
    let both = wire::ProduceRecord {
        value: Some("a".to_string()),
        value_b64: Some("AA==".to_string()),
        ..wire::ProduceRecord::default()
    };
    assert!(record_from_wire(both, 2).is_err());
    assert!(record_from_wire(wire::ProduceRecord::default(), 3).is_err());
}

#[test]
fn a_streamed_poll_answer_is_the_json_of_the_answer_in_every_size() {
    for count in [0usize, 1, 2, 64, 65, 700] {
        let partition = |number: u32, records: Vec<FetchedRecord>| PartitionRecords {
            partition: TopicPartition {
                topic: format!("t\"{number}"),
                partition: number,
            },
            next_offset: records.last().map_or(0, |r| r.offset + 1),
            records,
            high_watermark: 9_999,
            held: crate::broker::Held::default(),
        };
        let records = |base: u64| -> Vec<FetchedRecord> {
            (0..count as u64)
                .map(|n| fetched(base + n, &vec![b'a' + (n % 26) as u8; 1024], n % 3 != 0))
                .collect()
        };
        // One partition with records, one empty (left out of next_offsets), one more with.
        let polled = GroupRecords {
            member: MemberView {
                member_id: "m-\"1".to_string(),
                generation: 7,
                assignments: (0..3)
                    .map(|number| TopicPartition {
                        topic: format!("t\"{number}"),
                        partition: number,
                    })
                    .collect(),
            },
            partitions: vec![
                partition(0, records(0)),
                partition(1, Vec::new()),
                partition(2, records(100)),
            ],
        };
        let expected =
            serde_json::to_vec(&wire::GroupPoll::from(polled.clone())).expect("serializes");
        let chunks: Vec<_> = crate::http::dto_groups::group_poll_body(polled).collect();
        assert!(
            chunks.len() > 2 * count / 80,
            "{count} records per partition in {} chunks",
            chunks.len()
        );
        let bytes = joined(chunks);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            String::from_utf8(expected).unwrap(),
            "{count} records per partition"
        );
    }
}
