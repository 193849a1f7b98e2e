//! The durability checker shared by the crash and power-loss tests: producers that record every
//! acknowledged (partition, offset, value), a reader of everything stored, and `check`, which
//! lists every acknowledged record that is missing or moved, every value stored twice and every
//! gap in a partition's offsets.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade::client::{Client, ClientError};
use palisade::partition::batch::{self, PartitionCommand};
use palisade::raft::{EntryPayload, GroupId, LogIndex};
use palisade::storage::Store;
use palisade::wire::{ProduceRecord, ProduceRequest};

/// Every record a broker acknowledged: (partition, offset, value).
pub type Acked = Arc<Mutex<Vec<(u32, u64, String)>>>;

/// Records per produce request.
pub const BATCH: usize = 20;

fn batch(producer: &str, sequence: u64) -> (Vec<String>, ProduceRequest) {
    let values: Vec<String> = (0..BATCH)
        .map(|i| format!("{producer}-s{sequence}-r{i}"))
        .collect();
    let records = values
        .iter()
        .map(|value| ProduceRecord {
            value: Some(value.clone()),
            ..ProduceRecord::default()
        })
        .collect();
    (values, ProduceRequest { records })
}

fn record(acked: &Acked, values: Vec<String>, offsets: &[palisade::wire::RecordPosition]) {
    let mut acked = acked.lock().expect("lock");
    for (at, value) in offsets.iter().zip(values) {
        acked.push((at.partition, at.offset, value));
    }
}

/// Produces batches of distinct values until the first failed request.
pub async fn produce_until_error(client: Client, topic: String, producer: String, acked: Acked) {
    for sequence in 0.. {
        let (values, request) = batch(&producer, sequence);
        let Ok(response) = client.produce(&topic, &request).await else {
            return;
        };
        record(&acked, values, &response.offsets);
    }
}

/// Produces batches of distinct values through `clients` in turn until `stop` is set; a failed
/// request (its outcome unknown) is not retried: the next batch has new values.
pub async fn produce_until_stopped(
    clients: Vec<Client>,
    topic: String,
    producer: String,
    acked: Acked,
    stop: Arc<AtomicBool>,
) {
    let mut sequence = 0;
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        let client = &clients[turn % clients.len()];
        let (values, request) = batch(&producer, sequence);
        sequence += 1;
        match client.produce(&topic, &request).await {
            Ok(response) => record(&acked, values, &response.offsets),
            Err(_) => {
                turn += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Waits until `acked` holds at least `count` records, failing after `seconds`.
pub async fn wait_acked(acked: &Acked, count: usize, seconds: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let have = acked.lock().expect("lock").len();
        if have >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "producers acknowledged {have} of {count} records in {seconds} s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything stored in `partitions` partitions of `topic`, by partition. A topic the broker
/// does not know (a store that lost it) reads as empty.
pub async fn read_all(
    client: &Client,
    topic: &str,
    partitions: u32,
) -> BTreeMap<u32, Vec<(u64, String)>> {
    try_read_all(client, topic, partitions)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Like `read_all`, returning the first failed fetch (other than 404) instead of failing.
pub async fn try_read_all(
    client: &Client,
    topic: &str,
    partitions: u32,
) -> Result<BTreeMap<u32, Vec<(u64, String)>>, String> {
    let mut all = BTreeMap::new();
    for partition in 0..partitions {
        let mut records = Vec::new();
        let mut next = 0;
        loop {
            let page = match client
                .fetch(topic, partition, next, Some(5000), None, None)
                .await
            {
                Ok(page) => page,
                Err(ClientError::Api { status: 404, .. }) => break,
                Err(error) => return Err(format!("fetch {topic}/{partition} at {next}: {error}")),
            };
            if page.records.is_empty() {
                break;
            }
            next = page.next_offset;
            records.extend(
                page.records
                    .into_iter()
                    .map(|r| (r.offset, r.value.unwrap_or_default())),
            );
        }
        all.insert(partition, records);
    }
    Ok(all)
}

/// Violations of the durability promise, as readable lines (empty when it held).
pub fn check(
    acked: &[(u32, u64, String)],
    stored: &BTreeMap<u32, Vec<(u64, String)>>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let mut where_stored: HashMap<&str, Vec<(u32, u64)>> = HashMap::new();
    for (partition, records) in stored {
        for (position, (offset, value)) in records.iter().enumerate() {
            if *offset != position as u64 {
                violations.push(format!(
                    "partition {partition}: offset {offset} at position {position} (not dense)"
                ));
            }
            where_stored
                .entry(value.as_str())
                .or_default()
                .push((*partition, *offset));
        }
    }
    for (value, places) in &where_stored {
        if places.len() > 1 {
            violations.push(format!("{value} stored {} times: {places:?}", places.len()));
        }
    }
    for (partition, offset, value) in acked {
        match where_stored.get(value.as_str()) {
            None => violations.push(format!(
                "acknowledged {value} at {partition}/{offset} is missing"
            )),
            Some(places) if !places.contains(&(*partition, *offset)) => violations.push(format!(
                "acknowledged {value} at {partition}/{offset} is stored at {places:?}"
            )),
            Some(_) => {}
        }
    }
    violations
}

/// The first few violations, for an assertion message.
pub fn summary(violations: &[String]) -> String {
    format!(
        "{} violations, first: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    )
}

/// A stopped broker's copy of one partition, read from its redb file: every appended record's
/// value by offset, in log order (committed or not). `None` when the broker has no such group.
pub fn replica_values(data_dir: &std::path::Path, group: u64) -> Option<BTreeMap<u64, String>> {
    let store = Store::open(&data_dir.join("palisade.redb")).expect("open store");
    let group = GroupId(group);
    let recovery = store.load_group(group).expect("load group")?;
    let mut log = BTreeMap::new();
    let mut index = recovery.snapshot.meta.index.next();
    while index <= recovery.last_index {
        let entries = store
            .entries(group, index, recovery.last_index.next(), 4 << 20)
            .expect("entries");
        let last = entries.last().expect("at least one entry").index;
        for entry in entries {
            if let EntryPayload::Normal(data) = entry.payload {
                if let Ok(PartitionCommand::Append(batch)) = batch::decode(&data) {
                    for (slot, record) in batch.records.into_iter().enumerate() {
                        let value = String::from_utf8_lossy(&record.value).into_owned();
                        let offset = batch.base_offset + slot as u64;
                        if log.insert(offset, value).is_some() {
                            panic!("group {group:?}: offset {offset} appended twice");
                        }
                    }
                }
            }
        }
        index = LogIndex(last.0 + 1);
    }
    Some(log)
}

/// Differences between replicas of one partition (empty when they are identical).
pub fn replica_differences(
    partition: u32,
    replicas: &[(u64, BTreeMap<u64, String>)],
) -> Vec<String> {
    let mut differences = Vec::new();
    let Some((first_id, first)) = replicas.first() else {
        return differences;
    };
    for (id, log) in &replicas[1..] {
        if log != first {
            let at = first
                .iter()
                .zip(log.iter())
                .find(|(a, b)| a != b)
                .map(|((offset, _), _)| *offset)
                .unwrap_or(first.len().min(log.len()) as u64);
            differences.push(format!(
                "partition {partition}: broker {id} ({} records) differs from broker {first_id} ({} records) from offset {at}",
                log.len(),
                first.len()
            ));
        }
    }
    differences
}
