//! Storage write throughput: record batches of 100 x 1 KiB stored as one Raft entry each, over
//! many groups, every acknowledgement after an fsynced commit.
//!
//! Run: `cargo bench --bench storage` (set `PALISADE_BENCH_DIR` to put the database on
//! another disk). Prints records/s, MB/s and how many batches shared each commit.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use palisade::raft::{
    ConfState, Entry, EntryPayload, GroupId, LogIndex, NodeId, SnapshotMeta, Term,
};
use palisade::storage::{Store, WriteBatch, Writer, WriterConfig};

const RECORDS_PER_BATCH: u64 = 100;
const RECORD_BYTES: usize = 1024;
const GROUPS: u64 = 64;
const RUN_DURATION: Duration = Duration::from_secs(5);
const PIPELINE_BATCHES_MAX: usize = 256;

fn batch(group: GroupId, index: u64, payload: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new(group);
    batch.entries = vec![Entry {
        term: Term(1),
        index: LogIndex(index),
        payload: EntryPayload::Normal(payload.to_vec().into()),
    }];
    batch.offset_rows = vec![((index - 1) * RECORDS_PER_BATCH, LogIndex(index))];
    batch
}

fn wait_ack(writer: &Writer, batch: WriteBatch) {
    let (sender, receiver) = mpsc::channel();
    writer
        .submit(batch, Box::new(move |result| sender.send(result).unwrap()))
        .unwrap();
    receiver.recv().unwrap().unwrap();
}

fn setup(name: &str) -> (tempfile::TempDir, Store, Writer) {
    let dir = match std::env::var("PALISADE_BENCH_DIR") {
        Ok(base) => tempfile::tempdir_in(base).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let store = Store::open(&dir.path().join(format!("{name}.redb"))).unwrap();
    let writer = store.start_writer(WriterConfig::default());
    for group in (0..GROUPS).map(GroupId) {
        let mut create = WriteBatch::new(group);
        create.create = Some(SnapshotMeta {
            conf_state: ConfState {
                voters: vec![NodeId(1)],
                learners: vec![],
            },
            ..SnapshotMeta::default()
        });
        wait_ack(&writer, create);
    }
    (dir, store, writer)
}

fn report(name: &str, writer: &Writer, batches: u64, elapsed: Duration) {
    let stats = writer.stats();
    let commits = stats.commits - GROUPS;
    let seconds = elapsed.as_secs_f64();
    let records = batches * RECORDS_PER_BATCH;
    let bytes = records as f64 * RECORD_BYTES as f64;
    println!(
        "{name:<34} {:>10.0} records/s {:>8.1} MB/s  {batches} batches in {commits} commits ({:.1} per commit, {:.2} ms per commit)",
        records as f64 / seconds,
        bytes / seconds / 1e6,
        batches as f64 / commits as f64,
        seconds * 1e3 / commits as f64,
    );
}

/// One submitter, waiting for each acknowledgement: one fsync per batch.
fn sequential(payload: &[u8]) {
    let (_dir, _store, writer) = setup("sequential");
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < RUN_DURATION {
        let group = GroupId(batches % GROUPS);
        wait_ack(&writer, batch(group, batches / GROUPS + 1, payload));
        batches += 1;
    }
    report(
        "1 submitter, wait for each ack",
        &writer,
        batches,
        start.elapsed(),
    );
}

/// Many submitters (one per group set), each waiting for its own acknowledgement.
fn concurrent(payload: &[u8], submitters: u64) {
    let (_dir, _store, writer) = setup("concurrent");
    let start = Instant::now();
    let handles: Vec<_> = (0..submitters)
        .map(|submitter| {
            let (writer, payload) = (writer.clone(), payload.to_vec());
            thread::spawn(move || {
                let groups: Vec<GroupId> = (submitter..GROUPS)
                    .step_by(submitters as usize)
                    .map(GroupId)
                    .collect();
                let mut batches = 0u64;
                while start.elapsed() < RUN_DURATION {
                    let group = groups[(batches % groups.len() as u64) as usize];
                    let index = batches / groups.len() as u64 + 1;
                    wait_ack(&writer, batch(group, index, &payload));
                    batches += 1;
                }
                batches
            })
        })
        .collect();
    let batches: u64 = handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .sum();
    let name = format!("{submitters} submitters, each waits");
    report(&name, &writer, batches, start.elapsed());
}

/// One submitter keeping up to `PIPELINE_BATCHES_MAX` batches in flight.
fn pipelined(payload: &[u8]) {
    let (_dir, _store, writer) = setup("pipelined");
    let (ack_sender, acks) = mpsc::channel();
    let start = Instant::now();
    let (mut submitted, mut acked) = (0u64, 0u64);
    while start.elapsed() < RUN_DURATION {
        while submitted - acked < PIPELINE_BATCHES_MAX as u64 {
            let group = GroupId(submitted % GROUPS);
            let ack_sender = ack_sender.clone();
            let done = Box::new(move |result: Result<(), _>| {
                result.unwrap();
                let _ = ack_sender.send(());
            });
            writer
                .submit(batch(group, submitted / GROUPS + 1, payload), done)
                .unwrap();
            submitted += 1;
        }
        acks.recv().unwrap();
        acked += 1;
    }
    while acked < submitted {
        acks.recv().unwrap();
        acked += 1;
    }
    let name = format!("1 submitter, {PIPELINE_BATCHES_MAX} in flight");
    report(&name, &writer, submitted, start.elapsed());
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    let payload: Vec<u8> = (0..RECORDS_PER_BATCH as usize * RECORD_BYTES)
        .map(|position| (position * 131 % 251) as u8)
        .collect();
    println!(
        "batches of {RECORDS_PER_BATCH} x {RECORD_BYTES} B records, one entry each, {GROUPS} groups, {}s per run",
        RUN_DURATION.as_secs()
    );
    sequential(&payload);
    concurrent(&payload, 4);
    concurrent(&payload, 16);
    pipelined(&payload);
}
