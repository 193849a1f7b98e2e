//! The StatefulSet of deploy/kubernetes simulated with real broker processes (`pod_support`):
//! three pods, each in its own network namespace with its own address and host name, configured
//! only by the manifests' environment, find each other by their StatefulSet DNS names (a hosts
//! file per namespace plays the headless service) and found the cluster over mutual TLS with
//! certificates from `palisade certs init --name`. Under a producer: one pod is SIGKILLed and
//! comes back with a new address (its name re-pointed in every hosts file); a fourth pod started
//! from the same environment joins once registered by its DNS name and receives replicas; it is
//! then decommissioned, emptied and forgotten. Every acknowledged record is read back at its
//! offset after the move and again at the end.
//!
//! Needs root (namespaces, mounts). `PALISADE_TEST_LOG` sets the brokers' log filter.

mod common;
mod pod_support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::wait_for;
use common::durability::{self, Acked};
use common::manifests::pod_domain_name;
use palisade::client::Client;
use palisade::wire::{AddBroker, ClusterView};
use pod_support::{broker_id, pod_name, PodSet};

const TOPIC: &str = "pods";
const PARTITIONS: u32 = 3;
const FOUNDERS: u64 = 3;
/// The pod that is killed and comes back elsewhere, and the host part of its new address.
const MOVED: u64 = 1;
const MOVED_HOST: u8 = 102;
/// The pod `kubectl scale --replicas=4` adds.
const FOURTH: u64 = 3;
/// Deadline of every wait (start-up, elections, catch-up, replica moves).
const WAIT_SECONDS: u64 = 60;
/// Records acknowledged between two steps of the scenario.
const RECORDS_PER_STEP: usize = 200;
/// The peer port the manifests listen on and advertise.
const PEER_PORT: u16 = 9441;

/// Test tuning on top of the manifests: balancer rounds every 300 ms instead of 2 s, so that
/// replica moves finish in seconds.
const TUNING: &[(&str, &str)] = &[("PALISADE_CLUSTER_BALANCE_INTERVAL_MS", "300")];

fn replica_counts(view: &ClusterView) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for partition in &view.partitions {
        for broker in &partition.replicas {
            *counts.entry(*broker).or_default() += 1;
        }
    }
    counts
}

/// Every partition has three distinct replicas and a leader, each replica close to its commit
/// index (the producer runs, so the followers' last appends may be in flight).
fn healthy(view: &ClusterView) -> bool {
    !view.partitions.is_empty()
        && view.partitions.iter().all(|partition| {
            let mut distinct = partition.replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            distinct.len() == 3
                && partition.leader.is_some()
                && partition.lag.len() == 3
                && partition.lag.values().all(|lag| *lag <= 100)
        })
}

async fn wait_view(
    client: &Client,
    what: &str,
    done: impl Fn(&ClusterView) -> bool,
) -> ClusterView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(WAIT_SECONDS);
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
            "{what} never happened within {WAIT_SECONDS} s; last view: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first IPv4 address `getent hosts` prints for `name`, or `None` when it does not resolve.
fn first_address(output: Option<String>) -> Option<IpAddr> {
    output?.split_whitespace().next()?.parse().ok()
}

/// Names resolve per namespace: each pod's hosts file maps every published pod's DNS name to
/// its current address, its own short host name resolves only in its own namespace, and the
/// root namespace (where the clients are) knows none of them.
fn assert_resolution(pods: &PodSet, ordinals: &[u64]) {
    for ordinal in ordinals {
        let id = broker_id(*ordinal);
        for other in ordinals {
            let name = pod_domain_name(&pod_name(*other));
            let resolved = first_address(pods.network.run_inside(id, "getent", &["hosts", &name]));
            assert_eq!(
                resolved,
                Some(pods.network.address(broker_id(*other))),
                "{name} in pod {ordinal}'s namespace"
            );
            let short = pod_name(*other);
            let resolved = pods.network.run_inside(id, "getent", &["hosts", &short]);
            assert_eq!(
                resolved.is_some(),
                other == ordinal,
                "the short name {short} in pod {ordinal}'s namespace: {resolved:?}"
            );
        }
    }
    let name = pod_domain_name(&pod_name(ordinals[0]));
    let root = std::process::Command::new("getent")
        .args(["hosts", &name])
        .output()
        .expect("getent");
    assert!(!root.status.success(), "{name} resolves outside the pods");
}

