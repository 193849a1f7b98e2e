//! The memory budgets hold against a real broker over HTTPS: a request body the broker cannot
//! take now is answered 503 `overloaded` with Retry-After, unread and with nothing written, and
//! goes through once the budget is free again; a fetch is cut to what the fetch budget holds and
//! a consumer still reads every record in order. The budget gauges on `/metrics` show the bytes
//! in use.

mod common;

use std::sync::Arc;

use common::cluster::wait_for;
use common::{BrokerProcess, RawApi, ADMIN_PASSWORD};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const KIB: usize = 1024;
const TOPIC: &str = "budgeted";

async fn create_topic(api: &RawApi, admin: &str) {
    let topic = json!({"name": TOPIC, "partitions": 1, "replication_factor": 1});
    let reply = api
        .call("POST", "/v1/topics", Some(admin), Some(&topic))
        .await;
    assert_eq!(reply.status, 201, "create topic: {}", reply.body);
}

async fn high_watermark(api: &RawApi, admin: &str) -> u64 {
    let reply = api
        .call("GET", &format!("/v1/topics/{TOPIC}"), Some(admin), None)
        .await;
    reply.body["partitions"][0]["high_watermark"]
        .as_u64()
        .expect("high_watermark")
}

async fn metric(broker: &BrokerProcess, series: &str) -> f64 {
    let text = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&broker.ca).expect("CA")).expect("PEM"),
        )
        .build()
        .expect("client")
        .get(format!("{}/metrics", broker.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// A TLS connection to the broker that sends a produce's head announcing `length` bytes of
/// body, then only its first byte: the broker reserves the body and waits for the rest.
async fn stalled_produce(
    broker: &BrokerProcess,
    token: &str,
    length: usize,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    palisade::transport::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in palisade::transport::tls::load_certs(&broker.ca).expect("CA") {
        roots.add(cert).expect("CA certificate");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = broker.url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let head = format!(
        "POST /v1/topics/{TOPIC}/messages HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n{{"
    );
    tls.write_all(head.as_bytes()).await.expect("send head");
    tls.flush().await.expect("flush");
    tls
}

fn batch(records: usize, value_bytes: usize) -> Value {
    let value = "v".repeat(value_bytes);
    json!({"records": (0..records).map(|_| json!({"value": value})).collect::<Vec<_>>()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_past_the_budget_is_503_unread_and_goes_through_once_bytes_are_free() {
    let env = [
        ("PALISADE_HTTP_BODY_BYTES_MAX", "1 MiB"),
        ("PALISADE_HTTP_RECORD_BYTES_MAX", "64 KiB"),
        ("PALISADE_LIMITS_BODY_BYTES_IN_FLIGHT_MAX", "1 MiB"),
        ("PALISADE_LIMITS_BUDGET_WAIT_MS", "50"),
    ];
    let broker = BrokerProcess::start_with(&env, "").await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    create_topic(&api, &admin).await;
    let path = format!("/v1/topics/{TOPIC}/messages");
    let body = batch(4, 10 * KIB);

    // Positive control: with the budget free the same produce is written.
    let first = api.call("POST", &path, Some(&admin), Some(&body)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(high_watermark(&api, &admin).await, 4);

    // A body that announces the whole budget and stalls holds it.
    let stalled = stalled_produce(&broker, &admin, 1024 * KIB).await;
    let used = "palisade_memory_budget_bytes{pool=\"body\",kind=\"used\"}";
    wait_for("the stalled body holds the budget", 10, || async {
        (metric(&broker, used).await >= (1024 * KIB) as f64).then_some(())
    })
    .await;
    let refused = api.call("POST", &path, Some(&admin), Some(&body)).await;
    refused.assert_problem(503, "request body budget", "a body past the budget");
    assert_eq!(
        refused.body["type"], "/problems/overloaded",
        "{}",
        refused.body
    );
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert_eq!(
        high_watermark(&api, &admin).await,
        4,
        "a refused body writes nothing"
    );
    // Requests without a body still go through.
    let listed = api.call("GET", "/v1/topics", Some(&admin), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);

    // The stalled client goes away: its bytes come back and the produce is written.
    drop(stalled);
    wait_for("the budget is free again", 10, || async {
        (metric(&broker, used).await == 0.0).then_some(())
    })
    .await;
    let again = api.call("POST", &path, Some(&admin), Some(&body)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(high_watermark(&api, &admin).await, 8);
    assert!(metric(&broker, "palisade_process_resident_bytes").await > 1_000_000.0);
}

/// Fetches from offset 0 to the end; returns the values in order and the size of each answer.
async fn read_all(api: &RawApi, token: &str) -> (Vec<String>, Vec<usize>) {
    let mut offset = 0;
    let mut values = Vec::new();
    let mut answers = Vec::new();
    loop {
        let path =
            format!("/v1/topics/{TOPIC}/partitions/0/messages?offset={offset}&max_bytes=1048576");
        let reply = api.call("GET", &path, Some(token), None).await;
        assert_eq!(reply.status, 200, "fetch: {}", reply.body);
        let records = reply.body["records"].as_array().expect("records").clone();
        answers.push(records.len());
        values.extend(
            records
                .iter()
                .map(|r| r["value"].as_str().expect("text").to_string()),
        );
        offset = reply.body["next_offset"].as_u64().expect("next_offset");
        if offset >= reply.body["high_watermark"].as_u64().expect("hwm") {
            return (values, answers);
        }
        assert!(answers.len() < 100, "the fetches make progress");
    }
}

async fn fill(api: &RawApi, admin: &str) -> Vec<String> {
    let path = format!("/v1/topics/{TOPIC}/messages");
    let values: Vec<String> = (0..10)
        .map(|n| format!("{n:02}{}", "x".repeat(60 * KIB)))
        .collect();
    let body = json!({"records": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()});
    let reply = api.call("POST", &path, Some(admin), Some(&body)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_is_cut_to_the_fetch_budget_and_every_record_is_still_read() {
    // Ten records of 60 KiB; the fetch budget holds two of them.
    let small = [
        ("PALISADE_HTTP_RECORD_BYTES_MAX", "64 KiB"),
        ("PALISADE_LIMITS_FETCH_BYTES_IN_FLIGHT_MAX", "128 KiB"),
    ];
    let broker = BrokerProcess::start_with(&small, "").await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    create_topic(&api, &admin).await;
    let written = fill(&api, &admin).await;
    let (read, answers) = read_all(&api, &admin).await;
    assert_eq!(read, written, "every record, in order");
    assert!(
        answers.iter().all(|count| *count <= 3),
        "no answer holds more than the budget: {answers:?}"
    );
    assert!(answers.len() >= 4, "{answers:?}");
    drop(broker);

    // Control: the default budget answers the same fetch in one go.
    let broker =
        BrokerProcess::start_with(&[("PALISADE_HTTP_RECORD_BYTES_MAX", "64 KiB")], "").await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    create_topic(&api, &admin).await;
    let written = fill(&api, &admin).await;
    let (read, answers) = read_all(&api, &admin).await;
    assert_eq!(read, written);
    assert_eq!(answers, [10], "one answer with every record");
}
