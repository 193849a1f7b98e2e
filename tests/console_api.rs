//! What the web console needs from the API, on a real broker over HTTPS: the console's files
//! are public with a strict Content-Security-Policy; a stream ticket opens one event stream of
//! its partition once, without an Authorization header, and only while the token it stands for
//! is valid; the explain endpoint says why an access is allowed or denied, as `check` decides.
//! (tests/console.rs drives the console itself in Chromium.)

mod common;

use std::time::Duration;

use common::{BrokerProcess, RawApi, RawReply, ADMIN_PASSWORD};
use serde_json::json;

const TOPIC: &str = "tickets";

/// Opens an event stream of partition `partition` with `ticket` and no token. Answers the status
/// and, for a 200, the first `record` event's offset.
async fn stream_with_ticket(
    api: &RawApi,
    partition: u32,
    ticket: &str,
    accept: &str,
) -> (u16, Option<u64>) {
    let url = format!(
        "{}/v1/topics/{TOPIC}/partitions/{partition}/messages?offset=0&ticket={ticket}",
        api.url
    );
    let mut response = api
        .http
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .expect("request reaches the broker");
    let status = response.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.expect("stream") {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(at) = text.find("event: record") {
                let id = text[..at].rsplit("id: ").next().unwrap_or_default();
                return id.trim().parse().ok();
            }
        }
        None
    };
    let first = tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("a record event within 20 s");
    (status, first)
}

async fn ticket(api: &RawApi, token: &str, partition: u32) -> RawReply {
    let body = json!({"topic": TOPIC, "partition": partition});
    api.call("POST", "/v1/stream-tickets", Some(token), Some(&body))
        .await
}

