//! A broker whose disk runs out of space, on a real small file system (a tmpfs of 96 MiB, so
//! this test runs as root, as CI does): produce is answered 507 with a problem naming
//! `storage.disk_free_bytes_min` before the disk is full, nothing acknowledged is lost or
//! changed, reads go on, the broker keeps running, and writes resume once space is freed.
//! With the floor turned off the disk really fills: the failed commit stops the broker (it never
//! goes on with unknown durability), and once space is freed it starts again with every
//! acknowledged record at its offset.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cluster::wait_for;
use common::BrokerProcess;
use palisade::client::Client;
use palisade::wire::{ProduceRecord, ProduceRequest};

const TOPIC: &str = "fill";
const FS_MIB: u64 = 96;
const BALLAST_MIB: u64 = 24;
const FLOOR_MIB: u64 = 40;
/// More than the file system holds, so a missing refusal ends the loop as a failure.
const BATCHES_MAX: usize = 2_000;

/// A tmpfs mounted for the test and unmounted (by its path) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {mib} MiB tmpfs failed ({status}); this test needs root, as CI has"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn batch(round: usize) -> ProduceRequest {
    ProduceRequest {
        records: (0..100)
            .map(|i| ProduceRecord {
                value: Some(format!("{round:06}-{i:03}-{}", "x".repeat(1000))),
                partition: Some(0),
                ..ProduceRecord::default()
            })
            .collect(),
    }
}

async fn read_all(client: &Client) -> Vec<(u64, String)> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let reply = client
            .fetch(TOPIC, 0, offset, None, None, None)
            .await
            .expect("reads go on while writes are refused");
        records.extend(
            reply
                .records
                .into_iter()
                .map(|r| (r.offset, r.value.unwrap_or_default())),
        );
        offset = reply.next_offset;
        if offset >= reply.high_watermark {
            return records;
        }
    }
}

/// Produces batches until one is refused; returns what was acknowledged and the refusal.
async fn fill(client: &Client) -> (Vec<(u64, String)>, palisade::client::ClientError) {
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..BATCHES_MAX {
        let request = batch(round);
        match client.produce(TOPIC, &request).await {
            Ok(reply) => acked.extend(
                reply
                    .offsets
                    .iter()
                    .zip(&request.records)
                    .map(|(at, record)| (at.offset, record.value.clone().expect("text"))),
            ),
            Err(error) => return (acked, error),
        }
    }
    panic!("{BATCHES_MAX} batches went in: the disk never filled");
}

/// A broker on a fresh tmpfs with the ballast written and `floor` as its free-space floor.
async fn broker_on_tmpfs(fs: &Tmpfs, floor: &str) -> BrokerProcess {
    std::fs::write(ballast(fs), vec![7u8; (BALLAST_MIB * 1024 * 1024) as usize]).expect("ballast");
    let data = fs.path().join("data");
    BrokerProcess::start_with(
        &[
            (
                "PALISADE_BROKER_DATA_DIR",
                data.to_str().expect("utf-8 path"),
            ),
            ("PALISADE_STORAGE_DISK_FREE_BYTES_MIN", floor),
        ],
        "",
    )
    .await
}

fn ballast(fs: &Tmpfs) -> PathBuf {
    fs.path().join("ballast")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filling_disk_refuses_writes_with_507_keeps_everything_and_resumes_when_space_is_freed() {
    let fs = Tmpfs::mount(FS_MIB);
    let mut broker = broker_on_tmpfs(&fs, &format!("{FLOOR_MIB} MiB")).await;
    let admin = broker.admin().await;
    common::create_topic(&admin, TOPIC, 1, 1).await;

    let (acked, refusal) = fill(&admin).await;
    assert_eq!(refusal.status(), Some(507), "{refusal}");
    assert!(
        refusal.to_string().contains("storage.disk_free_bytes_min"),
        "{refusal}"
    );
    assert!(!acked.is_empty(), "some writes went in before the floor");
    let free = palisade::storage::free_bytes(fs.path()).expect("statvfs");
    assert!(
        free > 0,
        "the floor is kept: the disk never filled ({free} bytes free)"
    );

    // The broker keeps running and serving reads; everything acknowledged is there.
    assert_eq!(
        read_all(&admin).await,
        acked,
        "acknowledged records changed"
    );
    let again = admin.produce(TOPIC, &batch(BATCHES_MAX)).await;
    assert_eq!(
        again.as_ref().err().and_then(|e| e.status()),
        Some(507),
        "still refused: {again:?}"
    );

    // Space comes back: writes resume, and nothing acknowledged moved.
    std::fs::remove_file(ballast(&fs)).expect("free the ballast");
    let resumed = wait_for("a write after space was freed", 30, || async {
        admin.produce(TOPIC, &batch(BATCHES_MAX + 1)).await.ok()
    })
    .await;
    assert_eq!(
        resumed.offsets.first().map(|p| p.offset),
        acked.last().map(|(offset, _)| offset + 1),
        "the resumed write follows the last acknowledged one"
    );
    let read = read_all(&admin).await;
    assert_eq!(&read[..acked.len()], &acked[..]);
    broker.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_floor_a_full_disk_stops_the_broker_and_a_restart_recovers_every_ack() {
    let fs = Tmpfs::mount(FS_MIB);
    let mut broker = broker_on_tmpfs(&fs, "0").await;
    let admin = broker.admin().await;
    common::create_topic(&admin, TOPIC, 1, 1).await;
    let (acked, failure) = fill(&admin).await;
    assert!(
        !acked.is_empty(),
        "some writes went in before the disk filled"
    );
    // The commit that found no space stopped the broker: the write got no answer.
    assert_eq!(failure.status(), None, "{failure}");
    wait_for("the broker's log to say why it stopped", 30, || async {
        broker
            .log()
            .contains("durability unknown, aborting")
            .then_some(())
    })
    .await;
    std::fs::remove_file(ballast(&fs)).expect("free the ballast");
    broker.restart().await;
    let admin = broker.admin().await;
    let read = read_all(&admin).await;
    assert_eq!(
        &read[..acked.len()],
        &acked[..],
        "an acknowledged record is missing or changed after the restart"
    );
    broker.kill();
}
