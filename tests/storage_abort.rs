//! A batch that contradicts stored state is a bug: the writer thread must stop the process
//! (abort) instead of acknowledging it or leaving callers waiting. Run in a child process
//! (this test binary, re-run with an environment variable) because the abort is real.

mod storage_support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use palisade::raft::{GroupId, LogIndex};
use palisade::storage::{Store, WriteBatch};
use storage_support::{create, entries, open, whole_log, write};

const CHILD_DIR_VARIABLE: &str = "PALISADE_STORAGE_ABORT_DIR";
const GROUP: GroupId = GroupId(5);

/// The child: commits entries 1..=3, then submits an append at 5 (a gap after 3).
#[test]
fn abort_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_VARIABLE) else {
        return;
    };
    let (_store, writer) = open(Path::new(&dir));
    create(&writer, GROUP);
    let mut first = WriteBatch::new(GROUP);
    first.entries = entries(GROUP, 1, 1..=3);
    write(&writer, first).unwrap();
    let mut gap = WriteBatch::new(GROUP);
    gap.entries = entries(GROUP, 1, 5..=6);
    // Must never return: the writer aborts the process while applying the batch.
    let result = write(&writer, gap);
    println!("gap batch answered: {result:?}");
}

#[test]
fn a_gap_after_the_last_entry_aborts_the_process() {
    if std::env::var(CHILD_DIR_VARIABLE).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["abort_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VARIABLE, dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "status {:?}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert!(!stdout.contains("gap batch answered"), "{stdout}");
    assert!(stderr.contains("leaves a gap"), "{stderr}");

    // Nothing of the transaction holding the bad batch was committed.
    let store = Store::open(&dir.path().join("broker.redb")).unwrap();
    assert_eq!(whole_log(&store, GROUP), entries(GROUP, 1, 1..=3));
    assert_eq!(store.term(GROUP, LogIndex(5)).unwrap(), None);
}
