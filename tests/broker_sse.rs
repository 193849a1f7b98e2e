//! Streaming consume over Server-Sent Events against real broker processes over HTTPS: records
//! arrive in order as they commit, a resumed stream has no gap and no repeat, refusals come as
//! problem+json before the stream starts, the per-broker stream bound frees its slot when a
//! client goes away, and a broker that does not lead the partition serves the stream too.

mod common;
#[path = "broker_sse/support.rs"]
mod support;

use std::time::Duration;

use common::cluster::TestCluster;
use common::{BrokerProcess, RawApi};
use palisade::client::sse::{EventParser, StreamEvent, StreamFrom, StreamedRecord};
use palisade::client::ClientError;
use palisade::wire::CreateUser;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_produced_after_the_stream_opened_arrive_in_order() {
    let broker = BrokerProcess::start_with(&[], FAST_KEEPALIVE).await;
    let admin = broker.admin().await;
    admin.create_topic(&topic("live", 1)).await.expect("topic");
    produce(&admin, "live", 0..5).await;

    let url = format!("{}/v1/topics/live{MESSAGES}?offset=latest", broker.url);
    let token = admin.token().expect("token");
    let mut stream = RawStream::open(&url, &broker.ca, token).await;
    assert_eq!(stream.header("content-type"), "text/event-stream");
    assert_eq!(stream.header("cache-control"), "no-cache");
    assert_eq!(stream.header("palisade-leader"), "1");
    // Silence is filled with keep-alive comments.
    stream
        .read_until("keep-alive", |text| text.contains(": keep-alive\n"))
        .await;

    for batch in 0..3 {
        produce(&admin, "live", 5 + batch * 10..15 + batch * 10).await;
    }
    stream
        .read_until("offset 34", |text| text.contains("id: 34\n"))
        .await;
    let mut parser = EventParser::default();
    let events = parser.feed(stream.text.as_bytes()).expect("parse");
    let mut offsets = Vec::new();
    for event in &events {
        assert_eq!(event.event, "record", "{event:?}");
        let record: StreamedRecord = serde_json::from_str(&event.data).expect("record JSON");
        assert_eq!(event.id, Some(record.record.offset.to_string()));
        offsets.extend(offsets_and_values(&[record], "live"));
    }
    // Records from before the stream opened (offsets 0..5) are not sent with offset=latest.
    check_no_gap_no_repeat(&offsets, 5, 35).expect("in order, no gap, no repeat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_stream_continues_after_last_event_id_with_no_gap_and_no_repeat() {
    let broker = BrokerProcess::start_with(&[], FAST_KEEPALIVE).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("resume", 1))
        .await
        .expect("topic");
    let mut stream = admin
        .stream("resume", 0, StreamFrom::Earliest)
        .await
        .expect("open");
    produce(&admin, "resume", 0..10).await;
    produce(&admin, "resume", 10..20).await;
    let first = read_records(&mut stream, 12).await;
    // Disconnect in the middle of a batch, then more records commit while nobody listens.
    drop(stream);
    produce(&admin, "resume", 20..30).await;
    let last = first.last().expect("records").record.offset;
    let mut resumed = admin
        .stream("resume", 0, StreamFrom::After(last))
        .await
        .expect("reopen");
    let second = read_records(&mut resumed, 18).await;
    let mut offsets = offsets_and_values(&first, "resume");
    offsets.extend(offsets_and_values(&second, "resume"));
    check_no_gap_no_repeat(&offsets, 0, 30).expect("resume with Last-Event-ID");

    // The checker catches a client that resumes at the last id instead of after it ...
    let mut wrong = admin
        .stream("resume", 0, StreamFrom::Offset(last))
        .await
        .expect("reopen at the last id");
    let mut broken = offsets_and_values(&first, "resume");
    broken.extend(offsets_and_values(
        &read_records(&mut wrong, 18).await,
        "resume",
    ));
    let error = check_no_gap_no_repeat(&broken, 0, 30).expect_err("a repeat must be caught");
    assert!(error.starts_with("repeat: offset 11"), "{error}");
    // ... one that skips a record, and one that stops short.
    let mut skipped = offsets.clone();
    skipped.remove(15);
    let error = check_no_gap_no_repeat(&skipped, 0, 30).expect_err("a gap must be caught");
    assert!(error.starts_with("gap: offsets 15..16"), "{error}");
    let error = check_no_gap_no_repeat(&offsets[..29], 0, 30).expect_err("a short read");
    assert!(error.contains("up to 29"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_problems_before_the_stream_starts() {
    let broker = BrokerProcess::start_with(&[], FAST_KEEPALIVE).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("guarded", 1))
        .await
        .expect("topic");
    produce(&admin, "guarded", 0..5).await;
    let user = CreateUser {
        username: "nobody".into(),
        password: "password-of-nobody".into(),
        superuser: false,
    };
    admin.create_user(&user).await.expect("user");
    let api = RawApi::new(&broker);
    let admin_token = admin.token().expect("token").to_string();
    let nobody = api.token("nobody", "password-of-nobody").await;
    let admin = Some(admin_token.as_str());
    let guarded = format!("/v1/topics/guarded{MESSAGES}");
    // (token, path suffix, Last-Event-ID, status, part of the detail, what is wrong)
    let cases = [
        (None, "", None, 401, "bearer token", "no token"),
        (
            Some(nobody.as_str()),
            "",
            None,
            403,
            "may not read",
            "no ACL",
        ),
        (admin, "", Some("abc"), 400, "Last-Event-ID", "bad id"),
        (admin, "", Some("-1"), 400, "Last-Event-ID", "negative id"),
        (admin, "?offset=soon", None, 400, "latest", "bad offset"),
        (admin, "?wait_ms=5", None, 400, "wait_ms", "unknown key"),
        (admin, "?offset=6", None, 416, "0..5", "past the end"),
        (admin, "", Some("5"), 416, "offset 6", "id past the end"),
    ];
    for (token, suffix, last_event_id, status, detail, context) in cases {
        let path = format!("{guarded}{suffix}");
        let reply = stream_request(&api, &path, token, last_event_id).await;
        reply.assert_problem(status, detail, context);
    }
    let absent = format!("/v1/topics/absent{MESSAGES}");
    let reply = stream_request(&api, &absent, admin, None).await;
    reply.assert_problem(404, "does not exist", "unknown topic");
    // Without the Accept header the same route is the JSON fetch.
    let json = api.call("GET", &guarded, admin, None).await;
    assert_eq!(json.status, 200);
    assert_eq!(json.body["records"].as_array().map(Vec::len), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_topic_ends_the_stream_with_an_error_event() {
    let broker = BrokerProcess::start_with(&[], FAST_KEEPALIVE).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("doomed", 1))
        .await
        .expect("topic");
    produce(&admin, "doomed", 0..3).await;
    let mut stream = admin
        .stream("doomed", 0, StreamFrom::Earliest)
        .await
        .expect("open");
    read_records(&mut stream, 3).await;
    admin.delete_topic("doomed").await.expect("delete");
    let deadline = tokio::time::Instant::now() + WAIT;
    let event = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("an event before the deadline")
        .expect("readable");
    match event {
        Some(StreamEvent::Error(error)) => {
            assert_eq!(error.status(), Some(404), "{error}");
        }
        other => panic!("expected an error event, got {other:?}"),
    }
    let end = tokio::time::timeout_at(deadline, stream.next()).await;
    assert!(
        matches!(end, Ok(Ok(None))),
        "the stream ends after the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_get_429_and_a_disconnect_frees_a_slot() {
    let config = "\n[limits]\nstreams_max = 2\nstream_keepalive_ms = 300\n";
    let broker = BrokerProcess::start_with(&[], config).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("bounded", 1))
        .await
        .expect("topic");
    let first = admin
        .stream("bounded", 0, StreamFrom::Earliest)
        .await
        .expect("first stream");
    let mut second = admin
        .stream("bounded", 0, StreamFrom::Earliest)
        .await
        .expect("second stream");
    let third = admin.stream("bounded", 0, StreamFrom::Earliest).await;
    assert!(
        matches!(&third, Err(ClientError::Api { status: 429, .. })),
        "{:?}",
        third.err()
    );
    let api = RawApi::new(&broker);
    let headers = [
        ("accept".to_string(), "text/event-stream".to_string()),
        (
            "authorization".to_string(),
            format!("Bearer {}", admin.token().expect("token")),
        ),
    ];
    let refused = api
        .send(
            "GET",
            &format!("/v1/topics/bounded{MESSAGES}"),
            &headers,
            None,
        )
        .await;
    refused.assert_problem(429, "limits.streams_max", "third stream");
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    assert_eq!(
        open_streams_metric(&broker).await,
        "palisade_open_streams 2"
    );

    // The client goes away without a word; the broker notices at its next write.
    let dropped_at = tokio::time::Instant::now();
    drop(first);
    let deadline = dropped_at + WAIT;
    let mut replacement = loop {
        match admin.stream("bounded", 0, StreamFrom::Earliest).await {
            Ok(stream) => break stream,
            Err(ClientError::Api { status: 429, .. }) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot of a disconnected stream was never freed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    };
    println!(
        "slot freed {} ms after the client disconnected",
        dropped_at.elapsed().as_millis()
    );
    // Both remaining streams still work.
    produce(&admin, "bounded", 0..4).await;
    let offsets = offsets_and_values(&read_records(&mut second, 4).await, "bounded");
    check_no_gap_no_repeat(&offsets, 0, 4).expect("second stream");
    let offsets = offsets_and_values(&read_records(&mut replacement, 4).await, "bounded");
    check_no_gap_no_repeat(&offsets, 0, 4).expect("replacement stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_does_not_lead_the_partition_serves_the_stream() {
    let cluster = TestCluster::start_with(3, FAST_KEEPALIVE).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&topic("spread", 3))
        .await
        .expect("topic");
    // Leadership may still move (the balancer prefers the first replica): open on a broker the
    // leader header shows is not the leader.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut stream, serving, leader) = loop {
        let description = admin.describe_topic("spread").await.expect("describe");
        if let Some(leader) = description.partitions[0].leader {
            let other = [1, 2, 3].into_iter().find(|id| *id != leader);
            let other = other.expect("a non-leader");
            let url = format!("{}/v1/topics/spread{MESSAGES}", cluster.node(other).url);
            let client = cluster.admin(other).await;
            let stream = RawStream::open(&url, &cluster.ca, client.token().expect("token")).await;
            let named: u64 = stream.header("palisade-leader").parse().expect("leader id");
            if named != other {
                break (stream, other, named);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no stable leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("stream served by broker {serving}, partition led by broker {leader}");

    let producer = cluster.admin(leader).await;
    for batch in 0..4 {
        produce(&producer, "spread", batch * 25..(batch + 1) * 25).await;
    }
    stream
        .read_until("offset 99", |text| text.contains("id: 99\n"))
        .await;
    let mut parser = EventParser::default();
    let mut offsets = Vec::new();
    for event in parser.feed(stream.text.as_bytes()).expect("parse") {
        let record: StreamedRecord = serde_json::from_str(&event.data).expect("record JSON");
        offsets.extend(offsets_and_values(&[record], "spread"));
    }
    check_no_gap_no_repeat(&offsets, 0, 100).expect("through a non-leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_when_its_acl_is_removed_or_its_token_revoked() {
    let broker = BrokerProcess::start_with(&[], FAST_KEEPALIVE).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("watched", 1))
        .await
        .expect("topic");
    produce(&admin, "watched", 0..2).await;
    let user = CreateUser {
        username: "reader".into(),
        password: "password-of-reader".into(),
        superuser: false,
    };
    admin.create_user(&user).await.expect("user");
    let api = RawApi::new(&broker);
    let admin_token = admin.token().expect("token").to_string();
    let grant = serde_json::json!({"principal": "reader", "resource": "topic",
        "pattern": {"literal": "watched"}, "operation": "read", "effect": "allow"});
    let granted = api
        .call("POST", "/v1/acls", Some(&admin_token), Some(&grant))
        .await;
    assert_eq!(granted.status, 201, "{}", granted.body);

    // The ACL goes away while the stream is open: the next read is denied.
    let reader = broker.login("reader", "password-of-reader").await;
    let mut stream = reader
        .stream("watched", 0, StreamFrom::Earliest)
        .await
        .expect("open");
    read_records(&mut stream, 2).await;
    let acl = format!("/v1/acls/{}", granted.body["id"]);
    let deleted = api.call("DELETE", &acl, Some(&admin_token), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    expect_error_then_end(&mut stream, 403, "ACL removed").await;

    // The token is revoked while the stream is open: the next read is unauthenticated.
    let regranted = api
        .call("POST", "/v1/acls", Some(&admin_token), Some(&grant))
        .await;
    assert_eq!(regranted.status, 201, "{}", regranted.body);
    let reader = broker.login("reader", "password-of-reader").await;
    let mut stream = reader
        .stream("watched", 0, StreamFrom::Earliest)
        .await
        .expect("open again");
    read_records(&mut stream, 2).await;
    reader.revoke().await.expect("revoke");
    expect_error_then_end(&mut stream, 401, "token revoked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_follow_prints_records_as_they_commit() {
    let broker = BrokerProcess::start_with(&[], FAST_KEEPALIVE).await;
    let admin = broker.admin().await;
    admin.create_topic(&topic("tail", 1)).await.expect("topic");
    produce(&admin, "tail", 0..10).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["consume", "tail", "--partition", "0", "--follow"])
        .env("PALISADE_URL", &broker.url)
        .env("PALISADE_CA_CERT", &broker.ca)
        .env("PALISADE_TOKEN", admin.token().expect("token"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn consume");
    let mut lines = line_reader(child.stdout.take().expect("stdout"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut offsets = Vec::new();
    while offsets.len() < 20 {
        if offsets.len() == 10 {
            produce(&admin, "tail", 10..20).await;
        }
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} lines in time", offsets.len()))
            .expect("consume is still running");
        let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let offset = record["offset"].as_u64().expect("offset");
        assert_eq!(record["partition"], 0, "{line}");
        assert_eq!(record["value"], format!("v{offset}"), "{line}");
        offsets.push(offset);
    }
    let _ = child.kill();
    let _ = child.wait();
    check_no_gap_no_repeat(&offsets, 0, 20).expect("consume --follow output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_with_open_streams_shuts_down_cleanly() {
    let mut broker = BrokerProcess::start_with(&[], FAST_KEEPALIVE).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("closing", 1))
        .await
        .expect("topic");
    produce(&admin, "closing", 0..3).await;
    let mut stream = admin
        .stream("closing", 0, StreamFrom::Earliest)
        .await
        .expect("open");
    read_records(&mut stream, 3).await;
    let started = std::time::Instant::now();
    let stopping = tokio::task::spawn_blocking(move || {
        let status = broker.terminate();
        (status, broker)
    });
    // The stream ends with the broker (the client resumes elsewhere with Last-Event-ID); it
    // neither delivers more records nor keeps the broker alive. Depending on which stops first,
    // the connection or the partition, the end is a closed stream or an error event (503).
    let end = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("the stream ends with the broker");
    assert!(
        !matches!(end, Ok(Some(StreamEvent::Record(_)))),
        "no record after the shutdown began: {end:?}"
    );
    if let Ok(Some(StreamEvent::Error(error))) = &end {
        assert_eq!(error.status(), Some(503), "{error}");
        let after = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("the stream ends after its error event");
        assert!(!matches!(after, Ok(Some(_))), "{after:?}");
    }
    let (status, _broker) = stopping.await.expect("terminate");
    assert!(status.success(), "{status}");
    println!(
        "broker with an open stream stopped in {} ms",
        started.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_outlives_the_http_timeouts_and_still_delivers() {
    // Longer than the HTTP server's keep-alive and request-head timeouts (5 s each).
    let config = "\n[limits]\nstream_keepalive_ms = 6000\n";
    let broker = BrokerProcess::start_with(&[], config).await;
    let admin = broker.admin().await;
    admin.create_topic(&topic("quiet", 1)).await.expect("topic");
    let url = format!("{}/v1/topics/quiet{MESSAGES}", broker.url);
    let mut stream = RawStream::open(&url, &broker.ca, admin.token().expect("token")).await;
    let opened = std::time::Instant::now();
    stream
        .read_until("keep-alive", |text| text.contains(": keep-alive\n"))
        .await;
    let silence = opened.elapsed();
    assert!(
        silence >= Duration::from_millis(5_900),
        "a keep-alive after only {silence:?} of silence"
    );
    produce(&admin, "quiet", 0..1).await;
    stream
        .read_until("offset 0", |text| text.contains("id: 0\n"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_reachable_leader_ends_with_a_503_error_event() {
    let config = format!("forward_timeout_ms = 2000\n{FAST_KEEPALIVE}");
    let mut cluster = TestCluster::start_with(3, &config).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&topic("stranded", 3))
        .await
        .expect("topic");
    produce(&admin, "stranded", 0..3).await;
    let mut stream = admin
        .stream("stranded", 0, StreamFrom::Earliest)
        .await
        .expect("open");
    read_records(&mut stream, 3).await;
    // Without brokers 2 and 3 the partition has no quorum, so no leader serves it.
    cluster.kill(2);
    cluster.kill(3);
    expect_error_then_end(&mut stream, 503, "no quorum").await;
}
