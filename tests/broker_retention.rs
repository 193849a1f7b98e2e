//! Retention by size and by time advances the log start, frees the stored entries, survives a
//! restart, and fetches below the log start are refused with 416.

mod common;

use std::time::Duration;

use common::BrokerProcess;
use palisade::client::{Client, ClientError};
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};

const FAST_RETENTION: &str = "[topics]\nretention_check_ms = 100\n";

async fn produce_batches(admin: &Client, topic: &str, batches: usize) {
    for b in 0..batches {
        let records = (0..10)
            .map(|r| ProduceRecord {
                value: Some(format!("batch {b} record {r} {}", "x".repeat(100))),
                ..Default::default()
            })
            .collect();
        admin
            .produce(topic, &ProduceRequest { records })
            .await
            .expect("produce");
    }
}

/// Polls the topic until partition 0's log start passes `above`, within a deadline.
async fn wait_log_start(admin: &Client, topic: &str, above: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let described = admin.describe_topic(topic).await.expect("describe");
        let log_start = described.partitions[0].log_start_offset;
        if log_start > above {
            return log_start;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log start stayed at {log_start}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn topic(name: &str, retention_ms: Option<u64>, retention_bytes: Option<u64>) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions: Some(1),
        replication_factor: Some(1),
        retention_ms,
        retention_bytes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_retention_advances_the_log_start_and_frees_entries() {
    let mut broker = BrokerProcess::start_with(&[], FAST_RETENTION).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("sized", None, Some(5_000)))
        .await
        .expect("create");
    produce_batches(&admin, "sized", 20).await;
    let log_start = wait_log_start(&admin, "sized", 0).await;
    assert_eq!(log_start % 10, 0, "the log start is a batch boundary");
    assert!(log_start < 200, "the newest records are kept");

    match admin.fetch("sized", 0, 0, None, None, None).await {
        Err(ClientError::Api { status, detail, .. }) => {
            assert_eq!(status, 416);
            assert!(detail.contains("out of range"), "{detail}");
        }
        other => panic!("fetch below the log start must be refused, got {other:?}"),
    }
    let page = admin
        .fetch("sized", 0, log_start, Some(1000), None, None)
        .await
        .expect("fetch kept records");
    assert_eq!(page.records.first().map(|r| r.offset), Some(log_start));
    assert_eq!(page.high_watermark, 200);

    // Wait until retention has settled (the same log start across several check periods), then
    // restart: the log start holds and the compacted entries are gone from the store.
    let mut settled = wait_log_start(&admin, "sized", 0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = admin
            .describe_topic("sized")
            .await
            .expect("describe")
            .partitions[0]
            .log_start_offset;
        if now == settled {
            break;
        }
        settled = now;
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never settled"
        );
    }
    let log_start = settled;
    broker.terminate();
    let store = palisade::storage::Store::open(&broker.data_dir().join("palisade.redb"))
        .expect("open store");
    let mut compacted = false;
    for group in store.groups().expect("groups") {
        let recovery = store.load_group(group).expect("load").expect("group");
        if recovery.snapshot.meta.index.0 > 0 && group.0 != 0 {
            compacted = true;
            let first = recovery.snapshot.meta.index.next();
            let below = store.entries(group, palisade::raft::LogIndex(1), first, u64::MAX);
            assert!(
                below.map_or(true, |entries| entries.is_empty()),
                "entries below the first index are deleted"
            );
        }
    }
    assert!(compacted, "some partition log was compacted on disk");
    drop(store);
    broker.restart().await;
    let admin = broker.admin().await;
    let described = admin.describe_topic("sized").await.expect("describe");
    assert_eq!(described.partitions[0].log_start_offset, log_start);
    assert_eq!(described.partitions[0].high_watermark, 200);
    let page = admin
        .fetch("sized", 0, log_start, Some(1000), None, None)
        .await
        .expect("fetch after restart");
    assert_eq!(page.records.len() as u64, 200 - log_start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_retention_expires_old_records() {
    let broker = BrokerProcess::start_with(&[], FAST_RETENTION).await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("timed", Some(300), None))
        .await
        .expect("create");
    produce_batches(&admin, "timed", 3).await;
    let log_start = wait_log_start(&admin, "timed", 0).await;
    assert_eq!(log_start, 30, "every batch older than 300 ms expires");
    let page = admin
        .fetch("timed", 0, 30, None, None, None)
        .await
        .expect("fetch at the end");
    assert!(page.records.is_empty());
    produce_batches(&admin, "timed", 1).await;
    let page = admin
        .fetch("timed", 0, 30, None, None, None)
        .await
        .expect("new records are served");
    assert_eq!(page.records.len(), 10);
}
