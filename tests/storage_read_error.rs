//! A stored log entry that fails its checksum stops the broker with a clear message: a real
//! broker writes a partition's log to its redb file, stops, one entry's bytes are flipped on
//! disk, and the restarted broker exits with `STORAGE_READ_FAILED_EXIT`, naming the group, the
//! index and the checksum mismatch, instead of retrying the read forever on an arbiter thread.

mod common;

use std::time::Duration;

use common::BrokerProcess;
use palisade::partition::batch::{self, PartitionCommand};
use palisade::partition::log_store::STORAGE_READ_FAILED_EXIT;
use palisade::raft::{EntryPayload, GroupId, LogIndex};
use palisade::storage::Store;
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const TOPIC: &str = "fragile";
/// The stored layout of the log (`storage::tables::ENTRIES`).
const ENTRIES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("entries");

/// The group and index of the first batch this test produced (found by its records: the
/// metadata's applied state on disk may not name the topic yet), which is not the last entry
/// (that one is read while the group is loaded, before any replica runs).
fn batch_to_damage(store_path: &std::path::Path) -> (GroupId, LogIndex) {
    let store = Store::open(store_path).expect("open store");
    for group in store.groups().expect("groups") {
        let recovery = store.load_group(group).expect("load").expect("group");
        let low = recovery.snapshot.meta.index.next();
        let entries = store
            .entries(group, low, recovery.last_index, u64::MAX)
            .expect("entries read before the damage");
        for entry in entries {
            let EntryPayload::Normal(data) = &entry.payload else {
                continue;
            };
            if let Ok(PartitionCommand::Append(batch)) = batch::decode(data) {
                if batch.records.first().is_some_and(|r| r.value == b"b0-r0") {
                    return (group, entry.index);
                }
            }
        }
    }
    panic!("the first produced batch is stored, and not as the last entry");
}

/// Flips one byte of the stored row's body, leaving its checksum as it was.
fn flip_a_byte(store_path: &std::path::Path, group: GroupId, index: LogIndex) {
    let database = redb::Database::open(store_path).expect("open redb");
    let write = database.begin_write().expect("write transaction");
    {
        let mut table = write.open_table(ENTRIES).expect("entries table");
        let mut row = table
            .get((group.0, index.0))
            .expect("read row")
            .expect("row exists")
            .value()
            .to_vec();
        let last = row.len() - 1;
        row[last] ^= 0x40;
        table
            .insert((group.0, index.0), row.as_slice())
            .expect("rewrite row");
    }
    write.commit().expect("commit");
    let read = database.begin_read().expect("read transaction");
    let table = read.open_table(ENTRIES).expect("entries table");
    assert!(table.get((group.0, index.0)).expect("read row").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_entry_stops_the_broker_naming_group_and_index() {
    let mut broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    let spec = CreateTopic {
        name: TOPIC.into(),
        partitions: Some(1),
        replication_factor: Some(1),
        retention_ms: None,
        retention_bytes: None,
    };
    admin.create_topic(&spec).await.expect("create topic");
    for batch in 0..4 {
        let records = (0..5)
            .map(|i| ProduceRecord {
                value: Some(format!("b{batch}-r{i}")),
                ..ProduceRecord::default()
            })
            .collect();
        admin
            .produce(TOPIC, &ProduceRequest { records })
            .await
            .expect("produce");
    }
    let status = broker.terminate();
    assert!(status.success(), "clean stop before the damage: {status}");
    let path = broker.data_dir().join("palisade.redb");
    let (group, index) = batch_to_damage(&path);
    flip_a_byte(&path, group, index);

    let status = broker.start_expecting_exit(Duration::from_secs(60)).await;
    let log = broker.log();
    assert_eq!(
        status.code(),
        Some(STORAGE_READ_FAILED_EXIT),
        "exit status {status}; log:\n{log}"
    );
    let named = format!(
        "storage read failed for group {} at index {}",
        group.0, index.0
    );
    assert!(log.contains(&named), "log names {named:?}:\n{log}");
    assert!(
        log.contains("checksum mismatch"),
        "log names the cause:\n{log}"
    );
}
