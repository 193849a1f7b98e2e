//! Idle partitions quiesce on real brokers, and a quiesced partition still fails over: when its
//! leader's broker is killed (the peer link closes) and when it is paused (the link falls silent
//! past `silence_timeout_ms`). Every acknowledged record is read back afterwards.

mod common;

use std::collections::BTreeMap;

use common::cluster::{wait_for, TestCluster};
use palisade::client::Client;
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};

const TOPIC: &str = "quiet";
const PARTITIONS: u32 = 4;

/// `palisade_replicas{state="..."}` of broker `id`, if it answers.
async fn replicas(cluster: &TestCluster, id: u64, state: &str) -> Option<u64> {
    let text = common::raw_client(&cluster.ca)
        .get(format!("{}/metrics", cluster.node(id).url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("palisade_replicas{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|count| count.trim().parse().ok())
}

/// Waits until every partition replica on the brokers in `ids` is quiesced.
async fn wait_all_quiet(cluster: &TestCluster, ids: &[u64]) {
    wait_for("every replica quiesced", 60, || async {
        for id in ids {
            let active = replicas(cluster, *id, "active").await?;
            let quiesced = replicas(cluster, *id, "quiesced").await?;
            if active != 0 || quiesced == 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
}

fn record(value: &str, partition: u32) -> ProduceRecord {
    ProduceRecord {
        key: None,
        value: Some(value.to_string()),
        value_b64: None,
        headers: BTreeMap::new(),
        partition: Some(partition),
    }
}

/// The leader of `partition` as the cluster view reports it.
async fn leader_of(admin: &Client, partition: u32) -> Option<u64> {
    let view = admin.cluster().await.ok()?;
    view.partitions
        .iter()
        .find(|p| p.topic == TOPIC && p.partition == partition)
        .and_then(|p| p.leader)
}

/// Writes one record to `partition` through `client`, retrying until it is acknowledged.
async fn produce_eventually(client: &Client, partition: u32, value: &str) -> u64 {
    let batch = ProduceRequest {
        records: vec![record(value, partition)],
    };
    wait_for(&format!("{value} acknowledged"), 30, || async {
        let answer = client.produce(TOPIC, &batch).await.ok()?;
        answer.offsets.first().map(|position| position.offset)
    })
    .await
}

/// Reads `partition` from offset 0 through `client` and returns the values in offset order.
async fn read_all(client: &Client, partition: u32) -> BTreeMap<u64, String> {
    wait_for("the partition readable", 30, || async {
        let answer = client
            .fetch(TOPIC, partition, 0, Some(1000), None, None)
            .await
            .ok()?;
        let mut values = BTreeMap::new();
        for record in answer.records {
            values.insert(record.offset, record.value.unwrap_or_default());
        }
        Some(values)
    })
    .await
}

/// Creates the topic, writes one record per partition, and waits until all of it is quiet.
async fn quiet_cluster() -> (TestCluster, Client) {
    let cluster = TestCluster::start(3).await;
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
    for partition in 0..PARTITIONS {
        produce_eventually(&admin, partition, &format!("before-{partition}")).await;
    }
    wait_all_quiet(&cluster, &[1, 2, 3]).await;
    (cluster, admin)
}

/// A write to a quiesced partition wakes it and is acknowledged; the group goes quiet again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partitions_quiesce_and_a_write_wakes_them() {
    let (cluster, admin) = quiet_cluster().await;
    let offset = produce_eventually(&admin, 1, "wake-up").await;
    assert_eq!(offset, 1, "after before-1 at offset 0");
    let values = read_all(
        &cluster
            .client(2)
            .with_token(admin.token().expect("token").into()),
        1,
    )
    .await;
    assert_eq!(values.get(&1).map(String::as_str), Some("wake-up"));
    wait_all_quiet(&cluster, &[1, 2, 3]).await;
}

/// Kills (SIGKILL) or pauses (SIGSTOP) the broker leading a quiesced partition, then requires a
/// write to that partition through another broker and every earlier record to be readable.
async fn fails_over_from_a_quiet_leader(signal: Option<i32>) {
    let (mut cluster, admin) = quiet_cluster().await;
    let old = wait_for("a leader of partition 0", 30, || leader_of(&admin, 0)).await;
    let other = (1..=3).find(|id| *id != old).expect("another broker");
    let survivor = cluster.login(other, "admin", common::ADMIN_PASSWORD).await;
    match signal {
        None => cluster.kill(old),
        Some(signal) => cluster.signal(old, signal),
    }
    let offset = produce_eventually(&survivor, 0, "after-failover").await;
    assert_eq!(
        offset, 1,
        "the record written before the failover keeps offset 0"
    );
    let new = wait_for("a new leader of partition 0", 30, || async {
        leader_of(&survivor, 0)
            .await
            .filter(|leader| *leader != old)
    })
    .await;
    assert_ne!(new, old);
    let values = read_all(&survivor, 0).await;
    assert_eq!(values.get(&0).map(String::as_str), Some("before-0"));
    assert_eq!(values.get(&1).map(String::as_str), Some("after-failover"));
    if signal.is_some() {
        cluster.signal(old, libc::SIGCONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_partition_fails_over_when_its_leader_is_killed() {
    fails_over_from_a_quiet_leader(None).await;
}

/// A paused broker closes nothing: only the silence of its links tells the others it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_partition_fails_over_when_its_leader_is_paused() {
    fails_over_from_a_quiet_leader(Some(libc::SIGSTOP)).await;
}
