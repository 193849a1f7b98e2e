//! Idempotent produce against one real broker process over HTTPS: producer ids and sequences,
//! `sequences` over several partitions, `Idempotency-Key`, ownership of producer ids, and
//! malformed idempotence fields refused with 400 before anything is written.

mod common;

use common::{BrokerProcess, RawApi, RawReply};
use serde_json::{json, Value};

const TOPIC: &str = "orders";

async fn setup() -> (BrokerProcess, RawApi, String) {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", common::ADMIN_PASSWORD).await;
    let topic = json!({"name": TOPIC, "partitions": 3, "replication_factor": 1});
    let reply = api
        .call("POST", "/v1/topics", Some(&admin), Some(&topic))
        .await;
    assert_eq!(reply.status, 201, "create topic: {}", reply.body);
    (broker, api, admin)
}

async fn new_producer(api: &RawApi, token: &str) -> String {
    let reply = api.call("POST", "/v1/producers", Some(token), None).await;
    assert_eq!(reply.status, 201, "create producer: {}", reply.body);
    let id = reply.body["producer_id"].as_str().expect("producer_id");
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id.to_string()
}

async fn produce(api: &RawApi, token: &str, body: &Value) -> RawReply {
    let path = format!("/v1/topics/{TOPIC}/messages");
    api.call("POST", &path, Some(token), Some(body)).await
}

async fn produce_with_key(api: &RawApi, token: &str, key: &str, body: &Value) -> RawReply {
    let headers = vec![
        ("authorization".to_string(), format!("Bearer {token}")),
        ("content-type".to_string(), "application/json".to_string()),
        ("idempotency-key".to_string(), key.to_string()),
    ];
    let bytes = serde_json::to_vec(body).expect("JSON");
    let path = format!("/v1/topics/{TOPIC}/messages");
    api.send("POST", &path, &headers, Some(bytes)).await
}

/// The values stored in a partition, in offset order.
async fn values(api: &RawApi, token: &str, partition: u32) -> Vec<String> {
    let path = format!("/v1/topics/{TOPIC}/partitions/{partition}/messages?offset=0");
    let reply = api.call("GET", &path, Some(token), None).await;
    assert_eq!(reply.status, 200, "fetch: {}", reply.body);
    reply.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["value"].as_str().expect("text value").to_string())
        .collect()
}

