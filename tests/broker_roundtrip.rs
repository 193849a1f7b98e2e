//! Produce and fetch through a real broker process over HTTPS: byte-identical round trips, dense
//! offsets, stable key partitioning, headers, and long polls that wake on commit.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use common::BrokerProcess;
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};

fn topic(name: &str, partitions: u32) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions: Some(partitions),
        replication_factor: Some(1),
        retention_ms: None,
        retention_bytes: None,
    }
}

/// (offset, value, `index` header) of one produced record.
type Sent = (u64, Vec<u8>, Option<String>);

/// Deterministic bytes that differ per record, including non-UTF-8 bytes.
fn payload(index: usize) -> Vec<u8> {
    (0..(index % 300 + 1))
        .map(|j| ((index * 31 + j * 7) % 256) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_round_trip_byte_identical_with_dense_offsets() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("roundtrip", 3))
        .await
        .expect("create topic");
    let engine = base64::engine::general_purpose::STANDARD;
    let mut sent: BTreeMap<u32, Vec<Sent>> = BTreeMap::new();
    for batch_start in (0..10_000usize).step_by(250) {
        let records: Vec<ProduceRecord> = (batch_start..batch_start + 250)
            .map(|i| ProduceRecord {
                key: (i % 2 == 0).then(|| format!("key-{}", i % 17)),
                value_b64: Some(engine.encode(payload(i))),
                headers: BTreeMap::from([("index".to_string(), i.to_string())]),
                ..ProduceRecord::default()
            })
            .collect();
        let response = admin
            .produce("roundtrip", &ProduceRequest { records })
            .await
            .expect("produce");
        assert_eq!(response.offsets.len(), 250);
        for (position, at) in response.offsets.iter().enumerate() {
            let i = batch_start + position;
            sent.entry(at.partition).or_default().push((
                at.offset,
                payload(i),
                Some(i.to_string()),
            ));
        }
    }
    let mut total = 0;
    for (partition, expected) in &sent {
        let mut offsets: Vec<u64> = expected.iter().map(|(offset, _, _)| *offset).collect();
        offsets.sort_unstable();
        assert_eq!(
            offsets,
            (0..offsets.len() as u64).collect::<Vec<_>>(),
            "offsets of partition {partition} are dense from 0"
        );
        let mut fetched = Vec::new();
        let mut next = 0;
        while next < offsets.len() as u64 {
            let page = admin
                .fetch("roundtrip", *partition, next, Some(1000), None, None)
                .await
                .expect("fetch");
            assert!(!page.records.is_empty(), "fetch made progress");
            next = page.next_offset;
            fetched.extend(page.records);
        }
        let by_offset: BTreeMap<u64, _> = expected.iter().map(|(o, v, h)| (*o, (v, h))).collect();
        for record in &fetched {
            let (value, header) = by_offset[&record.offset];
            let got = engine
                .decode(
                    record
                        .value_b64
                        .as_ref()
                        .expect("sent as bytes, returned as value_b64"),
                )
                .expect("b64");
            assert_eq!(
                &got, value,
                "record at {partition}/{} is byte-identical",
                record.offset
            );
            assert_eq!(
                record.headers.get("index"),
                header.as_ref(),
                "headers survive"
            );
        }
        assert_eq!(fetched.len(), expected.len());
        total += fetched.len();
    }
    assert_eq!(total, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_always_lands_on_the_same_partition_and_text_stays_text() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("keys", 6))
        .await
        .expect("create topic");
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for round in 0..5 {
        let records = (0..40)
            .map(|k| ProduceRecord {
                key: Some(format!("customer-{k}")),
                value: Some(format!("round {round} ✓")),
                ..ProduceRecord::default()
            })
            .collect();
        let response = admin
            .produce("keys", &ProduceRequest { records })
            .await
            .expect("produce");
        for (k, at) in response.offsets.iter().enumerate() {
            let previous = seen.insert(format!("customer-{k}"), at.partition);
            assert!(
                previous.is_none_or(|p| p == at.partition),
                "key customer-{k} moved partitions"
            );
        }
    }
    let used: std::collections::BTreeSet<u32> = seen.values().copied().collect();
    assert!(
        used.len() > 1,
        "40 keys should spread over more than one of 6 partitions"
    );
    let (key, partition) = seen.iter().next().expect("a key");
    let page = broker
        .admin()
        .await
        .fetch("keys", *partition, 0, Some(1000), None, None)
        .await
        .expect("fetch");
    let record = page
        .records
        .iter()
        .find(|r| r.key.as_deref() == Some(key.as_str()))
        .expect("record with the key");
    assert_eq!(
        record.value.as_deref(),
        Some("round 0 ✓"),
        "text values come back as text"
    );
    assert!(record.value_b64.is_none());
}

/// Waits until the broker reports `count` parked long polls on `/metrics`.
async fn wait_parked_fetches(broker: &BrokerProcess, count: u64) {
    let raw = common::raw_client(&broker.ca);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let wanted = format!("palisade_parked_fetches {count}");
    loop {
        let text = raw
            .get(format!("{}/metrics", broker.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        if text.lines().any(|line| line.trim() == wanted) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no parked fetch seen; metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_on_commit_and_empty_after_wait_ms() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("poll", 1))
        .await
        .expect("create topic");

    let started = Instant::now();
    let empty = admin
        .fetch("poll", 0, 0, None, None, Some(300))
        .await
        .expect("fetch");
    assert!(empty.records.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "an empty long poll waits wait_ms"
    );

    let poller = admin.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let page = poller
            .fetch("poll", 0, 0, None, None, Some(20_000))
            .await
            .expect("fetch");
        (page, started.elapsed())
    });
    // Produce only once the poll is parked on the partition (the broker's gauge says so).
    wait_parked_fetches(&broker, 1).await;
    assert!(
        !waiting.is_finished(),
        "the poll must still be waiting before the produce"
    );
    let record = ProduceRecord {
        value: Some("wake up".into()),
        ..ProduceRecord::default()
    };
    admin
        .produce(
            "poll",
            &ProduceRequest {
                records: vec![record],
            },
        )
        .await
        .expect("produce");
    let (page, waited) = waiting.await.expect("poller");
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].value.as_deref(), Some("wake up"));
    assert!(
        waited < Duration::from_secs(10),
        "the poll returned on commit, not at wait_ms (took {waited:?})"
    );
}
