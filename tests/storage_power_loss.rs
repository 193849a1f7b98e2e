//! Power loss and failing disks, with real broker processes. Each broker runs with the test-only
//! storage backend of `palisade::storage::fault`: with `POWER_LOSS_ENV` a write lives in the
//! broker's memory until redb syncs it, so SIGKILL loses what was not fsynced, as a power cut
//! loses the page cache (some tests also let a seeded share of unsynced writes reach the disk
//! early, as kernel write-back does). The tests cut power to one broker, to a majority and to all
//! of them while producers run, restart, and find every acknowledged record at its offset.
//!
//! The negative control is a broker that does not fsync (`UNSAFE_SKIP_FSYNC_ENV`): SIGKILL alone
//! cannot tell it from a correct one, a power cut loses its acknowledged records, and the checker
//! says so. An fsync or write error stops the broker (never acknowledging with unknown
//! durability), for a leader and for a follower, and a restart recovers everything acknowledged.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{wait_for, TestCluster};
use common::durability::{
    check, produce_until_error, produce_until_stopped, read_all, summary, wait_acked, Acked,
};
use common::BrokerProcess;
use palisade::client::Client;
use palisade::storage::fault::{
    POWER_LOSS_ENV, SYNC_FAIL_FILE_ENV, UNSAFE_SKIP_FSYNC_ENV, WRITEBACK_ENV, WRITE_FAIL_FILE_ENV,
};
use palisade::wire::{ProduceRecord, ProduceRequest};

const PARTITIONS: u32 = 3;
const PRODUCERS: usize = 4;

/// SIGKILL of a broker whose unsynced writes live only in its memory: a power cut.
fn cut_power(broker: &mut BrokerProcess) {
    broker.kill();
}

/// Produces one record to every partition (retrying until one is acknowledged), so that each
/// partition's leader has committed in its current term and reads see everything committed.
async fn probe_every_partition(client: &Client, topic: &str) {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    for partition in 0..PARTITIONS {
        let probe = PROBES.fetch_add(1, Ordering::Relaxed);
        let request = ProduceRequest {
            records: vec![ProduceRecord {
                value: Some(format!("probe-{probe}")),
                partition: Some(partition),
                ..ProduceRecord::default()
            }],
        };
        wait_for(&format!("a write to {topic}/{partition}"), 90, || async {
            client.produce(topic, &request).await.ok()
        })
        .await;
    }
}

/// Producers on `client` until the first failure; returns them with what they acknowledged.
fn start_producers(
    client: &Client,
    topic: &str,
    tag: &str,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Acked = Arc::default();
    let producers = (0..PRODUCERS)
        .map(|p| {
            tokio::spawn(produce_until_error(
                client.clone(),
                topic.to_string(),
                format!("{tag}-p{p}"),
                acked.clone(),
            ))
        })
        .collect();
    (acked, producers)
}

