//! Three real brokers over mutual TLS: replicas and leaders spread evenly, any broker serves any
//! call (a produce through broker 1 is consumed through broker 3) and holds a forwarded fetch
//! within its own fetch budget, and users, ACLs and token revocations made through one broker
//! take effect on all.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::TestCluster;
use palisade::client::Client;
use palisade::wire::{
    CreateAcl, CreateTopic, CreateUser, ProduceRecord, ProduceRequest, TopicDescription,
};

const PARTITIONS: u32 = 6;

async fn describe_until(
    client: &Client,
    topic: &str,
    what: &str,
    done: impl Fn(&TopicDescription) -> bool,
) -> TopicDescription {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let description = client.describe_topic(topic).await.expect("describe");
        if done(&description) {
            return description;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened; last description: {description:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leaders_per_broker(description: &TopicDescription) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for partition in &description.partitions {
        if let Some(leader) = partition.leader {
            *counts.entry(leader).or_default() += 1;
        }
    }
    counts
}

fn record(value: String, partition: u32) -> ProduceRecord {
    ProduceRecord {
        key: None,
        value: Some(value),
        value_b64: None,
        headers: BTreeMap::new(),
        partition: Some(partition),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_leaders_spread_and_any_broker_serves_any_call() {
    let cluster = TestCluster::start(3).await;
    let first = cluster.admin(1).await;
    first
        .create_topic(&CreateTopic {
            name: "orders".into(),
            partitions: Some(PARTITIONS),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let third = cluster.admin(3).await;
    let description = third
        .describe_topic("orders")
        .await
        .expect("describe via 3");
    assert_eq!(description.replication_factor, 3);
    assert_eq!(description.partitions.len(), PARTITIONS as usize);
    let mut replicas = BTreeMap::<u64, usize>::new();
    let mut preferred = BTreeMap::<u64, usize>::new();
    for partition in &description.partitions {
        let mut distinct = partition.replicas.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct, vec![1, 2, 3], "partition {partition:?}");
        for broker in &partition.replicas {
            *replicas.entry(*broker).or_default() += 1;
        }
        *preferred.entry(partition.replicas[0]).or_default() += 1;
    }
    assert_eq!(replicas, BTreeMap::from([(1, 6), (2, 6), (3, 6)]));
    assert_eq!(preferred, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    // Leaders settle evenly (the balancer moves leadership to the preferred replicas).
    let even = BTreeMap::from([(1, 2), (2, 2), (3, 2)]);
    let settled = describe_until(&third, "orders", "an even leader spread", |d| {
        leaders_per_broker(d) == even && d.partitions.iter().all(|p| p.in_sync.len() == 3)
    })
    .await;

    // Produce through broker 1, consume through broker 3.
    let mut sent: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for round in 0..6 {
        let records: Vec<ProduceRecord> = (0..100)
            .map(|i| {
                let partition = (round * 100 + i) % PARTITIONS;
                record(format!("r{round}-{i}"), partition)
            })
            .collect();
        let answer = first
            .produce(
                "orders",
                &ProduceRequest {
                    records: records.clone(),
                },
            )
            .await
            .expect("produce via 1");
        for (record, position) in records.iter().zip(&answer.offsets) {
            let values = sent.entry(position.partition).or_default();
            assert_eq!(position.offset, values.len() as u64, "offsets are dense");
            values.push(record.value.clone().expect("text value"));
        }
    }
    for partition in 0..PARTITIONS {
        let fetched = third
            .fetch("orders", partition, 0, Some(1000), None, None)
            .await
            .expect("fetch via 3");
        let values: Vec<String> = fetched
            .records
            .iter()
            .map(|r| r.value.clone().expect("text"))
            .collect();
        assert_eq!(values, sent[&partition], "partition {partition}");
        let offsets: Vec<u64> = fetched.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..values.len() as u64).collect::<Vec<_>>());
    }

    // A fetch served by a broker that does not lead names the leader in a header.
    let token = third.token().expect("token").to_string();
    let raw = common::raw_client(&cluster.ca);
    for partition in &settled.partitions {
        let leader = partition.leader.expect("leader");
        let other = [1, 2, 3].into_iter().find(|b| *b != leader).expect("other");
        let url = format!(
            "{}/v1/topics/orders/partitions/{}/messages?offset=0&max_messages=1",
            cluster.node(other).url,
            partition.partition
        );
        let reply = raw
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("fetch");
        assert_eq!(reply.status(), 200);
        let header = reply
            .headers()
            .get("palisade-leader")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The leader may move between describe and fetch; it is one of the replicas.
        let named: u64 = header.expect("leader header").parse().expect("numeric");
        assert!(partition.replicas.contains(&named));
    }
}

/// Retries `attempt` until it returns true, failing after a deadline.
async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !attempt().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_acls_and_revocations_reach_every_broker() {
    let cluster = TestCluster::start(3).await;
    let first = cluster.admin(1).await;
    first
        .create_topic(&CreateTopic {
            name: "payments".into(),
            partitions: Some(3),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    first
        .create_user(&CreateUser {
            username: "alice".into(),
            password: "alice-password-123".into(),
            superuser: false,
        })
        .await
        .expect("create user via 1");
    // The user made through broker 1 logs in through broker 3, once broker 3 has applied the
    // change (a broker answers from its own replica of the controller state).
    eventually("alice's account reaching broker 3", || async {
        cluster
            .client(3)
            .login("alice", "alice-password-123")
            .await
            .is_ok()
    })
    .await;
    let alice = cluster.login(3, "alice", "alice-password-123").await;
    let batch = ProduceRequest {
        records: vec![record("hello".into(), 0)],
    };
    let refused = alice
        .produce("payments", &batch)
        .await
        .expect_err("no ACL yet");
    assert_eq!(refused.status(), Some(403), "{refused}");
    // An ACL granted through broker 2 lets alice write through broker 3.
    let second = cluster.admin(2).await;
    let rule: CreateAcl = serde_json::from_value(serde_json::json!({
        "principal": "alice", "resource": "topic",
        "pattern": {"literal": "payments"}, "operation": "write", "effect": "allow"
    }))
    .expect("acl body");
    second.create_acl(&rule).await.expect("create acl via 2");
    eventually("the ACL taking effect on broker 3", || async {
        alice.produce("payments", &batch).await.is_ok()
    })
    .await;
    // A token revoked through broker 1 is refused by brokers 2 and 3.
    let token = alice.token().expect("token").to_string();
    let on_first = cluster.client(1).with_token(token.clone());
    on_first.revoke().await.expect("revoke via 1");
    for id in [2, 3] {
        let client = cluster.client(id).with_token(token.clone());
        eventually(
            &format!("broker {id} refusing the revoked token"),
            || async { matches!(client.whoami().await, Err(e) if e.status() == Some(401)) },
        )
        .await;
    }
}

/// Reads the whole partition through `client`, returning the values and the records per answer.
async fn read_through(client: &Client, topic: &str) -> (Vec<String>, Vec<usize>) {
    let (mut offset, mut values, mut answers) = (0, Vec::new(), Vec::new());
    loop {
        let fetched = client
            .fetch(topic, 0, offset, None, Some(1 << 20), None)
            .await
            .expect("fetch");
        answers.push(fetched.records.len());
        values.extend(fetched.records.into_iter().filter_map(|r| r.value));
        offset = fetched.next_offset;
        if offset >= fetched.high_watermark {
            return (values, answers);
        }
        assert!(
            answers.len() < 100,
            "the fetches make progress: {answers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_fetch_is_held_within_the_forwarding_brokers_budget() {
    let mut cluster =
        TestCluster::start_env(3, "", &[("PALISADE_HTTP_RECORD_BYTES_MAX", "64 KiB")]).await;
    let first = cluster.admin(1).await;
    first
        .create_topic(&CreateTopic {
            name: "wide".into(),
            partitions: Some(1),
            replication_factor: Some(1),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let described = describe_until(&first, "wide", "a leader", |d| {
        d.partitions[0].leader.is_some()
    })
    .await;
    let leader = described.partitions[0].leader.expect("leader");
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    // Ten records of 60 KiB. The leader's fetch budget (the default, 16 MiB) holds them all;
    // one forwarding broker's holds two.
    let written: Vec<String> = (0..10)
        .map(|n| format!("{n:02}{}", "x".repeat(60 * 1024)))
        .collect();
    let batch = ProduceRequest {
        records: written.iter().map(|v| record(v.clone(), 0)).collect(),
    };
    cluster
        .admin(leader)
        .await
        .produce("wide", &batch)
        .await
        .expect("produce");
    let (small, control) = (others[0], others[1]);
    let node = cluster.nodes.iter_mut().find(|n| n.id == small);
    node.expect("node").env.push((
        "PALISADE_LIMITS_FETCH_BYTES_IN_FLIGHT_MAX".into(),
        "128 KiB".into(),
    ));
    cluster.restart(small).await;

    let (read, answers) = read_through(&cluster.admin(small).await, "wide").await;
    assert_eq!(
        read, written,
        "every record, in order, through the small budget"
    );
    assert!(
        answers.iter().all(|count| *count <= 3) && answers.len() >= 4,
        "no forwarded answer holds more than the forwarding broker's budget: {answers:?}"
    );
    let (read, answers) = read_through(&cluster.admin(control).await, "wide").await;
    assert_eq!(read, written);
    assert_eq!(
        answers,
        [10],
        "with the default budget, one answer holds every record"
    );
}
