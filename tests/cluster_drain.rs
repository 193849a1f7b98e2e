//! A stopping broker (SIGTERM) hands every leadership it holds, the controller's included, to an
//! in-sync replica before it exits, while writes continue through the other brokers: none of
//! them fails, nothing acknowledged is lost, and the broker, restarted, is no longer marked
//! draining and leads again. The negative control stops a broker with `drain_timeout_ms = 0`:
//! its log says it stopped while leading, which the first test's check would have caught.

mod common;

use common::cluster::{wait_for, TestCluster};
use common::load::{missing, Load};
use palisade::client::Client;
use palisade::wire::ClusterView;

const TOPIC: &str = "drain";
const PARTITIONS: u32 = 6;
const DRAINED: &str = "drained: this broker leads no group";
const NOT_DRAINED: &str = "drain deadline passed: stopping while still leading";

fn leads(view: &ClusterView, broker: u64) -> usize {
    view.partitions
        .iter()
        .filter(|p| p.topic == TOPIC && p.leader == Some(broker))
        .count()
}

/// Waits until every partition is in sync and every broker leads at least one; returns the
/// controller leader.
async fn settled(admin: &Client) -> u64 {
    wait_for(
        "partitions in sync, leaders on every broker",
        90,
        || async {
            let view = admin.cluster().await.ok()?;
            let partitions: Vec<_> = view
                .partitions
                .iter()
                .filter(|p| p.topic == TOPIC)
                .collect();
            let synced = partitions.len() == PARTITIONS as usize
                && partitions
                    .iter()
                    .all(|p| p.lag.len() == 3 && p.lag.values().all(|lag| *lag == 0));
            let spread = (1..=3).all(|broker| leads(&view, broker) > 0);
            (synced && spread)
                .then_some(view.controller.leader)
                .flatten()
        },
    )
    .await
}

async fn clients(cluster: &TestCluster) -> Vec<(u64, Client)> {
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push((id, cluster.admin(id).await));
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_broker_hands_its_leaderships_over_and_no_write_fails() {
    let mut cluster = TestCluster::start_logging(3, "", "warn,palisade::app=info").await;
    let admin = cluster.admin(1).await;
    common::create_topic(&admin, TOPIC, PARTITIONS, 3).await;
    let target = settled(&admin).await;
    let observer = cluster.admin(if target == 1 { 2 } else { 1 }).await;
    let load = Load::start(TOPIC, PARTITIONS, clients(&cluster).await);
    load.avoid
        .store(target, std::sync::atomic::Ordering::Relaxed);
    load.wait_acked(300, 60).await;

    let status = cluster.terminate(target);
    assert!(status.success(), "broker {target} exited with {status}");
    load.wait_acked(300, 60).await;
    let outcome = load.stop().await;

    let log = cluster.node(target).log();
    assert!(
        log.contains(DRAINED),
        "broker {target} did not report a complete drain; log:\n{log}"
    );
    assert!(
        outcome.failures.is_empty(),
        "{} writes failed while broker {target} stopped: {:?}",
        outcome.failures.len(),
        &outcome.failures[..outcome.failures.len().min(5)]
    );
    let lost = missing(&observer, TOPIC, &outcome).await;
    assert!(
        lost.is_empty(),
        "{} acknowledged records missing: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // Restarted, the broker reports itself again: the draining mark is gone and the balancer
    // hands it leaderships back.
    cluster.restart(target).await;
    wait_for("the restarted broker up and leading again", 90, || async {
        let view = observer.cluster().await.ok()?;
        let up = view
            .brokers
            .iter()
            .any(|b| b.id == target && b.state == "up");
        (up && leads(&view, target) > 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_drain_a_stopping_broker_exits_while_leading() {
    let mut cluster =
        TestCluster::start_logging(3, "drain_timeout_ms = 0", "warn,palisade::app=info").await;
    let admin = cluster.admin(1).await;
    common::create_topic(&admin, TOPIC, PARTITIONS, 3).await;
    let target = settled(&admin).await;
    let status = cluster.terminate(target);
    assert!(status.success(), "broker {target} exited with {status}");
    let log = cluster.node(target).log();
    assert!(
        log.contains(NOT_DRAINED) && !log.contains(DRAINED),
        "broker {target} should have stopped while leading; log:\n{log}"
    );
}
