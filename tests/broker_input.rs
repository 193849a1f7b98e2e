//! Bad input through a real broker process over HTTPS: malformed JSON, wrong types, unknown fields,
//! broken records, exceeded limits, invalid names, unknown topics and partitions, offsets out of
//! range and wrong content types each get the precise 4xx and a problem body naming the problem;
//! nothing is partially written and the broker keeps serving.

#[path = "broker_input/cases.rs"]
mod cases;
mod common;

use cases::{Case, LIMITS, PRODUCE, TOPIC};
use common::{BrokerProcess, RawApi, ADMIN_PASSWORD};
use serde_json::{json, Value};

/// What a bad request could have changed: high watermarks, topics, users and ACLs.
#[derive(Debug, PartialEq)]
struct Snapshot {
    high_watermarks: Vec<u64>,
    topics: Vec<String>,
    users: Vec<String>,
    acls: usize,
}

async fn snapshot(api: &RawApi, admin: &str) -> Snapshot {
    let get = |path: &'static str| async move {
        let reply = api.call("GET", path, Some(admin), None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.body
    };
    let names = |list: &Value, field: &str| -> Vec<String> {
        let items = list.as_array().cloned().unwrap_or_default();
        items
            .iter()
            .map(|item| item[field].as_str().expect("name").to_string())
            .collect()
    };
    let topic = get("/v1/topics/input").await;
    let partitions = topic["partitions"].as_array().cloned().unwrap_or_default();
    Snapshot {
        high_watermarks: partitions
            .iter()
            .map(|p| p["high_watermark"].as_u64().expect("hw"))
            .collect(),
        topics: names(&get("/v1/topics").await["topics"], "name"),
        users: names(&get("/v1/users").await["users"], "username"),
        acls: get("/v1/acls").await["acls"].as_array().map_or(0, Vec::len),
    }
}

async fn send(api: &RawApi, admin: &str, case: &Case) -> common::RawReply {
    let mut headers = vec![("authorization".to_string(), format!("Bearer {admin}"))];
    if let Some(content_type) = case.content_type {
        headers.push(("content-type".to_string(), content_type.to_string()));
    }
    api.send(case.method, &case.path, &headers, case.body.clone())
        .await
}

async fn produce_ok(api: &RawApi, admin: &str, records: Value) -> Vec<(u64, u64)> {
    let reply = api
        .call(
            "POST",
            PRODUCE,
            Some(admin),
            Some(&json!({ "records": records })),
        )
        .await;
    assert_eq!(reply.status, 200, "produce: {}", reply.body);
    let offsets = reply.body["offsets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    offsets
        .iter()
        .map(|o| {
            (
                o["partition"].as_u64().expect("p"),
                o["offset"].as_u64().expect("o"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_precise_4xx_writes_nothing_and_the_broker_keeps_serving() {
    let broker = BrokerProcess::start_with(&[], LIMITS).await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    let topic = json!({"name": TOPIC, "partitions": 2});
    assert_eq!(
        api.call("POST", "/v1/topics", Some(&admin), Some(&topic))
            .await
            .status,
        201
    );
    produce_ok(
        &api,
        &admin,
        json!([{"value": "a", "partition": 0}, {"value": "b", "partition": 1}]),
    )
    .await;
    let before = snapshot(&api, &admin).await;
    assert_eq!(before.high_watermarks, [1, 1]);

    let all: Vec<Case> = [
        cases::produce_shape_cases(),
        cases::produce_limit_cases(),
        cases::fetch_cases(),
        cases::topic_cases(),
        cases::admin_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for case in &all {
        let reply = send(&api, &admin, case).await;
        reply.assert_problem(
            case.status,
            &case.detail,
            &format!("{} ({} {})", case.what, case.method, case.path),
        );
        assert!(
            reply.body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("/problems/")),
            "{}: problem type",
            case.what
        );
    }
    assert!(all.len() >= 60, "the catalogue covers {} cases", all.len());

    assert_eq!(
        snapshot(&api, &admin).await,
        before,
        "no bad request changed anything"
    );
    // The broker still serves: a normal produce and fetch round trip.
    let offsets = produce_ok(
        &api,
        &admin,
        json!([{"value": "after", "partition": 0}, {"value_b64": "AAEC", "partition": 0}]),
    )
    .await;
    assert_eq!(
        offsets,
        [(0, 1), (0, 2)],
        "offsets continue where the valid records left them"
    );
    let path = "/v1/topics/input/partitions/0/messages?offset=0";
    let fetched = api.call("GET", path, Some(&admin), None).await;
    assert_eq!(fetched.status, 200);
    let values: Vec<Value> = fetched.body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let values: Vec<(Option<&str>, Option<&str>)> = values
        .iter()
        .map(|r| (r["value"].as_str(), r["value_b64"].as_str()))
        .collect();
    assert_eq!(
        values,
        [
            (Some("a"), None),
            (Some("after"), None),
            (None, Some("AAEC"))
        ]
    );
    assert_eq!(snapshot(&api, &admin).await.high_watermarks, [3, 1]);
}

#[test]
fn the_problem_checker_rejects_a_wrong_status_or_detail() {
    // The checker used above, on replies that must not satisfy it.
    let reply = common::RawReply {
        status: 400,
        content_type: "application/problem+json".into(),
        retry_after: None,
        www_authenticate: None,
        body: json!({"type": "/problems/bad-request", "status": 400, "detail": "record 0: value or value_b64 is required"}),
    };
    reply.assert_problem(400, "value or value_b64 is required", "a matching reply");
    for (status, detail) in [(413, "value or value_b64 is required"), (400, "not both")] {
        let outcome =
            std::panic::catch_unwind(|| reply.assert_problem(status, detail, "a mismatch"));
        assert!(
            outcome.is_err(),
            "status {status} / detail {detail:?} must not pass"
        );
    }
    let plain = common::RawReply {
        content_type: "application/json".into(),
        ..reply
    };
    assert!(
        std::panic::catch_unwind(|| plain.assert_problem(400, "required", "plain JSON")).is_err()
    );
}

/// The token is checked before the body, path or query is read: a caller without a valid token gets
/// 401 whatever else is wrong with its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_before_the_body_is_read() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let forged = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhZG1pbiJ9.c2ln";
    let json_type = ("content-type".to_string(), "application/json".to_string());
    for token in [None, Some(forged)] {
        let mut headers = vec![json_type.clone()];
        if let Some(token) = token {
            headers.push(("authorization".to_string(), format!("Bearer {token}")));
        }
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            ("POST", "/v1/topics", b"{\"name\": ".to_vec()),
            ("POST", "/v1/topics/x/messages", vec![b'x'; 100_000]),
            (
                "GET",
                "/v1/topics/x/partitions/not-a-number/messages?offset=-1",
                Vec::new(),
            ),
        ];
        for (method, path, body) in cases {
            let body = (!body.is_empty()).then_some(body);
            let reply = api.send(method, path, &headers, body).await;
            assert_eq!(
                reply.status,
                401,
                "{method} {path} with token {:?}: {:?}",
                token.is_some(),
                reply.body
            );
        }
    }
}