/// Every record acknowledged so far is stored once at its offset, offsets dense, read through
/// pod `ordinal`.
async fn assert_acked_stored(pods: &PodSet, ordinal: u64, acked: &Acked, when: &str) {
    let snapshot = acked.lock().expect("lock").clone();
    let client = pods.admin(ordinal).await;
    // A fetch may fail while leaderships move (the balancer evens them out); reading is
    // harmless, so a failed read is read again from the start.
    let stored = wait_for("a complete read of the topic", WAIT_SECONDS, || {
        let client = &client;
        async move {
            match durability::try_read_all(client, TOPIC, PARTITIONS).await {
                Ok(stored) => Some(stored),
                Err(error) => {
                    eprintln!("{when}: {error}; reading again");
                    None
                }
            }
        }
    })
    .await;
    let violations = durability::check(&snapshot, &stored);
    assert!(
        violations.is_empty(),
        "{when}: {}",
        durability::summary(&violations)
    );
    let total: usize = stored.values().map(Vec::len).sum();
    eprintln!(
        "{when}: {} acknowledged records all at their offsets ({total} stored)",
        snapshot.len()
    );
}

async fn wait_more_acked(acked: &Acked, what: &str) {
    let target = acked.lock().expect("lock").len() + RECORDS_PER_STEP;
    wait_for(what, WAIT_SECONDS, || async {
        (acked.lock().expect("lock").len() >= target).then_some(())
    })
    .await;
}

/// Starts the three founding pods and waits until the cluster they found is healthy.
async fn found(pods: &mut PodSet) {
    let founders: Vec<u64> = (0..FOUNDERS).collect();
    let moved_address = pods.network.address_at(MOVED_HOST);
    let addresses: Vec<(u64, IpAddr)> = founders
        .iter()
        .map(|ordinal| (*ordinal, pods.network.address(broker_id(*ordinal))))
        .chain([(MOVED, moved_address)])
        .collect();
    pods.issue_certificates(&founders, &addresses);
    for ordinal in &founders {
        pods.publish(*ordinal);
    }
    assert_resolution(pods, &founders);
    for ordinal in &founders {
        pods.start(*ordinal);
    }
    for ordinal in &founders {
        pods.wait_ready(*ordinal, WAIT_SECONDS).await;
        // The running broker sees its namespace's hosts file, not the machine's.
        assert!(
            pods.hosts_seen_by(*ordinal)
                .contains(&pod_domain_name(&pod_name(*ordinal))),
            "pod {ordinal} reads its own hosts file"
        );
    }
}

/// Each broker is who its pod's host name says, and advertises its pod's DNS names.
fn assert_identities(view: &ClusterView, ordinals: &[u64]) {
    let mut ids: Vec<u64> = view.brokers.iter().map(|broker| broker.id).collect();
    ids.sort_unstable();
    let expected: Vec<u64> = ordinals.iter().map(|o| broker_id(*o)).collect();
    assert_eq!(ids, expected, "{view:#?}");
    for broker in &view.brokers {
        let name = pod_domain_name(&pod_name(broker.id - 1));
        assert_eq!(broker.peer, format!("{name}:{PEER_PORT}"), "{broker:?}");
        assert!(broker.http.contains(&name), "{broker:?}");
    }
}

/// SIGKILL of pod `MOVED`; its record disappears, writes go on, and it comes back at a new
/// address that only the re-written hosts files tell the other brokers.
async fn move_a_pod(pods: &mut PodSet, admin: &Client, acked: &Acked) {
    let old_address = pods.network.address(broker_id(MOVED));
    pods.kill(MOVED);
    pods.withdraw(MOVED);
    // The others look the pod up by its name, which no longer resolves (a WARN line per dial).
    let moved_name = pod_domain_name(&pod_name(MOVED));
    let unresolved = format!("cannot resolve {moved_name}:{PEER_PORT}");
    pods.wait_logged(0, &unresolved, WAIT_SECONDS).await;
    wait_more_acked(acked, "writes while a pod is gone").await;

    pods.network.move_to(broker_id(MOVED), MOVED_HOST);
    let new_address = pods.network.address(broker_id(MOVED));
    assert_ne!(old_address, new_address);
    pods.publish(MOVED);
    assert_resolution(pods, &(0..FOUNDERS).collect::<Vec<_>>());
    // The running brokers read the new record: their mounts follow the rewritten file.
    for ordinal in (0..FOUNDERS).filter(|o| *o != MOVED) {
        let seen = pods.hosts_seen_by(ordinal);
        assert!(
            seen.contains(&format!("{new_address}\t{moved_name}"))
                && !seen.contains(&old_address.to_string()),
            "pod {ordinal} sees:\n{seen}"
        );
    }
    pods.start(MOVED);
    pods.wait_ready(MOVED, WAIT_SECONDS).await;
    let moved_id = broker_id(MOVED);
    wait_view(admin, "the moved pod up and in sync", |view| {
        view.brokers
            .iter()
            .any(|broker| broker.id == moved_id && broker.state == "up")
            && healthy(view)
    })
    .await;
    wait_more_acked(acked, "writes after the pod came back").await;
    assert_acked_stored(
        pods,
        MOVED,
        acked,
        "after the move, read through the moved pod",
    )
    .await;
}

