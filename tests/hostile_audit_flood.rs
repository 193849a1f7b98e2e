//! An outsider cannot flood the audit log, and cannot silence it either: a burst of refused
//! tokens from one source becomes one event plus one aggregate with the count, while every
//! authenticated denial stays one event (the positive control that the broker does audit one by
//! one where it must). The chain head is published and `palisade audit verify --anchor` finds
//! it; an anchor the log does not hold fails the check.

mod common;

use std::process::Command;

use common::cluster::wait_for;
use common::{BrokerProcess, RawApi, ADMIN_PASSWORD};
use palisade::audit::verify_chain;
use palisade::wire::AuditEvent;
use serde_json::json;

/// Refused requests in the burst.
const BURST: usize = 200;
/// Interval of aggregation in these tests.
const INTERVAL_MS: &str = "500";

fn aggregate_count(event: &AuditEvent) -> u64 {
    let detail = event.detail.as_deref().unwrap_or("");
    detail
        .strip_prefix("count=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bad_tokens_is_one_event_and_one_aggregate_with_its_count() {
    let env = [("PALISADE_AUTH_FAILURE_AUDIT_INTERVAL_MS", INTERVAL_MS)];
    let broker = BrokerProcess::start_with(&env, "").await;
    let api = RawApi::new(&broker);
    let admin = broker.admin().await;
    let before = admin.audit_log().await.expect("audit log").len();

    // Garbage tokens, a missing token and a malformed header: every kind of 401.
    let garbage = "x".repeat(4000);
    for index in 0..BURST {
        let reply = match index % 3 {
            0 => api.call("GET", "/v1/topics", Some(&garbage), None).await,
            1 => api.call("GET", "/v1/topics", None, None).await,
            _ => {
                let headers = [("authorization".to_string(), "Basic abc".to_string())];
                api.send("GET", "/v1/topics", &headers, None).await
            }
        };
        assert_eq!(reply.status, 401, "request {index}: {}", reply.body);
    }

    let events = wait_for("the aggregate of the refused tokens", 30, || async {
        let events = admin.audit_log().await.expect("audit log");
        let accounted: u64 = events[before..]
            .iter()
            .filter(|event| event.action == "auth.token_rejected")
            .map(|event| {
                if event.resource == "aggregate" {
                    aggregate_count(event)
                } else {
                    1
                }
            })
            .sum();
        (accounted == BURST as u64).then_some(events)
    })
    .await;
    verify_chain(&events).expect("the chain verifies");
    let rejected: Vec<&AuditEvent> = events[before..]
        .iter()
        .filter(|event| event.action == "auth.token_rejected")
        .collect();
    assert!(
        rejected.len() <= 6,
        "{BURST} refusals from one source took {} events",
        rejected.len()
    );
    assert!(
        rejected.iter().any(|event| event.resource != "aggregate"),
        "the first refusal is its own event"
    );
    for event in &rejected {
        let stored = serde_json::to_vec(event).expect("JSON").len();
        assert!(stored < 4096, "an event stays small: {stored} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_denials_are_each_one_event() {
    let env = [("PALISADE_AUTH_FAILURE_AUDIT_INTERVAL_MS", INTERVAL_MS)];
    let broker = BrokerProcess::start_with(&env, "").await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    let body = json!({"username": "frank", "password": "frank-password-1"});
    let created = api
        .call("POST", "/v1/users", Some(&admin), Some(&body))
        .await;
    assert_eq!(created.status, 201);
    let frank = api.token("frank", "frank-password-1").await;
    for _ in 0..5 {
        let reply = api.call("GET", "/v1/users", Some(&frank), None).await;
        assert_eq!(reply.status, 403);
    }
    // Writes to the internal audit topic are refused, and audited too.
    let records = json!({"records": [{"value": "forged"}]});
    let reply = api
        .call(
            "POST",
            "/v1/topics/__audit/messages",
            Some(&frank),
            Some(&records),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);

    let events = broker.admin().await.audit_log().await.expect("audit log");
    let denials = events
        .iter()
        .filter(|e| e.principal.as_deref() == Some("frank") && e.status == 403)
        .count();
    assert_eq!(denials, 6, "each authenticated denial is its own event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_head_anchors_verify_and_a_foreign_anchor_fails() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    let head = admin.audit_head().await.expect("audit head");
    let offset = head.offset.expect("the bootstrap wrote events");
    assert_eq!(head.hash.len(), 64);
    let events = admin.audit_log().await.expect("audit log");
    assert_eq!(
        events.get(offset as usize).map(|e| e.hash.as_str()),
        Some(head.hash.as_str()),
        "the head is the event at its offset"
    );

    // More events after the anchor: the anchor is still found.
    admin.list_users().await.expect("an audited read");
    let verified = admin
        .verify_audit_log(Some(&head.hash))
        .await
        .expect("the anchor is in the log");
    assert_eq!(verified.anchor_offset, Some(offset));

    // The CLI does the same, and fails on an anchor the log does not hold.
    let token = admin.token().expect("token").to_string();
    let run = |anchor: &str| {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["audit", "verify", "--anchor", anchor])
            .args(["--url", &broker.url, "--ca-cert"])
            .arg(broker.ca_path())
            .args(["--token", &token])
            .output()
            .expect("run palisade")
    };
    let found = run(&head.hash);
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    assert!(String::from_utf8_lossy(&found.stdout).contains("anchor found"));
    let foreign = run(&"ab".repeat(32));
    assert!(
        !foreign.status.success(),
        "a foreign anchor fails the check"
    );
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("not in the audit log"),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
}

/// A broker that stops writes the failures it counted and had not written yet: with an
/// interval far longer than the test, the count reaches the log only through the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_broker_writes_its_pending_counts() {
    const REFUSED: u64 = 12;
    let env = [("PALISADE_AUTH_FAILURE_AUDIT_INTERVAL_MS", "3600000")];
    let mut broker = BrokerProcess::start_with(&env, "").await;
    let api = RawApi::new(&broker);
    let before = broker.admin().await.audit_log().await.expect("audit log");
    for index in 0..REFUSED {
        let reply = api.call("GET", "/v1/topics", Some("garbage"), None).await;
        assert_eq!(reply.status, 401, "request {index}: {}", reply.body);
    }
    let accounted = |events: &[AuditEvent]| -> u64 {
        events[before.len()..]
            .iter()
            .filter(|event| event.action == "auth.token_rejected")
            .map(|event| {
                if event.resource == "aggregate" {
                    aggregate_count(event)
                } else {
                    1
                }
            })
            .sum()
    };
    let running = broker.admin().await.audit_log().await.expect("audit log");
    assert_eq!(
        accounted(&running),
        1,
        "while running, only the first refusal is written"
    );
    assert!(broker.terminate().success(), "clean stop: {}", broker.log());
    broker.restart().await;
    let after = broker.admin().await.audit_log().await.expect("audit log");
    verify_chain(&after).expect("the chain verifies");
    assert_eq!(accounted(&after), REFUSED, "every refusal is accounted for");
}
