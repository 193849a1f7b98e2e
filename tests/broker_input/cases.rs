//! Bad requests for the input test: each with the exact status it must get and a fragment of the
//! problem detail that names what is wrong.

use serde_json::{json, Value};

/// Limits the test broker runs with (appended to its `[http]` section).
pub const LIMITS: &str =
    "records_per_batch_max = 5\nrecord_bytes_max = 2048\nbody_bytes_max = 65536\n";
pub const BODY_BYTES_MAX: usize = 65_536;
pub const TOPIC: &str = "input";
pub const PRODUCE: &str = "/v1/topics/input/messages";

pub struct Case {
    pub what: String,
    pub method: &'static str,
    pub path: String,
    /// `None` sends no Content-Type header.
    pub content_type: Option<&'static str>,
    pub body: Option<Vec<u8>>,
    pub status: u16,
    pub detail: String,
}

fn case(
    what: &str,
    method: &'static str,
    path: &str,
    body: Option<Vec<u8>>,
    status: u16,
    detail: &str,
) -> Case {
    let content_type = body.as_ref().map(|_| "application/json");
    let (what, path, detail) = (what.to_string(), path.to_string(), detail.to_string());
    Case {
        what,
        method,
        path,
        content_type,
        body,
        status,
        detail,
    }
}

fn text(body: &str) -> Option<Vec<u8>> {
    Some(body.as_bytes().to_vec())
}

fn value(body: Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&body).expect("JSON"))
}

fn produce(what: &str, body: &str, status: u16, detail: &str) -> Case {
    case(what, "POST", PRODUCE, text(body), status, detail)
}

fn records(list: Vec<Value>) -> Option<Vec<u8>> {
    value(json!({ "records": list }))
}

/// Produce bodies that are not JSON, have the wrong types or unknown fields, or break a record rule.
pub fn produce_shape_cases() -> Vec<Case> {
    vec![
        produce(
            "malformed JSON",
            r#"{"records": ["#,
            400,
            "invalid JSON body",
        ),
        produce("not JSON", "hello", 400, "invalid JSON body"),
        produce(
            "records is a string",
            r#"{"records": "x"}"#,
            400,
            "invalid type",
        ),
        produce(
            "value is a number",
            r#"{"records": [{"value": 5}]}"#,
            400,
            "invalid type",
        ),
        produce(
            "partition is a string",
            r#"{"records": [{"value": "a", "partition": "1"}]}"#,
            400,
            "invalid type",
        ),
        produce(
            "partition is negative",
            r#"{"records": [{"value": "a", "partition": -1}]}"#,
            400,
            "invalid value",
        ),
        produce(
            "headers is a list",
            r#"{"records": [{"value": "a", "headers": ["h"]}]}"#,
            400,
            "invalid type",
        ),
        produce(
            "header value is a number",
            r#"{"records": [{"value": "a", "headers": {"h": 1}}]}"#,
            400,
            "invalid type",
        ),
        produce(
            "unknown record field",
            r#"{"records": [{"value": "a", "colour": "red"}]}"#,
            400,
            "unknown field `colour`",
        ),
        produce(
            "unknown top-level field",
            r#"{"records": [], "acks": "all"}"#,
            400,
            "unknown field `acks`",
        ),
        produce("records missing", "{}", 400, "missing field `records`"),
        produce(
            "value missing",
            r#"{"records": [{"key": "k"}]}"#,
            400,
            "record 0: value or value_b64 is required",
        ),
        produce(
            "value and value_b64",
            r#"{"records": [{"value": "a", "value_b64": "YQ=="}]}"#,
            400,
            "not both",
        ),
        produce(
            "bad base64",
            r#"{"records": [{"value_b64": "***"}]}"#,
            400,
            "record 0: value_b64 is not valid base64",
        ),
        produce(
            "no records",
            r#"{"records": []}"#,
            400,
            "records must not be empty",
        ),
    ]
}