async fn high_watermarks(api: &RawApi, token: &str) -> Vec<u64> {
    let reply = api
        .call("GET", &format!("/v1/topics/{TOPIC}"), Some(token), None)
        .await;
    assert_eq!(reply.status, 200, "describe: {}", reply.body);
    reply.body["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["high_watermark"].as_u64().expect("high_watermark"))
        .collect()
}

fn records(values: &[(&str, u32)]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|(value, partition)| json!({"value": value, "partition": partition}))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_sequence_is_appended_once_and_sequences_are_checked() {
    let (_broker, api, admin) = setup().await;
    let producer = new_producer(&api, &admin).await;
    let with_body = api
        .call("POST", "/v1/producers", Some(&admin), Some(&json!({})))
        .await;
    assert_eq!(with_body.status, 201, "{}", with_body.body);
    assert_ne!(
        with_body.body["producer_id"].as_str(),
        Some(producer.as_str())
    );
    api.call(
        "POST",
        "/v1/producers",
        Some(&admin),
        Some(&json!({"x": 1})),
    )
    .await
    .assert_problem(400, "empty or {}", "producer body with a field");

    let first = json!({"records": records(&[("a", 0), ("b", 0)]),
                       "producer_id": producer, "sequence": 0});
    let original = produce(&api, &admin, &first).await;
    assert_eq!(original.status, 200, "{}", original.body);
    assert_eq!(
        original.body["offsets"],
        json!([{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}])
    );
    for _ in 0..3 {
        let retried = produce(&api, &admin, &first).await;
        assert_eq!(retried.status, 200, "{}", retried.body);
        assert_eq!(
            retried.body, original.body,
            "a retry answers the original offsets"
        );
    }
    assert_eq!(values(&api, &admin, 0).await, ["a", "b"]);

    let gap = json!({"records": records(&[("c", 0)]), "producer_id": producer, "sequence": 2});
    produce(&api, &admin, &gap)
        .await
        .assert_problem(409, "expects sequence 1", "gap");
    let next = json!({"records": records(&[("c", 0)]), "producer_id": producer, "sequence": 1});
    let reply = produce(&api, &admin, &next).await;
    assert_eq!(
        reply.body["offsets"],
        json!([{"partition": 0, "offset": 2}])
    );
    produce(&api, &admin, &first)
        .await
        .assert_problem(409, "older than", "older sequence");
    let different = json!({"records": records(&[("c", 0), ("d", 0)]),
                           "producer_id": producer, "sequence": 1});
    produce(&api, &admin, &different).await.assert_problem(
        409,
        "same records",
        "same sequence, other batch size",
    );
    assert_eq!(values(&api, &admin, 0).await, ["a", "b", "c"]);

    // Two partitions: one sequence each, counted per partition.
    let spread = json!({"records": records(&[("x1", 1), ("y1", 2), ("x2", 1)]),
                        "producer_id": producer, "sequences": {"1": 0, "2": 0}});
    let original = produce(&api, &admin, &spread).await;
    assert_eq!(original.status, 200, "{}", original.body);
    assert_eq!(
        original.body["offsets"],
        json!([{"partition": 1, "offset": 0}, {"partition": 2, "offset": 0},
               {"partition": 1, "offset": 1}])
    );
    assert_eq!(produce(&api, &admin, &spread).await.body, original.body);
    assert_eq!(values(&api, &admin, 1).await, ["x1", "x2"]);
    assert_eq!(values(&api, &admin, 2).await, ["y1"]);
    let next = json!({"records": records(&[("x3", 1), ("y2", 2)]),
                      "producer_id": producer, "sequences": {"1": 1, "2": 1}});
    assert_eq!(produce(&api, &admin, &next).await.status, 200);
    assert_eq!(values(&api, &admin, 2).await, ["y1", "y2"]);
}

/// A create-producer body is empty or `{}`; a long one is refused as a problem body, declared
/// or not, and so is one that is not `{}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_producer_refuses_long_and_other_bodies_as_problems() {
    let (_broker, api, admin) = setup().await;
    let auth = [("authorization".to_string(), format!("Bearer {admin}"))];
    let long = vec![b' '; 20 * 1024 * 1024];
    let reply = api.send("POST", "/v1/producers", &auth, Some(long)).await;
    reply.assert_problem(413, "empty or {}", "a 20 MiB body");
    let reply = api
        .send("POST", "/v1/producers", &auth, Some(vec![b' '; 2048]))
        .await;
    reply.assert_problem(413, "empty or {}", "a 2 KiB body");
    let reply = api
        .send("POST", "/v1/producers", &auth, Some(b"[1]".to_vec()))
        .await;
    reply.assert_problem(400, "empty or {}", "a body that is not {}");
    let reply = api
        .send("POST", "/v1/producers", &auth, Some(b" {} ".to_vec()))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_foreign_producers_keys_and_malformed_fields() {
    let (_broker, api, admin) = setup().await;
    let producer = new_producer(&api, &admin).await;

    let unknown = json!({"records": records(&[("u", 0)]),
                         "producer_id": "0123456789abcdef0123456789abcdef", "sequence": 0});
    produce(&api, &admin, &unknown).await.assert_problem(
        404,
        "not registered",
        "unknown producer id",
    );

    // Another user with write access may not use the admin's producer id.
    let user = json!({"username": "bob", "password": "bob-password-123"});
    let reply = api
        .call("POST", "/v1/users", Some(&admin), Some(&user))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let acl = json!({"principal": "bob", "resource": "topic", "pattern": {"literal": TOPIC},
                     "operation": "write", "effect": "allow"});
    let reply = api.call("POST", "/v1/acls", Some(&admin), Some(&acl)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let bob = api.token("bob", "bob-password-123").await;
    let foreign = json!({"records": records(&[("f", 0)]), "producer_id": producer, "sequence": 0});
    produce(&api, &bob, &foreign).await.assert_problem(
        403,
        "belongs to another user",
        "foreign producer id",
    );
    let audit = api
        .call(
            "GET",
            "/v1/audit?principal=bob&decision=deny",
            Some(&admin),
            None,
        )
        .await;
    let resource = format!("producer:{producer}");
    let denied = audit.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["resource"] == resource.as_str());
    assert!(denied, "the denial is audited: {}", audit.body);
    let created = api
        .call(
            "GET",
            "/v1/audit?action=producer.create",
            Some(&admin),
            None,
        )
        .await;
    let logged = created.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["resource"] == resource.as_str() && e["principal"] == "admin");
    assert!(logged, "creating a producer is audited: {}", created.body);

    // Idempotency-Key: the same key answers the original offsets; another user's key is its own.
    let body = json!({"records": [{"value": "keyed-1"}, {"value": "keyed-2"}]});
    let original = produce_with_key(&api, &admin, "order-7", &body).await;
    assert_eq!(original.status, 200, "{}", original.body);
    let partition = original.body["offsets"][0]["partition"]
        .as_u64()
        .expect("partition") as u32;
    assert_eq!(original.body["offsets"][1]["partition"], partition);
    let retried = produce_with_key(&api, &admin, "order-7", &body).await;
    assert_eq!(
        retried.body, original.body,
        "a retry with the key is not written again"
    );
    assert_eq!(
        values(&api, &admin, partition).await,
        ["keyed-1", "keyed-2"]
    );
    let other = produce_with_key(&api, &bob, "order-7", &body).await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert_ne!(
        other.body, original.body,
        "another user's key is another producer"
    );

    malformed_fields_write_nothing(&api, &admin, &producer).await;
}

