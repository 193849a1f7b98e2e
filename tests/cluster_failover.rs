//! Failover with real broker processes: SIGKILL the leader of a partition while producers run.
//! Writes resume on a new leader; afterwards every acknowledged record is present exactly once at
//! its acknowledged offset in the redb log of every replica, and the killed broker, restarted,
//! has caught up. SIGSTOP of a leader past the election timeout: a new leader serves, the old one
//! steps down after SIGCONT, and the replicas do not diverge.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::cluster::{wait_for, TestCluster};
use common::durability::replica_values;
use palisade::client::Client;
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};

const TOPIC: &str = "events";

#[derive(Default)]
struct Outcome {
    /// value → acknowledged offset (partition 0).
    acked: BTreeMap<String, u64>,
    /// Acknowledgements after the kill, with their time.
    acked_at: Vec<Instant>,
}

async fn setup() -> (TestCluster, Client, u64, u64) {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: TOPIC.into(),
            partitions: Some(3),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let (leader, group) = wait_for("partition 0 fully in sync", 60, || async {
        let view = admin.cluster().await.ok()?;
        let partition = view
            .partitions
            .iter()
            .find(|p| p.topic == TOPIC && p.partition == 0)?;
        let synced = partition.lag.len() == 3 && partition.lag.values().all(|lag| *lag == 0);
        synced.then_some((partition.leader, partition.group))
    })
    .await;
    (
        cluster,
        admin,
        leader.expect("leader"),
        group.expect("group"),
    )
}

/// Producers write batches of 10 distinct values to partition 0 until `stop`, each through its
/// own broker, recording what was acknowledged at which offset.
fn start_producers(
    clients: Vec<Client>,
    stop: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    clients
        .into_iter()
        .enumerate()
        .map(|(producer, client)| {
            let stop = stop.clone();
            let outcome = outcome.clone();
            tokio::spawn(async move {
                let mut sequence = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let values: Vec<String> = (0..10)
                        .map(|i| format!("p{producer}-{sequence}-{i}"))
                        .collect();
                    sequence += 1;
                    let records = values
                        .iter()
                        .map(|value| ProduceRecord {
                            key: None,
                            value: Some(value.clone()),
                            value_b64: None,
                            headers: BTreeMap::new(),
                            partition: Some(0),
                        })
                        .collect();
                    if let Ok(answer) = client.produce(TOPIC, &ProduceRequest { records }).await {
                        let mut outcome = outcome.lock().expect("lock");
                        for (value, position) in values.iter().zip(&answer.offsets) {
                            assert_eq!(position.partition, 0);
                            outcome.acked.insert(value.clone(), position.offset);
                        }
                        outcome.acked_at.push(Instant::now());
                    }
                }
            })
        })
        .collect()
}

