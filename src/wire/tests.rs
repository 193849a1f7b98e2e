//! Round trips of the wire shapes through the documented examples of DESIGN.md section 9.

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
    let problem: Problem =
        round_trip(r#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"no ACL"}"#);
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
        serde_json::from_slice(&serde_json::to_vec(&idempotent).expect("encodes")).expect("reads");
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
