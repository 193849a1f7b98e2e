//! Group commit: batches queued by many submitters share one transaction (one fsync), every
//! `done` runs after the commit that holds its batch, the per-commit limit holds, and a
//! submitter past the queue's byte budget waits for commits.

mod storage_support;

use std::sync::mpsc;
use std::thread;

use palisade::raft::{GroupId, LogIndex};
use palisade::storage::{Store, WriteBatch, WriterConfig};
use storage_support::{create, entries, whole_log, write, ACK_TIMEOUT};

const SUBMITTERS: u64 = 8;
const BATCHES_PER_SUBMITTER: u64 = 25;

#[test]
fn queued_batches_of_many_submitters_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("broker.redb")).unwrap();
    let writer = store.start_writer(WriterConfig {
        requests_per_commit_max: 64,
        ..WriterConfig::default()
    });
    let groups: Vec<GroupId> = (1..=SUBMITTERS).map(GroupId).collect();
    for group in &groups {
        create(&writer, *group);
    }
    let before = writer.stats();

    // Hold the writer thread inside the `done` of one batch, so everything the submitters
    // queue meanwhile is waiting when it resumes.
    let (entered_sender, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    writer
        .submit(
            WriteBatch::new(groups[0]),
            Box::new(move |result| {
                result.unwrap();
                entered_sender.send(()).unwrap();
                released.recv().unwrap();
            }),
        )
        .unwrap();
    entered.recv_timeout(ACK_TIMEOUT).unwrap();

    let (ack_sender, acks) = mpsc::channel();
    let submitters: Vec<_> = groups
        .iter()
        .map(|group| {
            let (group, writer, ack_sender) = (*group, writer.clone(), ack_sender.clone());
            thread::spawn(move || {
                for index in 1..=BATCHES_PER_SUBMITTER {
                    let mut batch = WriteBatch::new(group);
                    batch.entries = entries(group, 1, index..=index);
                    let ack_sender = ack_sender.clone();
                    let done = move |result| ack_sender.send((group, index, result)).unwrap();
                    writer.submit(batch, Box::new(done)).unwrap();
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
    release.send(()).unwrap();

    let total = SUBMITTERS * BATCHES_PER_SUBMITTER;
    let mut next_per_group = vec![1u64; SUBMITTERS as usize];
    for _ in 0..total {
        let (group, index, result) = acks.recv_timeout(ACK_TIMEOUT).unwrap();
        result.unwrap();
        // Acks of one group come in submission order, after the entry became readable.
        let next = &mut next_per_group[(group.0 - 1) as usize];
        assert_eq!(index, *next, "group {group:?} acked out of order");
        *next += 1;
        assert_eq!(
            store.term(group, LogIndex(index)).unwrap().map(|t| t.0),
            Some(1)
        );
    }

    let after = writer.stats();
    let commits = after.commits - before.commits;
    let batches = after.batches - before.batches;
    assert_eq!(batches, total + 1);
    // One commit for the held batch, then 200 queued batches in commits of at most 64.
    assert_eq!(commits, 1 + total.div_ceil(64), "stats: {after:?}");
    assert!(after.bytes > before.bytes);
    for group in &groups {
        assert_eq!(
            whole_log(&store, *group),
            entries(*group, 1, 1..=BATCHES_PER_SUBMITTER)
        );
    }
}

#[test]
fn concurrent_submitters_waiting_for_their_own_acks_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("broker.redb")).unwrap();
    let writer = store.start_writer(WriterConfig::default());
    let groups: Vec<GroupId> = (100..100 + SUBMITTERS).map(GroupId).collect();
    for group in &groups {
        create(&writer, *group);
    }
    let submitters: Vec<_> = groups
        .iter()
        .map(|group| {
            let (group, writer, store) = (*group, writer.clone(), store.clone());
            thread::spawn(move || {
                for index in 1..=BATCHES_PER_SUBMITTER {
                    let mut batch = WriteBatch::new(group);
                    batch.entries = entries(group, 1, index..=index);
                    write(&writer, batch).unwrap();
                    // Acknowledged means readable from a fresh read transaction.
                    assert!(store.term(group, LogIndex(index)).unwrap().is_some());
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
    let stats = writer.stats();
    assert_eq!(stats.batches, SUBMITTERS * (BATCHES_PER_SUBMITTER + 1));
    assert!(stats.commits <= stats.batches);
    for group in &groups {
        assert_eq!(
            whole_log(&store, *group),
            entries(*group, 1, 1..=BATCHES_PER_SUBMITTER)
        );
    }
}

#[test]
fn a_submitter_past_the_byte_budget_waits_for_the_commit_of_what_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("broker.redb")).unwrap();
    let group = GroupId(300);
    let writer = store.start_writer(WriterConfig {
        queue_bytes_max: 1,
        ..WriterConfig::default()
    });
    create(&writer, group);
    // The writer is held inside the `done` of a batch with entries, so that batch's bytes
    // stay counted until it is released.
    let (entered_sender, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let mut held = WriteBatch::new(group);
    held.entries = entries(group, 1, 1..=1);
    writer
        .submit(
            held,
            Box::new(move |result| {
                result.unwrap();
                entered_sender.send(()).unwrap();
                released.recv().unwrap();
            }),
        )
        .unwrap();
    entered.recv_timeout(ACK_TIMEOUT).unwrap();
    assert!(writer.stats().queued_bytes > 1, "{:?}", writer.stats());

    let (submitted_sender, submitted) = mpsc::channel();
    let submitter = {
        let writer = writer.clone();
        thread::spawn(move || {
            let mut batch = WriteBatch::new(group);
            batch.entries = entries(group, 1, 2..=2);
            writer
                .submit(batch, Box::new(|result| result.unwrap()))
                .unwrap();
            submitted_sender.send(()).unwrap();
        })
    };
    assert!(
        submitted
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "a batch was queued past the byte budget while another one was uncommitted"
    );
    release.send(()).unwrap();
    submitted.recv_timeout(ACK_TIMEOUT).unwrap();
    submitter.join().unwrap();
    let deadline = std::time::Instant::now() + ACK_TIMEOUT;
    while writer.stats().queued_bytes != 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", writer.stats());
        thread::yield_now();
    }
    assert_eq!(whole_log(&store, group), entries(group, 1, 1..=2));
}
