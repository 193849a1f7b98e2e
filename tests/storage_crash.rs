//! Crash safety: a child process (this test binary, re-run with an environment variable)
//! writes batches and prints every acknowledgement; it is SIGKILLed mid-stream, and after
//! reopening the file every acknowledged batch must be there, with its applied state
//! matching its applied index.

mod storage_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use palisade::raft::{EntryPayload, GroupId, LogIndex};
use palisade::storage::{Store, WriteBatch};
use storage_support::{create, entry, open, payload};

const CHILD_DIR_VARIABLE: &str = "PALISADE_STORAGE_CRASH_DIR";
const GROUPS: u64 = 4;
const ACKS_BEFORE_KILL: usize = 400;
const PAYLOAD_BYTES: usize = 4096;

fn applied_state(index: u64) -> Vec<u8> {
    format!("applied through {index}").into_bytes()
}

fn batch(group: GroupId, index: u64) -> WriteBatch {
    let mut batch = WriteBatch::new(group);
    let mut written = entry(group, 1, index);
    written.payload = EntryPayload::Normal(payload(group, index, PAYLOAD_BYTES).into());
    batch.entries = vec![written];
    batch.offset_rows = vec![(index * 10, LogIndex(index))];
    batch.applied = Some((LogIndex(index - 1), applied_state(index - 1)));
    batch
}

/// The child: writes forever and prints `acked <group> <index>` after each commit.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_VARIABLE) else {
        return;
    };
    let (_store, writer) = open(Path::new(&dir));
    for group in (1..=GROUPS).map(GroupId) {
        create(&writer, group);
    }
    for index in 1.. {
        for group in (1..=GROUPS).map(GroupId) {
            let done = move |result: Result<(), _>| {
                result.expect("batch committed");
                // Straight to the process's stdout, past the test harness's capture.
                let mut out = std::io::stdout().lock();
                writeln!(out, "acked {} {}", group.0, index).expect("stdout open");
                out.flush().expect("stdout open");
            };
            writer.submit(batch(group, index), Box::new(done)).unwrap();
        }
        // Keep the queue short so the kill lands among many small commits.
        if index % 16 == 0 {
            while writer.stats().batches < GROUPS * (index - 8) {
                thread::yield_now();
            }
        }
    }
}

/// Acknowledged `(group, index)` pairs missing or wrong in the store.
fn missing_acks(store: &Store, acked: &BTreeMap<u64, Vec<u64>>) -> Vec<(u64, u64)> {
    let mut missing = Vec::new();
    for (&group, indexes) in acked {
        let group_id = GroupId(group);
        for &index in indexes {
            let stored = store
                .entries(group_id, LogIndex(index), LogIndex(index + 1), u64::MAX)
                .unwrap();
            let expected = payload(group_id, index, PAYLOAD_BYTES);
            let present = matches!(stored.as_slice(),
                [entry] if entry.payload == EntryPayload::Normal(expected.clone().into()));
            let row = store.offset_floor(group_id, index * 10).unwrap();
            if !present || row != Some((index * 10, LogIndex(index))) {
                missing.push((group, index));
            }
        }
    }
    missing
}

#[test]
fn every_acknowledged_batch_survives_sigkill() {
    if std::env::var(CHILD_DIR_VARIABLE).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VARIABLE, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_sender, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_sender.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut record = |line: String| {
        if let Some(rest) = line.strip_prefix("acked ") {
            let mut parts = rest.split(' ').map(|part| part.parse::<u64>().unwrap());
            let (group, index) = (parts.next().unwrap(), parts.next().unwrap());
            acked.entry(group).or_default().push(index);
            return 1;
        }
        0
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = 0;
    while count < ACKS_BEFORE_KILL {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).expect("child kept acknowledging");
        count += record(line);
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "child was killed mid-stream"
    );
    // Acks printed before the kill are still in the pipe.
    for line in lines.iter() {
        count += record(line);
    }
    reader.join().unwrap();
    assert!(count >= ACKS_BEFORE_KILL);
    eprintln!("acknowledged before the kill: {count}");

    let store = Store::open(&dir.path().join("broker.redb")).unwrap();
    assert_eq!(store.groups().unwrap().len() as u64, GROUPS);
    assert_eq!(missing_acks(&store, &acked), vec![]);
    for group in (1..=GROUPS).map(GroupId) {
        let recovery = store.load_group(group).unwrap().unwrap();
        let last_acked = acked[&group.0].iter().max().copied().unwrap_or(0);
        assert!(
            recovery.last_index.0 >= last_acked,
            "{group:?} lost its tail"
        );
        assert_eq!(
            recovery.applied_state,
            applied_state(recovery.applied_index.0)
        );
    }

    // The checker is able to fail: an ack the store never saw is reported.
    let mut fabricated = acked.clone();
    let beyond = store.load_group(GroupId(1)).unwrap().unwrap().last_index.0 + 1;
    fabricated.entry(1).or_default().push(beyond);
    assert_eq!(missing_acks(&store, &fabricated), vec![(1, beyond)]);
}