/// Every replica holds the same log; every acknowledged value is in it exactly once, at its
/// acknowledged offset; no value appears twice; offsets are dense. Returns the log length.
fn verify(logs: &[BTreeMap<u64, String>], acked: &BTreeMap<String, u64>) -> Result<usize, String> {
    for (position, log) in logs.iter().enumerate().skip(1) {
        if log != &logs[0] {
            return Err(format!("replica {} diverges from the first", position + 1));
        }
    }
    let log = &logs[0];
    if log.keys().copied().ne(0..log.len() as u64) {
        return Err("offsets are not dense".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for value in log.values() {
        if !seen.insert(value) {
            return Err(format!("value {value} stored twice"));
        }
    }
    for (value, offset) in acked {
        if log.get(offset) != Some(value) {
            return Err(format!("acknowledged {value} is not at offset {offset}"));
        }
    }
    Ok(log.len())
}

/// Checks the stopped cluster's replicas, after showing on copies of their logs that `verify`
/// catches a lost acknowledged record, a duplicate and a diverging replica.
fn check_replicas(cluster: &TestCluster, group: u64, acked: &BTreeMap<String, u64>) -> usize {
    let logs: Vec<BTreeMap<u64, String>> = cluster
        .nodes
        .iter()
        .map(|node| replica_values(&node.dir.join("data"), group).expect("group exists"))
        .collect();
    let (value, offset) = acked.iter().next().expect("something was acknowledged");
    let mut lost = logs.clone();
    for log in &mut lost {
        log.insert(*offset, format!("{value}-overwritten"));
    }
    assert!(
        verify(&lost, acked).is_err(),
        "a lost record must be caught"
    );
    let mut duplicated = logs.clone();
    for log in &mut duplicated {
        let next = log.len() as u64;
        log.insert(next, value.clone());
    }
    assert!(
        verify(&duplicated, acked).is_err(),
        "a duplicate must be caught"
    );
    let mut diverged = logs.clone();
    diverged[2].insert(*offset, "other".into());
    assert!(
        verify(&diverged, acked).is_err(),
        "divergence must be caught"
    );
    verify(&logs, acked).unwrap_or_else(|error| panic!("{error}"))
}

fn terminate_all(cluster: &mut TestCluster) {
    for id in cluster.nodes.iter().map(|n| n.id).collect::<Vec<_>>() {
        cluster.terminate(id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_leader_loses_no_acknowledged_record() {
    let (mut cluster, admin, leader, group) = setup().await;
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let mut clients = Vec::new();
    for id in survivors.iter().chain(survivors.iter()) {
        clients.push(cluster.admin(*id).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let producers = start_producers(clients, stop.clone(), outcome.clone());
    wait_for("acknowledged writes before the kill", 60, || async {
        (outcome.lock().expect("lock").acked.len() >= 300).then_some(())
    })
    .await;
    cluster.kill(leader);
    let killed_at = Instant::now();
    let resumed = wait_for("writes resuming after the kill", 60, || async {
        let outcome = outcome.lock().expect("lock");
        outcome
            .acked_at
            .iter()
            .find(|t| **t > killed_at)
            .map(|t| *t - killed_at)
    })
    .await;
    eprintln!("writes resumed {resumed:?} after SIGKILL of leader {leader}");
    let before = outcome.lock().expect("lock").acked.len();
    wait_for("more writes on the new leader", 60, || async {
        (outcome.lock().expect("lock").acked.len() >= before + 300).then_some(())
    })
    .await;
    cluster.restart(leader).await;
    let resumed_writes = outcome.lock().expect("lock").acked.len();
    wait_for("writes with the old leader back", 60, || async {
        (outcome.lock().expect("lock").acked.len() >= resumed_writes + 100).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await.expect("producer");
    }
    wait_for("every replica caught up", 60, || async {
        let view = admin.cluster().await.ok()?;
        let partition = view.partitions.iter().find(|p| p.group == Some(group))?;
        (partition.lag.len() == 3 && partition.lag.values().all(|lag| *lag == 0)).then_some(())
    })
    .await;
    terminate_all(&mut cluster);
    let acked = outcome.lock().expect("lock").acked.clone();
    let stored = check_replicas(&cluster, group, &acked);
    assert!(stored >= acked.len());
    eprintln!(
        "{} acknowledged, {stored} stored on each of 3 replicas",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_steps_down() {
    let (mut cluster, admin, leader, group) = setup().await;
    let other = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .expect("other");
    let client = cluster.admin(other).await;
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let producers = start_producers(vec![client], stop.clone(), outcome.clone());
    wait_for("writes before the pause", 60, || async {
        (outcome.lock().expect("lock").acked.len() >= 100).then_some(())
    })
    .await;
    cluster.signal(leader, libc::SIGSTOP);
    let paused_at = Instant::now();
    let observer = cluster.admin(other).await;
    let new_leader = wait_for("a new leader while the old one is paused", 60, || async {
        let view = observer.cluster().await.ok()?;
        let partition = view.partitions.iter().find(|p| p.group == Some(group))?;
        partition.leader.filter(|l| *l != leader)
    })
    .await;
    wait_for("writes on the new leader", 60, || async {
        let outcome = outcome.lock().expect("lock");
        outcome
            .acked_at
            .iter()
            .any(|t| *t > paused_at)
            .then_some(())
    })
    .await;
    cluster.signal(leader, libc::SIGCONT);
    // The old leader learns of the newer term and follows; all three are in sync again.
    wait_for("the old leader rejoining as a follower", 60, || async {
        let view = admin.cluster().await.ok()?;
        let partition = view.partitions.iter().find(|p| p.group == Some(group))?;
        let synced = partition.lag.len() == 3 && partition.lag.values().all(|lag| *lag == 0);
        (synced && partition.leader.is_some()).then_some(())
    })
    .await;
    let more = outcome.lock().expect("lock").acked.len() + 50;
    wait_for("writes after the resume", 60, || async {
        (outcome.lock().expect("lock").acked.len() >= more).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await.expect("producer");
    }
    eprintln!("leader {leader} paused; {new_leader} took over");
    wait_for("every replica caught up", 60, || async {
        let view = admin.cluster().await.ok()?;
        let partition = view.partitions.iter().find(|p| p.group == Some(group))?;
        (partition.lag.len() == 3 && partition.lag.values().all(|lag| *lag == 0)).then_some(())
    })
    .await;
    terminate_all(&mut cluster);
    let acked = outcome.lock().expect("lock").acked.clone();
    check_replicas(&cluster, group, &acked);
}
