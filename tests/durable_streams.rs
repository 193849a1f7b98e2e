//! Durable Streams under `/ds`, beyond what the conformance suite checks
//! (`durable_streams_conformance.rs`): authentication and ACLs apply to the prefix, the
//! anonymous principal is off by default and governed by ACLs like any principal (its denials
//! audited), and writers on different brokers of a cluster cannot both pass their checks against
//! the same state: a producer's write sent to every broker at once is written once.

mod common;

use std::collections::BTreeSet;

use common::cluster::TestCluster;
use common::{raw_client, BrokerProcess, RawApi, ADMIN_PASSWORD};

const STREAM: &str = "/ds/v1/stream/orders";

/// Sends a Durable Streams request; returns the status, the headers asked for, and the body.
async fn ds(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http.request(method, url).body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the broker answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

async fn grant(api: &RawApi, token: &str, principal: &str, prefix: &str, operations: &[&str]) {
    for operation in operations {
        let acl = serde_json::json!({
            "principal": principal, "resource": "topic", "pattern": {"prefix": prefix},
            "operation": operation, "effect": "allow",
        });
        let reply = api.call("POST", "/v1/acls", Some(token), Some(&acl)).await;
        assert_eq!(reply.status, 201, "grant {operation}: {}", reply.body);
    }
}

#[tokio::test]
async fn without_the_anonymous_principal_a_stream_needs_a_token() {
    let broker = BrokerProcess::start().await;
    let http = raw_client(&broker.ca);
    let url = format!("{}{STREAM}", broker.url);
    let text = [("content-type", "text/plain")];
    let (status, _, body) = ds(&http, &url, "PUT", None, &text, "a").await;
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = ds(&http, &url, "GET", None, &[], "").await;
    assert_eq!(status, 401);
    let token = RawApi::new(&broker).token("admin", ADMIN_PASSWORD).await;
    let (status, _, body) = ds(&http, &url, "PUT", Some(&token), &text, "a").await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = ds(&http, &url, "GET", Some(&token), &[], "").await;
    assert_eq!((status, body.as_str()), (200, "a"));
    let (status, _, _) = ds(&http, &url, "GET", Some("not-a-token"), &[], "").await;
    assert_eq!(
        status, 401,
        "a bad token is refused, not taken as anonymous"
    );
}

#[tokio::test]
async fn the_anonymous_principal_may_do_only_what_acls_grant_it() {
    let broker = BrokerProcess::start_with(
        &[("PALISADE_DURABLE_STREAMS_ANONYMOUS_PRINCIPAL", "guest")],
        "",
    )
    .await;
    let http = raw_client(&broker.ca);
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    let text = [("content-type", "text/plain")];
    let public = format!("{}/ds/public/feed", broker.url);
    let private = format!("{}/ds/private/feed", broker.url);

    let (status, _, body) = ds(&http, &public, "PUT", None, &text, "x").await;
    assert_eq!(status, 403, "no ACL yet: {body}");
    grant(
        &api,
        &admin,
        "guest",
        "ds.public.",
        &["create", "write", "read"],
    )
    .await;
    let (status, _, body) = ds(&http, &public, "PUT", None, &text, "hello").await;
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = ds(&http, &public, "POST", None, &text, " world").await;
    assert_eq!(status, 204);
    let (status, _, body) = ds(&http, &public, "GET", None, &[], "").await;
    assert_eq!((status, body.as_str()), (200, "hello world"));
    let (status, _, _) = ds(&http, &public, "DELETE", None, &[], "").await;
    assert_eq!(status, 403, "delete was not granted");

    let (status, _, _) = ds(&http, &private, "PUT", Some(&admin), &text, "secret").await;
    assert_eq!(status, 201);
    let (status, _, body) = ds(&http, &private, "GET", None, &[], "").await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("secret"));

    let audit = api
        .call(
            "GET",
            "/v1/audit?principal=guest&decision=deny",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let denied: Vec<String> = audit.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["resource"].as_str().unwrap_or_default().to_string())
        .collect();
    for resource in ["ds.public.feed", "ds.private.feed"] {
        assert!(
            denied.iter().any(|r| r.contains(resource)),
            "the guest's denial on {resource} is audited: {denied:?}"
        );
    }
}

#[tokio::test]
async fn writers_on_different_brokers_never_both_pass_the_same_check() {
    let cluster = TestCluster::start(3).await;
    let http = raw_client(&cluster.ca);
    let api = RawApi {
        http: http.clone(),
        url: cluster.node(1).url.clone(),
    };
    let token = api.token("admin", ADMIN_PASSWORD).await;
    let url = |id: u64| format!("{}{STREAM}", cluster.node(id).url);
    let (status, _, body) = ds(
        &http,
        &url(1),
        "PUT",
        Some(&token),
        &[("content-type", "text/plain")],
        "",
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The same producer write, sent to every broker five times at once: one is written.
    let mut sends = Vec::new();
    for round in 0..15u64 {
        let (http, url, token) = (http.clone(), url(round % 3 + 1), token.clone());
        sends.push(tokio::spawn(async move {
            let headers = [
                ("content-type", "text/plain"),
                ("producer-id", "p1"),
                ("producer-epoch", "0"),
                ("producer-seq", "0"),
            ];
            ds(&http, &url, "POST", Some(&token), &headers, "once|")
                .await
                .0
        }));
    }
    let mut statuses = Vec::new();
    for send in sends {
        statuses.push(send.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "exactly one write is new: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 204),
        "{statuses:?}"
    );

    // Plain appends from every broker at once: each acknowledged one is there once, and each
    // got its own tail.
    let mut sends = Vec::new();
    for n in 0..30u64 {
        let (http, url, token) = (http.clone(), url(n % 3 + 1), token.clone());
        sends.push(tokio::spawn(async move {
            let value = format!("v{n}|");
            let (status, headers, _) = ds(
                &http,
                &url,
                "POST",
                Some(&token),
                &[("content-type", "text/plain")],
                &value,
            )
            .await;
            let tail = headers
                .get("stream-next-offset")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (status, value, tail)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut tails = BTreeSet::new();
    for send in sends {
        let (status, value, tail) = send.await.expect("task");
        if status == 204 {
            acknowledged.push(value);
            assert!(
                tails.insert(tail.expect("a tail")),
                "two appends got one tail"
            );
        } else {
            assert_eq!(status, 503, "only an unavailable answer is allowed");
        }
    }
    assert!(
        acknowledged.len() >= 20,
        "{} of 30 acknowledged",
        acknowledged.len()
    );
    let (status, _, body) = ds(&http, &url(2), "GET", Some(&token), &[], "").await;
    assert_eq!(status, 200);
    let stored: Vec<&str> = body.split('|').filter(|s| !s.is_empty()).collect();
    assert_eq!(
        stored.iter().filter(|s| **s == "once").count(),
        1,
        "{stored:?}"
    );
    for value in &acknowledged {
        let value = value.trim_end_matches('|');
        assert_eq!(
            stored.iter().filter(|s| **s == value).count(),
            1,
            "{value} in {stored:?}"
        );
    }
}
