//! Failover time of a partition: a 3-broker cluster on this machine, a producer writing one-record
//! batches to a partition with replication factor 3 through a broker that does not lead it, then
//! SIGKILL of the leader. Measured: from the kill to the acknowledgement of the first write sent
//! after it. The killed
//! broker is restarted and caught up before the next trial.
//!
//! `cargo bench --bench failover` (PALISADE_FAILOVER_TRIALS sets the number of trials, 10 by
//! default). With PALISADE_FAILOVER_IDLE=1 the producer stops before the kill and every replica
//! is left to quiesce first (`palisade_replicas{state="active"} 0` on every broker), so the time
//! includes noticing a failed leader of an idle group; writing starts again right after the kill.
//! A measurement, never a test: it asserts nothing about the times.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use palisade::client::Client;
use palisade::wire::{ClusterView, CreateTopic, ProduceRecord, ProduceRequest};

const TOPIC: &str = "failover";

fn main() {
    let trials: usize = std::env::var("PALISADE_FAILOVER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(trials));
}

async fn partition_view(client: &Client) -> Option<(Option<u64>, bool)> {
    let view: ClusterView = client.cluster().await.ok()?;
    let partition = view.partitions.iter().find(|p| p.topic == TOPIC)?;
    // Settled: every replica caught up and the leader is the preferred replica, where the
    // balancer moves it after a restart (so the leader seen here is the one that gets killed).
    let synced = partition.lag.len() == 3
        && partition.lag.values().all(|lag| *lag == 0)
        && partition.leader == partition.replicas.first().copied();
    Some((partition.leader, synced))
}

async fn wait_synced(client: &Client) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some((Some(leader), true)) = partition_view(client).await {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "the partition did not get back in sync"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether broker `id` reports no active (unquiesced) partition replica.
async fn all_quiet(cluster: &TestCluster, id: u64) -> bool {
    let Ok(response) = common::raw_client(&cluster.ca)
        .get(format!("{}/metrics", cluster.node(id).url))
        .send()
        .await
    else {
        return false;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .any(|line| line.trim() == "palisade_replicas{state=\"active\"} 0")
}

fn start_producer(
    client: Client,
    trial: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<(Instant, Instant)>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sequence = 0u64;
        while !stop.load(Ordering::Relaxed) {
            sequence += 1;
            let records = vec![ProduceRecord {
                key: None,
                value: Some(format!("t{trial}-{sequence}")),
                value_b64: None,
                headers: BTreeMap::new(),
                partition: Some(0),
            }];
            let sent = Instant::now();
            if client
                .produce(TOPIC, &ProduceRequest { records })
                .await
                .is_ok()
            {
                acks.lock().expect("lock").push((sent, Instant::now()));
            }
        }
    })
}

async fn run(trials: usize) {
    let idle = std::env::var("PALISADE_FAILOVER_IDLE").is_ok();
    let mut cluster = TestCluster::start(3).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: TOPIC.into(),
            partitions: Some(1),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let mut times = Vec::new();
    for trial in 0..trials {
        let observer = cluster.admin(1).await;
        let leader = wait_synced(&observer).await;
        let via = [1, 2, 3].into_iter().find(|b| *b != leader).expect("other");
        let client = cluster.admin(via).await;
        let stop = Arc::new(AtomicBool::new(false));
        // (sent, acknowledged) of each successful produce.
        let acks: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
        let mut producer = start_producer(client.clone(), trial, stop.clone(), acks.clone());
        while acks.lock().expect("lock").len() < 50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if idle {
            stop.store(true, Ordering::Relaxed);
            (&mut producer).await.expect("producer");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let mut quiet = true;
                for id in 1..=3 {
                    quiet &= all_quiet(&cluster, id).await;
                }
                if quiet {
                    break;
                }
                assert!(Instant::now() < deadline, "the replicas never quiesced");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop.store(false, Ordering::Relaxed);
        }
        cluster.kill(leader);
        let killed = Instant::now();
        if idle {
            producer = start_producer(client.clone(), trial, stop.clone(), acks.clone());
        }
        let resumed = loop {
            // The first write sent after the kill and acknowledged: one in flight at the kill
            // may still have been committed by the old leader.
            let first = acks
                .lock()
                .expect("lock")
                .iter()
                .find(|(sent, _)| *sent > killed)
                .map(|(_, at)| *at);
            if let Some(at) = first {
                break at - killed;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "writes never resumed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        stop.store(true, Ordering::Relaxed);
        producer.await.expect("producer");
        let mode = if idle { "idle" } else { "busy" };
        println!("trial {trial} ({mode}): leader {leader} killed, writes resumed after {resumed:?} (via broker {via})");
        times.push(resumed);
        cluster.restart(leader).await;
    }
    times.sort();
    let millis = |d: &Duration| d.as_secs_f64() * 1000.0;
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let median = &times[times.len() / 2];
        println!(
            "failover over {} trials: min {:.0} ms, median {:.0} ms, max {:.0} ms",
            times.len(),
            millis(first),
            millis(median),
            millis(last)
        );
    }
}