/// `kubectl scale --replicas=4`: the new pod starts with the same environment, waits to be
/// registered, is registered by its DNS name and receives replicas.
async fn scale_out(pods: &mut PodSet, admin: &Client, acked: &Acked) {
    let id = broker_id(FOURTH);
    pods.network.add(id);
    let address = pods.network.address(id);
    pods.issue_certificates(&[FOURTH], &[(FOURTH, address)]);
    pods.publish(FOURTH);
    let all: Vec<u64> = (0..=FOURTH).collect();
    assert_resolution(pods, &all);
    pods.start(FOURTH);
    // It runs as a joiner: listening for the controller on its peer port, serving no API until
    // an admin registers it, and unknown to the cluster.
    pods.wait_listening(FOURTH, PEER_PORT, WAIT_SECONDS).await;
    assert!(
        pods.client(FOURTH).ready().await.is_err(),
        "an unregistered broker is not ready"
    );
    let view = admin.cluster().await.expect("cluster view");
    assert!(
        !view.brokers.iter().any(|broker| broker.id == id),
        "{view:#?}"
    );
    pods.assert_running(FOURTH);
    let peer = format!("{}:{PEER_PORT}", pod_domain_name(&pod_name(FOURTH)));
    admin
        .add_broker(&AddBroker { id, peer })
        .await
        .expect("register the fourth broker");
    pods.wait_ready(FOURTH, WAIT_SECONDS).await;
    let spread = wait_view(admin, "replicas spread onto the fourth broker", |view| {
        let counts = replica_counts(view);
        let (low, high) = (counts.values().min(), counts.values().max());
        counts.len() == 4
            && high.zip(low).is_some_and(|(high, low)| high - low <= 1)
            && healthy(view)
    })
    .await;
    assert_identities(&spread, &all);
    eprintln!("after the scale-out: {:?}", replica_counts(&spread));
    wait_more_acked(acked, "writes with four brokers").await;
}

/// Scaling back down: the highest ordinal is decommissioned, emptied and forgotten, then its
/// pod stops and its volume is deleted.
async fn scale_in(pods: &mut PodSet, admin: &Client, acked: &Acked) {
    let id = broker_id(FOURTH);
    admin
        .decommission_broker(id)
        .await
        .expect("decommission the fourth broker");
    let emptied = wait_view(admin, "the fourth broker emptied and forgotten", |view| {
        !replica_counts(view).contains_key(&id)
            && !view.brokers.iter().any(|broker| broker.id == id)
            && healthy(view)
    })
    .await;
    assert_identities(&emptied, &(0..FOUNDERS).collect::<Vec<_>>());
    let status = pods.terminate(FOURTH);
    assert!(
        status.success(),
        "the forgotten broker stops cleanly: {status}"
    );
    pods.withdraw(FOURTH);
    pods.delete_volume(FOURTH);
    wait_more_acked(acked, "writes after the scale-in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_pods_found_move_scale_out_and_in_keeping_every_record() {
    let started = Instant::now();
    let mut pods = PodSet::create(FOUNDERS, TUNING);
    found(&mut pods).await;
    let admin = pods.admin(0).await;
    let formed = wait_view(&admin, "three brokers formed", |view| {
        view.brokers.len() == 3
    })
    .await;
    assert_identities(&formed, &(0..FOUNDERS).collect::<Vec<_>>());
    common::create_topic(&admin, TOPIC, PARTITIONS, 3).await;
    wait_view(&admin, "a healthy three-broker cluster", healthy).await;

    // One producer through the pods that stay put.
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let through = vec![pods.admin(0).await, pods.admin(2).await];
    let producer = tokio::spawn(durability::produce_until_stopped(
        through,
        TOPIC.to_string(),
        "pods".to_string(),
        acked.clone(),
        stop.clone(),
    ));
    wait_more_acked(&acked, "writes before the faults").await;

    move_a_pod(&mut pods, &admin, &acked).await;
    scale_out(&mut pods, &admin, &acked).await;
    scale_in(&mut pods, &admin, &acked).await;

    stop.store(true, Ordering::Relaxed);
    producer.await.expect("producer");
    for ordinal in 0..FOUNDERS {
        let when = format!("at the end, read through pod {ordinal}");
        assert_acked_stored(&pods, ordinal, &acked, &when).await;
    }
    eprintln!("the simulation ran {:?}", started.elapsed());
}
