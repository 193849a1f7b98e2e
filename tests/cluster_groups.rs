//! Consumer groups across three real brokers: every call of a member may go to any broker, the
//! group outlives a SIGKILL of the controller leader without losing members or committed
//! offsets, and `palisade consume --group` follows a group and commits as it goes.

mod common;
mod groups_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use groups_support::*;
use palisade::client::{Client, ClientError};

const PARTITIONS: u32 = 6;
const PER_PARTITION: u32 = 40;

/// Retries `call` through an election (503) until `timeout`.
async fn through_failover<T, F, Fut>(timeout: Duration, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error)
                if Instant::now() < deadline && matches!(error.status(), Some(503) | None) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("call failed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_calls_work_on_any_broker_and_survive_losing_the_controller_leader() {
    let mut cluster = TestCluster::start(3).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&topic("orders", PARTITIONS, 3))
        .await
        .expect("topic");
    produce_numbered(&admin, "orders", PARTITIONS, PER_PARTITION).await;
    let clients: Vec<Client> = vec![
        admin.clone(),
        cluster.admin(2).await,
        cluster.admin(3).await,
    ];

    let mut a = TestMember::join(&clients[0], "billing", &["orders"], 10_000).await;
    let mut b = TestMember::join(&clients[1], "billing", &["orders"], 10_000).await;
    // a's heartbeat goes to broker 3, its poll to broker 2 and its commit to broker 1.
    a.client = clients[2].clone();
    a.heartbeat().await.expect("heartbeat via broker 3");
    assert_eq!(a.member.assignments.len(), 3);
    a.client = clients[1].clone();
    let mut consumed = Consumed::new();
    let poll = a.poll(30, 0).await.expect("poll via broker 2");
    assert!(!poll.records.is_empty());
    consumed.extend(record_positions(&poll));
    a.client = clients[0].clone();
    a.commit(poll.next_offsets.clone())
        .await
        .expect("commit via broker 1");
    let generation = a.member.generation;

    let controller = admin
        .cluster()
        .await
        .expect("cluster")
        .controller
        .leader
        .expect("controller leader");
    cluster.kill(controller);
    let survivor = (1..=3).find(|id| *id != controller).expect("survivor");
    let other = (1..=3)
        .find(|id| *id != controller && *id != survivor)
        .expect("other");
    a.client = clients[(survivor - 1) as usize].clone();
    b.client = clients[(other - 1) as usize].clone();
    let started = Instant::now();
    through_failover(Duration::from_secs(30), || {
        a.client.heartbeat("billing", a.id())
    })
    .await;
    println!(
        "group heartbeat answered {} ms after the controller leader was killed",
        started.elapsed().as_millis()
    );
    // A new controller leader starts every session afresh: nobody expired, nothing rebalanced.
    a.heartbeat().await.expect("heartbeat");
    b.heartbeat().await.expect("heartbeat");
    assert_eq!(a.member.generation, generation);
    assert_eq!(b.member.generation, generation);

    for member in [&mut a, &mut b] {
        loop {
            let poll = through_failover(Duration::from_secs(30), || {
                member
                    .client
                    .poll_group("billing", &member.member.member_id, Some(50), Some(200))
            })
            .await;
            if poll.records.is_empty() {
                break;
            }
            consumed.extend(record_positions(&poll));
            member.member.generation = poll.generation;
            member.commit(poll.next_offsets).await.expect("commit");
        }
    }
    let ends: BTreeMap<(String, u32), u64> = (0..PARTITIONS)
        .map(|p| (("orders".to_string(), p), u64::from(PER_PARTITION)))
        .collect();
    check_at_least_once(&ends, &consumed).expect("no record skipped");
    let described = a.client.describe_group("billing").await.expect("describe");
    assert!(
        described
            .offsets
            .iter()
            .all(|o| o.committed_offset == Some(u64::from(PER_PARTITION)) && o.lag == 0),
        "{described:?}"
    );

    // The killed broker comes back with the same committed offsets in its partition replicas.
    cluster.restart(controller).await;
    let back = cluster.admin(controller).await;
    let described = back.describe_group("billing").await.expect("describe");
    assert!(described
        .offsets
        .iter()
        .all(|o| o.committed_offset == Some(u64::from(PER_PARTITION))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_consumes_as_a_group_member_and_commits() {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&topic("lines", 3, 3))
        .await
        .expect("topic");
    produce_numbered(&admin, "lines", 3, 25).await;
    let token = admin.token().expect("token").to_string();
    let run = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args([
                "consume",
                "lines",
                "--group",
                "cli",
                "--wait-ms",
                "500",
                "--max-messages",
                "10",
            ])
            .env("PALISADE_URL", url)
            .env("PALISADE_CA_CERT", &cluster.ca)
            .env("PALISADE_TOKEN", &token)
            .output()
            .expect("palisade consume runs")
    };
    let output = run(&cluster.node(2).url);
    assert!(
        output.status.success(),
        "consume failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 75, "every record once");
    for line in &lines {
        let partition = line["partition"].as_u64().expect("partition");
        let offset = line["offset"].as_u64().expect("offset");
        assert_eq!(line["topic"], "lines");
        assert_eq!(line["value"], format!("p{partition}-{offset}"));
    }
    let described = admin.describe_group("cli").await.expect("describe");
    assert!(
        described.members.is_empty(),
        "the consumer left the group on exit"
    );
    assert!(
        described
            .offsets
            .iter()
            .all(|o| o.committed_offset == Some(25)),
        "{described:?}"
    );
    // A second run through another broker resumes at the committed offsets: nothing new.
    let again = run(&cluster.node(3).url);
    assert!(again.status.success());
    assert!(
        again.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}