async fn malformed_fields_write_nothing(api: &RawApi, admin: &str, producer: &str) {
    let before = high_watermarks(api, admin).await;
    let one = records(&[("bad", 0)]);
    let two = records(&[("bad", 0), ("bad", 1)]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no sequence",
            json!({"records": one, "producer_id": producer}),
            "needs sequence",
        ),
        (
            "sequence alone",
            json!({"records": one, "sequence": 0}),
            "need a producer_id",
        ),
        (
            "both",
            json!({"records": one, "producer_id": producer, "sequence": 0, "sequences": {"0": 0}}),
            "not both",
        ),
        (
            "short id",
            json!({"records": one, "producer_id": "abc", "sequence": 0}),
            "32 hexadecimal",
        ),
        (
            "negative",
            json!({"records": one, "producer_id": producer, "sequence": -1}),
            "",
        ),
        (
            "text sequence",
            json!({"records": one, "producer_id": producer, "sequence": "0"}),
            "",
        ),
        (
            "one sequence, two partitions",
            json!({"records": two, "producer_id": producer, "sequence": 0}),
            "sequences",
        ),
        (
            "missing entry",
            json!({"records": two, "producer_id": producer, "sequences": {"0": 0}}),
            "no entry for partition 1",
        ),
        (
            "surplus entry",
            json!({"records": one, "producer_id": producer, "sequences": {"0": 0, "2": 0}}),
            "names partition 2",
        ),
        (
            "not a partition",
            json!({"records": one, "producer_id": producer, "sequences": {"zero": 0}}),
            "not a partition number",
        ),
    ];
    for (what, body, detail) in cases {
        produce(api, admin, &body)
            .await
            .assert_problem(400, detail, what);
    }
    let plain = json!({"records": one});
    for (what, key) in [
        ("empty key", String::new()),
        ("key with a space", "a b".to_string()),
        ("long key", "k".repeat(129)),
    ] {
        produce_with_key(api, admin, &key, &plain)
            .await
            .assert_problem(400, "Idempotency-Key", what);
    }
    let both = json!({"records": one, "producer_id": producer, "sequence": 0});
    produce_with_key(api, admin, "k", &both)
        .await
        .assert_problem(400, "cannot be combined", "key and producer id");
    assert_eq!(
        high_watermarks(api, admin).await,
        before,
        "a refused produce writes nothing"
    );
}

/// Keys remembered per partition (`partition::dedup::KEYS_PER_PARTITION_MAX`).
const KEYS_PER_PARTITION_MAX: usize = 1_000;

/// A user who writes with more fresh keys than one partition remembers evicts only its own:
/// another user's key still answers its original offsets afterwards. The flooder's own first key
/// is forgotten (written again), which shows the table really overflowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_flood_of_keys_does_not_evict_another_users_key() {
    let (_broker, api, admin) = setup().await;
    let user = json!({"username": "mallory", "password": "mallory-password-1"});
    let reply = api
        .call("POST", "/v1/users", Some(&admin), Some(&user))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let grant = json!({"principal": "mallory", "resource": "topic", "pattern": "any",
                       "operation": "write", "effect": "allow"});
    let reply = api
        .call("POST", "/v1/acls", Some(&admin), Some(&grant))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let mallory = api.token("mallory", "mallory-password-1").await;

    let body = json!({"records": records(&[("admin's", 0)])});
    let original = produce_with_key(&api, &admin, "admin-key", &body).await;
    assert_eq!(original.status, 200, "{}", original.body);

    let flood = json!({"records": records(&[("flood", 0)])});
    let keys: Vec<String> = (0..=KEYS_PER_PARTITION_MAX)
        .map(|n| format!("flood-{n}"))
        .collect();
    // The first key alone, so it is the flooder's oldest; the rest 16 at a time.
    let first = produce_with_key(&api, &mallory, &keys[0], &flood).await;
    assert_eq!(first.status, 200, "{}", first.body);
    for chunk in keys[1..].chunks(16) {
        let replies = futures_util::future::join_all(
            chunk
                .iter()
                .map(|key| produce_with_key(&api, &mallory, key, &flood)),
        )
        .await;
        for reply in replies {
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
    }
    let before = high_watermarks(&api, &admin).await[0];
    let retried = produce_with_key(&api, &admin, "admin-key", &body).await;
    assert_eq!(
        retried.body, original.body,
        "the admin's key survives the flood"
    );
    assert_eq!(high_watermarks(&api, &admin).await[0], before);
    let again = produce_with_key(&api, &mallory, &keys[0], &flood).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        high_watermarks(&api, &admin).await[0],
        before + 1,
        "the flooder's oldest key was forgotten, so the table did overflow"
    );
}