/// One round on a single broker: produce, cut power once `count` records are acknowledged,
/// restart (with `restart_env` changes applied), and return (acknowledged, violations).
async fn power_cut_round(
    broker: &mut BrokerProcess,
    topic: &str,
    count: usize,
    restart_env: &[(&str, Option<&str>)],
) -> (usize, Vec<String>) {
    let admin = broker.admin().await;
    common::create_topic(&admin, topic, PARTITIONS, 1).await;
    let (acked, producers) = start_producers(&admin, topic, topic);
    wait_acked(&acked, count, 60).await;
    cut_power(broker);
    for producer in producers {
        producer.await.expect("producer task");
    }
    for (key, value) in restart_env {
        broker.set_env(key, *value);
    }
    broker.restart().await;
    let admin = broker.admin().await;
    let stored = read_all(&admin, topic, PARTITIONS).await;
    let acked = acked.lock().expect("lock").clone();
    (acked.len(), check(&acked, &stored))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_power_cuts_of_a_single_broker() {
    let mut broker =
        BrokerProcess::start_with(&[(POWER_LOSS_ENV, "1"), (WRITEBACK_ENV, "0.3,1")], "").await;
    for round in 0..3 {
        let seed = format!("0.3,{}", round + 2);
        let (acked, violations) = power_cut_round(
            &mut broker,
            &format!("cut-{round}"),
            2000,
            &[(WRITEBACK_ENV, Some(&seed))],
        )
        .await;
        assert!(acked >= 2000);
        assert!(
            violations.is_empty(),
            "round {round}: {}",
            summary(&violations)
        );
    }
}

/// The negative control: a broker that skips fsync passes a SIGKILL test (its writes are in the
/// page cache) but loses acknowledged records at a power cut, and the checker reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_skips_fsync_survives_sigkill_but_not_a_power_cut() {
    let mut broker = BrokerProcess::start_with(&[(UNSAFE_SKIP_FSYNC_ENV, "1")], "").await;
    let (acked, violations) = power_cut_round(&mut broker, "sigkill", 1000, &[]).await;
    assert!(acked >= 1000);
    assert!(
        violations.is_empty(),
        "SIGKILL keeps the page cache, so skipping fsync goes unnoticed: {}",
        summary(&violations)
    );

    // The same broker under the power-loss backend: its store is synced once at start-up (the
    // topic is created by a correct broker), then it runs without fsync and loses power.
    broker.set_env(UNSAFE_SKIP_FSYNC_ENV, None);
    broker.set_env(POWER_LOSS_ENV, Some("1"));
    broker.restart().await;
    let admin = broker.admin().await;
    common::create_topic(&admin, "unsynced", PARTITIONS, 1).await;
    broker.set_env(UNSAFE_SKIP_FSYNC_ENV, Some("1"));
    broker.restart().await;
    let admin = broker.admin().await;
    let (acked, producers) = start_producers(&admin, "unsynced", "unsynced");
    wait_acked(&acked, 1000, 60).await;
    cut_power(&mut broker);
    for producer in producers {
        producer.await.expect("producer task");
    }
    broker.set_env(UNSAFE_SKIP_FSYNC_ENV, None);
    broker.restart().await;
    let stored = read_all(&broker.admin().await, "unsynced", PARTITIONS).await;
    let acked = acked.lock().expect("lock").clone();
    let violations = check(&acked, &stored);
    let missing = violations
        .iter()
        .filter(|v| v.contains("is missing"))
        .count();
    assert!(
        missing > 0,
        "a power cut must lose records acknowledged without fsync ({} acknowledged)",
        acked.len()
    );
    eprintln!(
        "the checker caught the unsynced broker: {}",
        summary(&violations)
    );
}

/// Runs the cluster's cycle of power cuts this many times (default 1).
const CYCLES_ENV: &str = "PALISADE_POWER_LOSS_CYCLES";

/// Which brokers lose power together in each cluster round.
const CLUSTER_CUTS: [&[u64]; 3] = [&[1], &[2, 3], &[1, 2, 3]];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_power_cuts_of_one_a_majority_and_every_broker() {
    let mut cluster = TestCluster::start_env(3, "", &[(POWER_LOSS_ENV, "1")]).await;
    for id in 1..=3 {
        let seed = format!("0.2,{id}");
        cluster
            .node_mut(id)
            .env
            .push((WRITEBACK_ENV.to_string(), seed));
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    let admin = cluster.admin(1).await;
    common::create_topic(&admin, "power", PARTITIONS, 3).await;
    probe_every_partition(&admin, "power").await;
    let acked: Acked = Arc::default();
    let cycles: usize = std::env::var(CYCLES_ENV)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1);
    let cuts = CLUSTER_CUTS
        .iter()
        .cycle()
        .take(CLUSTER_CUTS.len() * cycles);
    for (round, cut) in cuts.enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for id in 1..=3 {
            clients.push(cluster.admin(id).await);
        }
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                tokio::spawn(produce_until_stopped(
                    clients.clone(),
                    "power".to_string(),
                    format!("round{round}-p{p}"),
                    acked.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let before = acked.lock().expect("lock").len();
        wait_acked(&acked, before + 1500, 90).await;
        for id in cut.iter() {
            cluster.signal(*id, libc::SIGKILL);
        }
        for id in cut.iter() {
            cluster.kill(*id);
        }
        // Writes go on (or, with a majority down, fail) while the brokers are off.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for id in cut.iter() {
            cluster.spawn_again(*id);
        }
        for id in cut.iter() {
            cluster.wait_ready(*id).await;
        }
        let admin = cluster.admin(1).await;
        probe_every_partition(&admin, "power").await;
        stop.store(true, Ordering::Relaxed);
        for producer in producers {
            producer.await.expect("producer task");
        }
        let stored = read_all(&admin, "power", PARTITIONS).await;
        let acked = acked.lock().expect("lock").clone();
        let violations = check(&acked, &stored);
        assert!(
            violations.is_empty(),
            "round {round} (power cut to {cut:?}, {} acknowledged): {}",
            acked.len(),
            summary(&violations)
        );
        eprintln!(
            "round {round}: power cut to {cut:?}, {} acknowledged so far, 0 violations",
            acked.len()
        );
    }
}