async fn explain(api: &RawApi, token: &str, principal: &str) -> RawReply {
    let path = format!(
        "/v1/acls/explain?principal={principal}&resource_type=topic&resource={TOPIC}&operation=read"
    );
    api.call("GET", &path, Some(token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_files_are_public_and_allow_no_inline_script_or_framing() {
    let broker = BrokerProcess::start().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let response = RawApi::new(&broker)
            .http
            .get(format!("{}{path}", broker.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path} needs no token");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "style-src 'self';",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: {csp:?} lacks {directive:?}"
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
    let api = RawApi::new(&broker);
    api.call("GET", "/console/other.js", None, None)
        .await
        .assert_problem(401, "token", "only the console's own files are public");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ticket_opens_one_stream_of_its_partition_once() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    let topic = json!({"name": TOPIC, "partitions": 2, "replication_factor": 1});
    let created = api
        .call("POST", "/v1/topics", Some(&admin), Some(&topic))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let records =
        json!({"records": [{"value": "a", "partition": 0}, {"value": "b", "partition": 1}]});
    let path = format!("/v1/topics/{TOPIC}/messages");
    let produced = api.call("POST", &path, Some(&admin), Some(&records)).await;
    assert_eq!(produced.status, 200, "{}", produced.body);

    let issued = ticket(&api, &admin, 0).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    assert_eq!(issued.body["expires_in_ms"], 30_000);
    let first = issued.body["ticket"].as_str().expect("ticket").to_string();
    assert_eq!(
        stream_with_ticket(&api, 0, &first, "text/event-stream").await,
        (200, Some(0)),
        "the ticket opens its partition's stream"
    );
    assert_eq!(
        stream_with_ticket(&api, 0, &first, "text/event-stream")
            .await
            .0,
        401,
        "a ticket is used once"
    );
    let second = ticket(&api, &admin, 0).await.body["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    assert_eq!(
        stream_with_ticket(&api, 1, &second, "text/event-stream")
            .await
            .0,
        401,
        "a ticket opens only its own partition"
    );
    assert_eq!(
        stream_with_ticket(&api, 0, &second, "text/event-stream")
            .await
            .0,
        401,
        "a refused redemption used the ticket up"
    );
    let third = ticket(&api, &admin, 0).await.body["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    assert_eq!(
        stream_with_ticket(&api, 0, &third, "application/json")
            .await
            .0,
        401,
        "a ticket is no credential for the JSON fetch"
    );
    ticket(&api, &admin, 7)
        .await
        .assert_problem(404, "partition 7", "no such partition");
    let bad = json!({"topic": TOPIC, "partition": 0, "extra": 1});
    api.call("POST", "/v1/stream-tickets", Some(&admin), Some(&bad))
        .await
        .assert_problem(400, "extra", "unknown field");

    // A user who may not read the topic gets no ticket, and that denial is audited.
    let user = json!({"username": "reader", "password": "reader-password"});
    let made = api
        .call("POST", "/v1/users", Some(&admin), Some(&user))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let reader = api.token("reader", "reader-password").await;
    ticket(&api, &reader, 0)
        .await
        .assert_problem(403, "no acl allows it", "no read on the topic");

    // A ticket stands for its token: revoked before use, the ticket is refused too.
    let grant = json!({"principal": "reader", "resource": "topic",
        "pattern": {"literal": TOPIC}, "operation": "read", "effect": "allow"});
    let granted = api
        .call("POST", "/v1/acls", Some(&admin), Some(&grant))
        .await;
    assert_eq!(granted.status, 201, "{}", granted.body);
    let issued = ticket(&api, &reader, 1).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let revoked = api
        .call("POST", "/v1/auth/revoke", Some(&reader), None)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let pending = issued.body["ticket"].as_str().expect("ticket");
    assert_eq!(
        stream_with_ticket(&api, 1, pending, "text/event-stream")
            .await
            .0,
        401,
        "the revoked token's ticket"
    );

    let audit = api
        .call(
            "GET",
            "/v1/audit?action=stream.ticket&limit=100",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let events = audit.body["events"].as_array().expect("events");
    assert_eq!(
        events.len(),
        4,
        "every ticket issued is audited, and only those: {}",
        audit.body
    );
    assert!(events.iter().all(|e| e["resource"]
        .as_str()
        .unwrap_or_default()
        .starts_with("topic:tickets/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_deciding_rule_deny_wins_and_default_deny() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    let user = json!({"username": "alice", "password": "alice-password"});
    let made = api
        .call("POST", "/v1/users", Some(&admin), Some(&user))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);

    let before = explain(&api, &admin, "alice").await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(before.body["allowed"], false);
    assert_eq!(before.body["decision"], "default_deny");
    assert_eq!(before.body["matched"], json!([]));

    let rule = |effect: &str, pattern: serde_json::Value, principal: &str| {
        json!({"principal": principal, "resource": "topic", "pattern": pattern,
            "operation": "read", "effect": effect})
    };
    let allow = api
        .call(
            "POST",
            "/v1/acls",
            Some(&admin),
            Some(&rule("allow", json!({"prefix": "tick"}), "alice")),
        )
        .await;
    assert_eq!(allow.status, 201, "{}", allow.body);
    // Rules for other operations, resources and principals are not matched.
    for other in [
        json!({"principal": "alice", "resource": "topic", "pattern": "any", "operation": "write", "effect": "deny"}),
        json!({"principal": "bob", "resource": "topic", "pattern": "any", "operation": "read", "effect": "deny"}),
        json!({"principal": "alice", "resource": "group", "pattern": "any", "operation": "read", "effect": "deny"}),
    ] {
        let made = api
            .call("POST", "/v1/acls", Some(&admin), Some(&other))
            .await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let allowed = explain(&api, &admin, "alice").await;
    assert_eq!(allowed.body["allowed"], true, "{}", allowed.body);
    assert_eq!(allowed.body["decision"], "allow");
    assert_eq!(allowed.body["matched"], json!([allow.body]));

    let deny = api
        .call(
            "POST",
            "/v1/acls",
            Some(&admin),
            Some(&rule("deny", json!({"literal": TOPIC}), "*")),
        )
        .await;
    assert_eq!(deny.status, 201, "{}", deny.body);
    let denied = explain(&api, &admin, "alice").await;
    assert_eq!(denied.body["allowed"], false, "{}", denied.body);
    assert_eq!(denied.body["decision"], "deny");
    let deny_id = deny.body["id"].as_u64().expect("id");
    assert!(
        denied.body["reason"]
            .as_str()
            .expect("reason")
            .contains(&format!("denied by ACL {deny_id}")),
        "{}",
        denied.body
    );
    assert_eq!(denied.body["matched"].as_array().expect("matched").len(), 2);

    // What explain says is what the broker does.
    let alice = api.token("alice", "alice-password").await;
    let path = format!("/v1/topics/{TOPIC}/partitions/0/messages");
    let topic = json!({"name": TOPIC, "partitions": 1, "replication_factor": 1});
    let created = api
        .call("POST", "/v1/topics", Some(&admin), Some(&topic))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    api.call("GET", &path, Some(&alice), None)
        .await
        .assert_problem(403, &format!("denied by acl {deny_id}"), "the deny wins");

    let root = explain(&api, &admin, "admin").await;
    assert_eq!(root.body["decision"], "superuser", "{}", root.body);
    assert_eq!(root.body["allowed"], true);
    explain(&api, &admin, "nobody")
        .await
        .assert_problem(404, "nobody", "unknown user");
    explain(&api, &admin, "bad%20name")
        .await
        .assert_problem(400, "principal", "not a user name");
    explain(&api, &alice, "alice").await.assert_problem(
        403,
        "describe",
        "explain needs describe on the cluster",
    );
    api.call(
        "GET",
        "/v1/acls/explain?principal=alice&resource_type=topic&resource=t&operation=fly",
        Some(&admin),
        None,
    )
    .await
    .assert_problem(400, "unknown variant `fly`", "unknown operation");
}