/// Limits, records that fail after valid ones (nothing may be written), routing and content type.
pub fn produce_limit_cases() -> Vec<Case> {
    let ok = || json!({"value": "fine"});
    let six = (0..6).map(|_| ok()).collect();
    let big = json!({"value": "x".repeat(3000)});
    let huge = records(vec![json!({"value": "y".repeat(BODY_BYTES_MAX + 100)})]);
    let mut wrong_type = case(
        "text/plain body",
        "POST",
        PRODUCE,
        text(r#"{"records": [{"value": "a"}]}"#),
        415,
        "Content-Type must be application/json",
    );
    wrong_type.content_type = Some("text/plain");
    let mut no_type = case(
        "no Content-Type",
        "POST",
        PRODUCE,
        text(r#"{"records": [{"value": "a"}]}"#),
        415,
        "Content-Type must be application/json",
    );
    no_type.content_type = None;
    vec![
        case(
            "too many records",
            "POST",
            PRODUCE,
            records(six),
            413,
            "6 records in one request; at most 5",
        ),
        case(
            "oversized record",
            "POST",
            PRODUCE,
            records(vec![big.clone()]),
            413,
            "record 0 is",
        ),
        case(
            "oversized body",
            "POST",
            PRODUCE,
            huge,
            413,
            &format!("at most {BODY_BYTES_MAX}"),
        ),
        case(
            "bad base64 after valid records",
            "POST",
            PRODUCE,
            records(vec![ok(), ok(), json!({"value_b64": "%%"})]),
            400,
            "record 2: value_b64",
        ),
        case(
            "oversized record after a valid one",
            "POST",
            PRODUCE,
            records(vec![ok(), big]),
            413,
            "record 1 is",
        ),
        case(
            "unknown partition after a valid one",
            "POST",
            PRODUCE,
            records(vec![
                json!({"value": "a", "partition": 0}),
                json!({"value": "b", "partition": 9}),
            ]),
            400,
            "record 1: partition 9 does not exist",
        ),
        case(
            "unknown topic",
            "POST",
            "/v1/topics/nosuch/messages",
            records(vec![ok()]),
            404,
            "topic 'nosuch' does not exist",
        ),
        case(
            "slash in the topic path",
            "POST",
            "/v1/topics/a%2Fb/messages",
            records(vec![ok()]),
            404,
            "does not exist",
        ),
        case(
            "internal topic",
            "POST",
            "/v1/topics/__audit/messages",
            records(vec![ok()]),
            403,
            "internal",
        ),
        wrong_type,
        no_type,
    ]
}

fn fetch(what: &str, path: &str, status: u16, detail: &str) -> Case {
    case(what, "GET", path, None, status, detail)
}

/// Fetches of what does not exist, out of range, or with malformed parameters.
pub fn fetch_cases() -> Vec<Case> {
    let base = "/v1/topics/input/partitions";
    vec![
        fetch(
            "unknown topic",
            "/v1/topics/nosuch/partitions/0/messages",
            404,
            "topic 'nosuch' does not exist",
        ),
        fetch(
            "unknown partition",
            &format!("{base}/9/messages"),
            404,
            "partition 9 does not exist; topic 'input' has 2 partitions",
        ),
        fetch(
            "partition not a number",
            &format!("{base}/x/messages"),
            400,
            "invalid path parameter",
        ),
        fetch(
            "partition negative",
            &format!("{base}/-1/messages"),
            400,
            "invalid path parameter",
        ),
        fetch(
            "offset past the end",
            &format!("{base}/0/messages?offset=1000"),
            416,
            "offset 1000 is out of range",
        ),
        fetch(
            "offset negative",
            &format!("{base}/0/messages?offset=-1"),
            400,
            "invalid query string",
        ),
        fetch(
            "offset not a number",
            &format!("{base}/0/messages?offset=ten"),
            400,
            "invalid query string",
        ),
        fetch(
            "unknown query parameter",
            &format!("{base}/0/messages?ofset=1"),
            400,
            "unknown field `ofset`",
        ),
        fetch(
            "max_messages not a number",
            &format!("{base}/0/messages?max_messages=all"),
            400,
            "invalid query string",
        ),
    ]
}

fn create(what: &str, body: Value, status: u16, detail: &str) -> Case {
    case(what, "POST", "/v1/topics", value(body), status, detail)
}

/// Topic creations with invalid names or settings: none may create anything.
pub fn topic_cases() -> Vec<Case> {
    let long = "t".repeat(250);
    vec![
        create("name '.'", json!({"name": "."}), 400, "reserved"),
        create("name '..'", json!({"name": ".."}), 400, "reserved"),
        create(
            "name with '/'",
            json!({"name": "a/b"}),
            400,
            "'/' at position 1",
        ),
        create(
            "name of 250 characters",
            json!({"name": long}),
            400,
            "250 characters long; at most 249",
        ),
        create("empty name", json!({"name": ""}), 400, "name is empty"),
        create(
            "non-ASCII name",
            json!({"name": "café"}),
            400,
            "'é' at position 3",
        ),
        create(
            "name with a space",
            json!({"name": "a b"}),
            400,
            "' ' at position 1",
        ),
        create(
            "internal name",
            json!({"name": "__mine"}),
            400,
            "internal topics",
        ),
        create("name is a number", json!({"name": 7}), 400, "invalid type"),
        create(
            "zero partitions",
            json!({"name": "zero", "partitions": 0}),
            400,
            "partitions must be between 1 and",
        ),
        create(
            "too many partitions",
            json!({"name": "many", "partitions": 100_000}),
            400,
            "partitions must be between 1 and",
        ),
        create(
            "partitions as text",
            json!({"name": "text", "partitions": "three"}),
            400,
            "invalid type",
        ),
        create(
            "unknown setting",
            json!({"name": "x", "compaction": true}),
            400,
            "unknown field `compaction`",
        ),
        create(
            "existing topic",
            json!({"name": TOPIC, "partitions": 2}),
            409,
            "exists",
        ),
        fetch(
            "describe unknown topic",
            "/v1/topics/nosuch",
            404,
            "topic 'nosuch' does not exist",
        ),
        fetch(
            "describe a 250-character name",
            &format!("/v1/topics/{long}"),
            404,
            "does not exist",
        ),
    ]
}

/// Logins, users and ACLs with malformed input, and a path with no route.
pub fn admin_cases() -> Vec<Case> {
    let acl = |pattern: Value, resource: &str| json!({"principal": "bob", "resource": resource, "pattern": pattern, "operation": "read", "effect": "allow"});
    vec![
        case(
            "malformed login",
            "POST",
            "/v1/auth/token",
            text(r#"{"username": "admin""#),
            400,
            "invalid JSON body",
        ),
        case(
            "login without password",
            "POST",
            "/v1/auth/token",
            value(json!({"username": "admin"})),
            400,
            "missing field `password`",
        ),
        case(
            "user name with '/'",
            "POST",
            "/v1/users",
            value(json!({"username": "a/b", "password": "long-enough"})),
            400,
            "'/' at position 1",
        ),
        case(
            "password too short",
            "POST",
            "/v1/users",
            value(json!({"username": "shorty", "password": "short"})),
            400,
            "password",
        ),
        case(
            "empty ACL prefix",
            "POST",
            "/v1/acls",
            value(acl(json!({"prefix": ""}), "topic")),
            400,
            "prefix pattern must not be empty",
        ),
        case(
            "unknown ACL resource",
            "POST",
            "/v1/acls",
            value(acl(json!("any"), "database")),
            400,
            "unknown variant `database`",
        ),
        case(
            "ACL id not a number",
            "DELETE",
            "/v1/acls/abc",
            None,
            400,
            "invalid path parameter",
        ),
        case(
            "unknown ACL",
            "DELETE",
            "/v1/acls/987654",
            None,
            404,
            "987654",
        ),
        case(
            "no such route",
            "GET",
            "/v1/nothing",
            None,
            404,
            "no route for GET /v1/nothing",
        ),
    ]
}