/// A single broker whose disk starts failing `fsync` (or `write`) while producers run: it stops
/// (aborts) instead of acknowledging with unknown durability; restarted on a healthy disk it has
/// every record it acknowledged.
async fn a_failing_disk_stops_the_broker(fault_env: &str) {
    let marker_dir = tempfile::tempdir().expect("temp dir");
    let marker = marker_dir.path().join("failing");
    let marker_text = marker.display().to_string();
    let mut broker = BrokerProcess::start_with(
        &[(POWER_LOSS_ENV, "1"), (fault_env, marker_text.as_str())],
        "",
    )
    .await;
    let admin = broker.admin().await;
    common::create_topic(&admin, "failing", PARTITIONS, 1).await;
    let (acked, producers) = start_producers(&admin, "failing", "failing");
    wait_acked(&acked, 1000, 60).await;
    std::fs::write(&marker, "").expect("marker");
    let status = wait_for("the broker to stop on the disk error", 30, || {
        let status = broker.exited();
        async move { status }
    })
    .await;
    for producer in producers {
        producer.await.expect("producer task");
    }
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "the broker aborts ({status}); log:\n{}",
        broker.log()
    );
    assert!(
        broker.log().contains("durability unknown, aborting"),
        "the log says why; log:\n{}",
        broker.log()
    );
    std::fs::remove_file(&marker).expect("remove marker");
    broker.restart().await;
    let stored = read_all(&broker.admin().await, "failing", PARTITIONS).await;
    let acked = acked.lock().expect("lock").clone();
    let violations = check(&acked, &stored);
    assert!(violations.is_empty(), "{}", summary(&violations));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_error_stops_the_broker_and_a_restart_recovers_every_acknowledged_record() {
    a_failing_disk_stops_the_broker(SYNC_FAIL_FILE_ENV).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_error_stops_the_broker_and_a_restart_recovers_every_acknowledged_record() {
    a_failing_disk_stops_the_broker(WRITE_FAIL_FILE_ENV).await;
}

/// A follower's disk fails: that broker stops, the other two go on acknowledging, and the
/// restarted broker catches up with nothing acknowledged lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_fsync_fails_stops_and_the_others_go_on() {
    let marker_dir = tempfile::tempdir().expect("temp dir");
    let marker = marker_dir.path().join("failing");
    let mut cluster = TestCluster::start_env(3, "", &[(POWER_LOSS_ENV, "1")]).await;
    cluster
        .node_mut(3)
        .env
        .push((SYNC_FAIL_FILE_ENV.to_string(), marker.display().to_string()));
    cluster.restart(3).await;
    let admin = cluster.admin(1).await;
    common::create_topic(&admin, "follower", PARTITIONS, 3).await;
    probe_every_partition(&admin, "follower").await;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = vec![cluster.admin(1).await, cluster.admin(2).await];
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            tokio::spawn(produce_until_stopped(
                clients.clone(),
                "follower".to_string(),
                format!("follower-p{p}"),
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();
    wait_acked(&acked, 1000, 60).await;
    std::fs::write(&marker, "").expect("marker");
    let status = wait_for("broker 3 to stop on the fsync error", 30, || {
        let status = cluster.exited(3);
        async move { status }
    })
    .await;
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "broker 3 aborts ({status})"
    );
    assert!(cluster
        .node(3)
        .log()
        .contains("durability unknown, aborting"));
    let after_stop = acked.lock().expect("lock").len();
    wait_acked(&acked, after_stop + 1000, 90).await;
    std::fs::remove_file(&marker).expect("remove marker");
    cluster.restart(3).await;
    wait_for("broker 3 in sync on every partition", 90, || async {
        let view = admin.cluster().await.ok()?;
        let synced = view
            .partitions
            .iter()
            .filter(|p| p.topic == "follower")
            .all(|p| p.lag.len() == 3 && p.lag.values().all(|lag| *lag == 0));
        synced.then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await.expect("producer task");
    }
    let client3 = cluster.admin(3).await;
    probe_every_partition(&client3, "follower").await;
    let stored = read_all(&client3, "follower", PARTITIONS).await;
    let acked = acked.lock().expect("lock").clone();
    let violations = check(&acked, &stored);
    assert!(violations.is_empty(), "{}", summary(&violations));
}
