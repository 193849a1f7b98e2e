//! The balancer with real broker processes: a fourth broker joins a running cluster and receives
//! replicas while a producer runs, with every acknowledged record kept; decommissioning a broker
//! moves every replica off it with the replication factor kept, then forgets the broker.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::TestCluster;
use palisade::client::Client;
use palisade::wire::{AddBroker, ClusterView, CreateTopic, ProduceRecord, ProduceRequest};

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 6;

async fn wait_view(
    client: &Client,
    what: &str,
    done: impl Fn(&ClusterView) -> bool,
) -> ClusterView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut last = None;
    loop {
        if let Ok(view) = client.cluster().await {
            if done(&view) {
                return view;
            }
            last = Some(view);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened; last view: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Replica counts per broker over all partitions (the audit partition included).
fn replica_counts(view: &ClusterView) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for partition in &view.partitions {
        for broker in &partition.replicas {
            *counts.entry(*broker).or_default() += 1;
        }
    }
    counts
}

/// Every partition has `replicas` distinct replicas with a leader, all close to its commit
/// index (a producer is running, so the followers' last appends may still be in flight).
fn healthy(view: &ClusterView, replicas: usize) -> bool {
    view.partitions.iter().all(|p| {
        let mut distinct = p.replicas.clone();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.len() == replicas
            && p.leader.is_some()
            && p.lag.len() == replicas
            && p.lag.values().all(|lag| *lag <= 100)
    })
}

struct Producer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u32, u64, String)>>>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn start_producer(client: Client) -> Producer {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let task = {
        let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
        tokio::spawn(async move {
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let values: Vec<String> = (0..PARTITIONS)
                    .map(|p| format!("v{sequence}-{p}"))
                    .collect();
                sequence += 1;
                let records = values
                    .iter()
                    .enumerate()
                    .map(|(partition, value)| ProduceRecord {
                        key: None,
                        value: Some(value.clone()),
                        value_b64: None,
                        headers: BTreeMap::new(),
                        partition: Some(partition as u32),
                    })
                    .collect();
                match client.produce(TOPIC, &ProduceRequest { records }).await {
                    Ok(answer) => {
                        let mut acked = acked.lock().expect("lock");
                        for (value, position) in values.into_iter().zip(answer.offsets) {
                            acked.push((position.partition, position.offset, value));
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
    };
    Producer {
        stop,
        acked,
        failed,
        task,
    }
}

/// Every acknowledged record is at its offset, read through `client`.
async fn check_acked(client: &Client, acked: &[(u32, u64, String)]) {
    for partition in 0..PARTITIONS {
        let mut stored = Vec::new();
        loop {
            let fetched = client
                .fetch(
                    TOPIC,
                    partition,
                    stored.len() as u64,
                    Some(5000),
                    None,
                    None,
                )
                .await
                .expect("fetch");
            if fetched.records.is_empty() {
                break;
            }
            stored.extend(fetched.records.into_iter().map(|r| r.value.expect("text")));
        }
        for (p, offset, value) in acked.iter().filter(|(p, _, _)| *p == partition) {
            assert_eq!(
                stored.get(*offset as usize),
                Some(value),
                "partition {p} offset {offset}"
            );
        }
        let mut distinct = stored.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            stored.len(),
            "partition {partition} holds a value twice"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_broker_receives_replicas_and_a_decommissioned_one_is_emptied() {
    let mut cluster = TestCluster::start_with(3, "balance_interval_ms = 300\n").await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: TOPIC.into(),
            partitions: Some(PARTITIONS),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    wait_view(&admin, "a healthy three-broker cluster", |v| healthy(v, 3)).await;
    let producer = start_producer(cluster.admin(1).await);

    // Broker 4 joins: it waits until an admin registers it, then receives replicas.
    let peer = format!("127.0.0.1:{}", cluster.start_joining(4).peer_port);
    admin
        .add_broker(&AddBroker { id: 4, peer })
        .await
        .expect("register broker 4");
    cluster.wait_ready(4).await;
    let spread = wait_view(&admin, "replicas spread onto broker 4", |view| {
        let counts = replica_counts(view);
        let (low, high) = (counts.values().min(), counts.values().max());
        counts.len() == 4 && high.zip(low).is_some_and(|(h, l)| h - l <= 1) && healthy(view, 3)
    })
    .await;
    eprintln!("after the join: {:?}", replica_counts(&spread));
    let learner_or_voter = spread.brokers.iter().find(|b| b.id == 4).expect("broker 4");
    assert!(!learner_or_voter.controller.is_empty());

    // Broker 2 is decommissioned: everything moves off it, the replication factor is kept.
    admin.decommission_broker(2).await.expect("decommission 2");
    let emptied = wait_view(&admin, "broker 2 emptied and forgotten", |view| {
        let counts = replica_counts(view);
        !counts.contains_key(&2) && !view.brokers.iter().any(|b| b.id == 2) && healthy(view, 3)
    })
    .await;
    eprintln!("after the decommission: {:?}", replica_counts(&emptied));

    producer.stop.store(true, Ordering::Relaxed);
    producer.task.await.expect("producer");
    let acked = producer.acked.lock().expect("lock").clone();
    let failed = producer.failed.load(Ordering::Relaxed);
    eprintln!(
        "{} records acknowledged, {failed} produce requests failed",
        acked.len()
    );
    assert!(acked.len() > 100, "the producer made progress");
    check_acked(&cluster.admin(3).await, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_a_broker_down_past_the_timeout_are_recreated_elsewhere() {
    let extra = "balance_interval_ms = 300\ndown_timeout_ms = 2000\n";
    let mut cluster = TestCluster::start_with(4, extra).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: TOPIC.into(),
            partitions: Some(4),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let before = wait_view(&admin, "a healthy four-broker cluster", |v| healthy(v, 3)).await;
    // Broker 1 answers the API and stays up; the victim is another broker that holds replicas.
    let victim = *replica_counts(&before)
        .keys()
        .find(|id| **id != 1)
        .expect("a broker with replicas");
    cluster.kill(victim);
    let repaired = wait_view(
        &admin,
        "the replicas re-created off the dead broker",
        |view| {
            let down = view
                .brokers
                .iter()
                .any(|b| b.id == victim && b.state == "down");
            down && !replica_counts(view).contains_key(&victim) && {
                // The dead broker is still a registered member, so its lag entry is gone only
                // once it left every group: check the live replicas only.
                view.partitions.iter().all(|p| {
                    p.replicas.len() == 3
                        && p.leader.is_some()
                        && p.replicas
                            .iter()
                            .all(|r| p.lag.get(&r.to_string()).is_some_and(|lag| *lag <= 100))
                })
            }
        },
    )
    .await;
    eprintln!(
        "after broker {victim} went down: {:?}",
        replica_counts(&repaired)
    );
}
