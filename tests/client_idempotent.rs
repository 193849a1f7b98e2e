//! The typed client and the CLI speak idempotent produce: a sequenced batch or an
//! `Idempotency-Key` batch sent twice is written once, and `palisade produce --idempotent`
//! writes each line once.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::BrokerProcess;
use palisade::client::Client;
use palisade::wire::IdempotentProduceRequest;
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};

fn records(values: &[&str]) -> Vec<ProduceRecord> {
    values
        .iter()
        .map(|v| ProduceRecord {
            value: Some(v.to_string()),
            partition: Some(0),
            ..ProduceRecord::default()
        })
        .collect()
}

async fn stored(client: &Client, topic: &str) -> u64 {
    let described = client.describe_topic(topic).await.expect("describe");
    described.partitions.iter().map(|p| p.high_watermark).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_batches_are_written_once_and_the_cli_writes_each_line_once() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    let topic = CreateTopic {
        name: "ledger".into(),
        partitions: Some(1),
        replication_factor: Some(1),
        retention_ms: None,
        retention_bytes: None,
    };
    admin.create_topic(&topic).await.expect("topic");

    let producer_id = admin.create_producer().await.expect("producer id");
    let batch = IdempotentProduceRequest {
        records: records(&["a", "b"]),
        producer_id,
        sequence: Some(0),
        sequences: None,
    };
    let first = admin
        .produce_idempotent("ledger", &batch)
        .await
        .expect("first");
    let again = admin
        .produce_idempotent("ledger", &batch)
        .await
        .expect("again");
    assert_eq!(first, again, "a repeat answers the original offsets");
    assert_eq!(stored(&admin, "ledger").await, 2);

    let keyed = ProduceRequest {
        records: records(&["c"]),
    };
    let first = admin
        .produce_with_key("ledger", &keyed, "order-17")
        .await
        .expect("keyed");
    let again = admin
        .produce_with_key("ledger", &keyed, "order-17")
        .await
        .expect("keyed again");
    assert_eq!(first, again);
    let other = admin
        .produce_with_key("ledger", &keyed, "order-18")
        .await
        .expect("other key");
    assert_ne!(first, other, "another key is another batch");
    assert_eq!(stored(&admin, "ledger").await, 4);

    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "produce",
            "ledger",
            "--idempotent",
            "--batch",
            "2",
            "--partition",
            "0",
        ])
        .env("PALISADE_URL", &broker.url)
        .env("PALISADE_CA_CERT", &broker.ca)
        .env("PALISADE_TOKEN", admin.token().expect("token"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("palisade produce runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"l1\nl2\nl3\nl4\nl5\n")
        .expect("write lines");
    let output = child.wait_with_output().expect("produce finishes");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let offsets: Vec<u64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON")["offset"]
                .as_u64()
                .expect("offset")
        })
        .collect();
    assert_eq!(offsets, vec![4, 5, 6, 7, 8]);
    assert_eq!(stored(&admin, "ledger").await, 9);
}
