//! A fetch answered by another broker holds the fetch budget of the broker that forwards it
//! for as long as that broker still holds the records: a client that stops reading keeps the
//! bytes counted on `/metrics` there, and closing it gives them back.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::cluster::{wait_for, TestCluster};
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};
use tokio::io::AsyncWriteExt;

const TOPIC: &str = "far";
const RECORDS: usize = 6;
const VALUE_BYTES: usize = 900 * 1024;
const USED: &str = "palisade_memory_budget_bytes{pool=\"fetch\",kind=\"used\"} ";

async fn fetch_budget_used(cluster: &TestCluster, id: u64) -> Option<f64> {
    let text = common::raw_client(&cluster.ca)
        .get(format!("{}/metrics", cluster.node(id).url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(USED)?.trim().parse().ok())
}

/// Sends a fetch of the whole partition through broker `id` on a connection with a tiny receive
/// buffer, and then reads nothing: the answer cannot leave the broker.
async fn stalled_fetch(
    cluster: &TestCluster,
    id: u64,
    token: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    palisade::transport::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in palisade::transport::tls::load_certs(&cluster.ca).expect("CA") {
        roots.add(cert).expect("CA certificate");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = cluster
        .node(id)
        .url
        .trim_start_matches("https://")
        .to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let tcp = socket
        .connect(address.parse().expect("address"))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let head = format!(
        "GET /v1/topics/{TOPIC}/partitions/0/messages?offset=0 HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.expect("send request");
    tls.flush().await.expect("flush");
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_fetch_holds_the_forwarding_brokers_budget_until_it_is_sent() {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: TOPIC.into(),
            partitions: Some(1),
            replication_factor: Some(1),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let leader = wait_for("a leader", 30, || async {
        let view = admin.cluster().await.ok()?;
        view.partitions
            .iter()
            .find(|p| p.topic == TOPIC)
            .and_then(|p| p.leader)
    })
    .await;
    let forwarder = (1..=3).find(|id| *id != leader).expect("another broker");
    let value = "v".repeat(VALUE_BYTES);
    for _ in 0..RECORDS {
        let batch = ProduceRequest {
            records: vec![ProduceRecord {
                key: None,
                value: Some(value.clone()),
                value_b64: None,
                headers: BTreeMap::new(),
                partition: Some(0),
            }],
        };
        admin.produce(TOPIC, &batch).await.expect("produce");
    }
    assert_eq!(fetch_budget_used(&cluster, forwarder).await, Some(0.0));
    let token = admin.token().expect("token").to_string();
    let stalled = stalled_fetch(&cluster, forwarder, &token).await;
    let held = (RECORDS * VALUE_BYTES) as f64;
    wait_for("the forwarder holding the answer's bytes", 30, || async {
        fetch_budget_used(&cluster, forwarder)
            .await
            .filter(|used| *used >= held)
    })
    .await;
    drop(stalled);
    wait_for("the bytes given back", 30, || async {
        fetch_budget_used(&cluster, forwarder)
            .await
            .filter(|used| *used == 0.0)
    })
    .await;
}
