//! Helpers shared by the storage integration tests: real redb files in temporary directories.
#![allow(dead_code)]

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use palisade::raft::{
    ConfState, Entry, EntryPayload, GroupId, LogIndex, NodeId, SnapshotMeta, Term,
};
use palisade::storage::{StorageError, Store, WriteBatch, Writer, WriterConfig};

pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

pub fn open(dir: &Path) -> (Store, Writer) {
    let store = Store::open(&dir.join("broker.redb")).expect("open store");
    let writer = store.start_writer(WriterConfig::default());
    (store, writer)
}

/// Submits a batch and waits for its acknowledgement.
pub fn write(writer: &Writer, batch: WriteBatch) -> Result<(), StorageError> {
    let (sender, receiver) = mpsc::channel();
    writer.submit(
        batch,
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    )?;
    receiver
        .recv_timeout(ACK_TIMEOUT)
        .expect("writer acknowledged in time")
}

/// Deterministic payload so a reader can recompute what a writer stored.
pub fn payload(group: GroupId, index: u64, bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|position| (group.0 as usize * 31 + index as usize * 7 + position) as u8)
        .collect()
}

pub fn entry(group: GroupId, term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: EntryPayload::Normal(payload(group, index, 100).into()),
    }
}

pub fn entries(group: GroupId, term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| entry(group, term, index)).collect()
}

pub fn bootstrap() -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(0),
        term: Term(0),
        conf_state: ConfState {
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            learners: vec![NodeId(4)],
        },
    }
}

pub fn create(writer: &Writer, group: GroupId) {
    let mut batch = WriteBatch::new(group);
    batch.create = Some(bootstrap());
    write(writer, batch).expect("create group");
}

/// Reads the whole log of a group above its snapshot.
pub fn whole_log(store: &Store, group: GroupId) -> Vec<Entry> {
    let recovery = store.load_group(group).unwrap().expect("group exists");
    store
        .entries(
            group,
            recovery.snapshot.meta.index.next(),
            recovery.last_index.next(),
            u64::MAX,
        )
        .unwrap()
}
