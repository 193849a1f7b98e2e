//! A broker holding a valid peer certificate has no authority in a Raft group it is not a replica
//! of: its votes, appends, heartbeats, snapshots and `TimeoutNow` for that group are dropped and
//! counted, and the group's leader, term and log stay as they were. Beside each refusal, a
//! positive control sends the same kind of message from a broker that may send it and sees it act.
//!
//! Real broker processes, real mutual TLS: the test dials a broker's peer port presenting another
//! broker's peer certificate (the test generated the cluster's certificates, so it holds every
//! key, as a compromised broker holds its own) and writes crafted frames.

mod common;
mod transport_support;

use std::net::SocketAddr;

use common::cluster::{wait_for, TestCluster};
use palisade::client::Client;
use palisade::raft::{
    ConfState, Entry, EntryPayload, GroupId, LogIndex, Message, MessageBody, NodeId, Snapshot,
    SnapshotMeta, Term,
};
use palisade::transport::certs::{self, CertPaths};
use palisade::transport::frame::Frame;
use palisade::wire::{CreateTopic, PartitionView, ProduceRecord, ProduceRequest};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use transport_support::{broker_client, raw_connect, write_frame};

/// The term every hostile message carries: far above anything the group reaches by itself, so a
/// term at or above it can only come from an admitted hostile message.
const HOSTILE_TERM: u64 = 1_000_000;
/// Records produced before the attacks; the log must hold exactly these afterwards.
const RECORDS: usize = 20;
/// Every broker votes in the controller and the balancer sleeps, so nothing but these messages
/// moves a partition's leadership while the test watches it.
const CLUSTER_CONFIG: &str =
    "controller_voters = 4\nbalance_interval_ms = 3600000\ndown_timeout_ms = 86400000\n";

/// The partition under attack: replicas `leader`, `other` and `target` (the highest id, a
/// follower), and `stranger`, a broker that holds no replica of it. Lower ids dial higher ones,
/// so `stranger`, `leader` and `other` may all open a link to `target`.
#[derive(Debug, Clone, Copy)]
struct Scene {
    partition: u32,
    group: GroupId,
    target: u64,
    leader: u64,
    other: u64,
    stranger: u64,
}

fn scene_in(view: &PartitionView, brokers: &[u64]) -> Option<Scene> {
    let target = *view.replicas.iter().max()?;
    let leader = view.leader?;
    let stranger = *brokers.iter().find(|id| !view.replicas.contains(id))?;
    let other = *view
        .replicas
        .iter()
        .find(|id| **id != target && **id != leader)?;
    (leader != target && stranger < target).then_some(Scene {
        partition: view.partition,
        group: GroupId(view.group?),
        target,
        leader,
        other,
        stranger,
    })
}

fn message(scene: &Scene, from: u64, term: u64, body: MessageBody) -> Message {
    Message {
        group: scene.group,
        from: NodeId(from),
        to: NodeId(scene.target),
        term: Term(term),
        body,
    }
}

/// Everything a non-member could try: take leadership (heartbeat, append, snapshot with itself as
/// the only voter), win a vote, or make the target campaign.
fn hostile_messages(scene: &Scene) -> Vec<Message> {
    let from = scene.stranger;
    let huge = HOSTILE_TERM;
    let entry = Entry {
        term: Term(huge),
        index: LogIndex(1),
        payload: EntryPayload::Noop,
    };
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(huge),
            term: Term(huge),
            conf_state: ConfState::with_voters(vec![NodeId(from)]),
        },
        data: Vec::new(),
    };
    vec![
        message(scene, from, huge, heartbeat()),
        message(
            scene,
            from,
            huge,
            MessageBody::Vote {
                last_log_index: LogIndex(huge),
                last_log_term: Term(huge),
                transfer: true,
            },
        ),
        message(scene, from, huge, MessageBody::TimeoutNow),
        message(
            scene,
            from,
            huge,
            MessageBody::Append {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![entry],
                commit: LogIndex(1),
            },
        ),
        message(scene, from, huge, MessageBody::Snapshot { snapshot }),
    ]
}

fn heartbeat() -> MessageBody {
    MessageBody::Heartbeat {
        commit: LogIndex(0),
    }
}

/// Opens a peer link to `scene.target` as broker `as_broker` and writes `messages` in one frame.
/// The connection is returned so it stays open while the test watches the effect.
async fn send_as(
    paths: &CertPaths,
    address: SocketAddr,
    as_broker: u64,
    messages: Vec<Message>,
) -> TlsStream<TcpStream> {
    let mut stream = raw_connect(address, broker_client(paths, as_broker))
        .await
        .expect("a peer handshake with a valid certificate");
    write_frame(
        &mut stream,
        &Frame::with_messages(NodeId(as_broker), messages),
    )
    .await;
    stream
}

/// The value of `palisade_peer_raft_messages_refused_total{kind, reason}` on a broker.
async fn refused(http: &reqwest::Client, url: &str, kind: &str, reason: &str) -> u64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics body");
    let series =
        format!("palisade_peer_raft_messages_refused_total{{kind=\"{kind}\",reason=\"{reason}\"}}");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().expect("a counter value"))
}

async fn partition(client: &Client, number: u32) -> PartitionView {
    let view = client.cluster().await.expect("cluster report");
    view.partitions
        .into_iter()
        .find(|p| p.topic == "guarded" && p.partition == number)
        .expect("the partition is reported")
}

/// Creates topics until one has a partition whose highest replica follows and whose missing
/// broker has a lower id than it (placement decides, so a few topics may be needed).
async fn find_scene(admin: &Client, brokers: &[u64]) -> Scene {
    admin
        .create_topic(&CreateTopic {
            name: "guarded".into(),
            partitions: Some(8),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let view = admin.cluster().await.expect("cluster report");
    view.partitions
        .iter()
        .filter(|p| p.topic == "guarded")
        .find_map(|p| scene_in(p, brokers))
        .unwrap_or_else(|| panic!("no partition fits the scene: {:?}", view.partitions))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outside_a_group_cannot_move_its_leadership_term_or_log() {
    let cluster = TestCluster::start_with(4, CLUSTER_CONFIG).await;
    let paths = certs::init(&cluster.certs_dir(), &[1, 2, 3, 4]).expect("the cluster's certs");
    let admin = cluster.admin(1).await;
    let scene = find_scene(&admin, &[1, 2, 3, 4]).await;
    let target = cluster.node(scene.target);
    let peer: SocketAddr = format!("127.0.0.1:{}", target.peer_port)
        .parse()
        .expect("address");
    let metrics = common::raw_client(&cluster.ca);
    let records: Vec<ProduceRecord> = (0..RECORDS)
        .map(|i| ProduceRecord {
            value: Some(format!("kept-{i}")),
            partition: Some(scene.partition),
            ..ProduceRecord::default()
        })
        .collect();
    admin
        .produce("guarded", &ProduceRequest { records })
        .await
        .expect("produce before the attacks");
    let before = partition(&admin, scene.partition).await;
    assert_eq!(before.leader, Some(scene.leader), "{before:?}");
    let term_before = before.term.expect("a leader answered");
    assert!(term_before < HOSTILE_TERM, "{before:?}");

    // 1. The stranger sends everything a leader, a candidate or a transfer would send.
    let expected = [
        ("Heartbeat", "not_member"),
        ("Vote", "not_voter"),
        ("TimeoutNow", "not_leader"),
        ("Append", "not_member"),
        ("Snapshot", "not_member"),
    ];
    let mut baseline = Vec::new();
    for (kind, reason) in expected {
        baseline.push(refused(&metrics, &target.url, kind, reason).await);
    }
    assert!(
        baseline.iter().all(|count| *count == 0),
        "an honest cluster had messages refused: {expected:?} {baseline:?}"
    );
    let hostile = hostile_messages(&scene);
    let _link = send_as(&paths, peer, scene.stranger, hostile).await;
    // Judged once every message was counted, or once the group moved (which fails below).
    wait_for("the hostile messages to be judged", 30, || async {
        let mut counted = true;
        for (kind, reason) in expected {
            counted &= refused(&metrics, &target.url, kind, reason).await >= 1;
        }
        let now = partition(&admin, scene.partition).await;
        let moved = now.term.is_some_and(|t| t >= HOSTILE_TERM) || now.leader != before.leader;
        (counted || moved).then_some(())
    })
    .await;
    let after = partition(&admin, scene.partition).await;
    assert!(
        after.term.is_some_and(|t| t < HOSTILE_TERM),
        "a non-member raised the group's term: {before:?} -> {after:?}"
    );
    assert_eq!(
        after.leader, before.leader,
        "a non-member moved leadership: {before:?} -> {after:?}"
    );
    for (kind, reason) in expected {
        assert_eq!(
            refused(&metrics, &target.url, kind, reason).await,
            1,
            "{kind} counted once as {reason}"
        );
    }

    // 2. TimeoutNow from a member that does not lead is refused as well.
    let other_timeout = message(&scene, scene.other, HOSTILE_TERM, MessageBody::TimeoutNow);
    let _other_link = send_as(&paths, peer, scene.other, vec![other_timeout]).await;
    wait_for("the member's TimeoutNow to be judged", 30, || async {
        let counted = refused(&metrics, &target.url, "TimeoutNow", "not_leader").await >= 2;
        let now = partition(&admin, scene.partition).await;
        (counted || now.leader != before.leader).then_some(())
    })
    .await;
    let after = partition(&admin, scene.partition).await;
    assert_eq!(
        (after.leader, after.term.is_some_and(|t| t < HOSTILE_TERM)),
        (before.leader, true),
        "a follower's TimeoutNow acted: {before:?} -> {after:?}"
    );

    // 3. Positive control: the leader's TimeoutNow, in its term, makes the target campaign and win.
    wait_for(
        "the target to take over on the leader's TimeoutNow",
        60,
        || async {
            let now = partition(&admin, scene.partition).await;
            if now.leader == Some(scene.target) {
                return Some(());
            }
            let (Some(leader), Some(term)) = (now.leader, now.term) else {
                return None;
            };
            if leader < scene.target {
                let timeout = message(&scene, leader, term, MessageBody::TimeoutNow);
                drop(send_as(&paths, peer, leader, vec![timeout]).await);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            None
        },
    )
    .await;
    // The target now leads with the log it had: every record, nothing else.
    let fetched = cluster
        .admin(scene.target)
        .await
        .fetch("guarded", scene.partition, 0, Some(1000), None, None)
        .await
        .expect("fetch from the new leader");
    let values: Vec<String> = fetched
        .records
        .iter()
        .filter_map(|r| r.value.clone())
        .collect();
    let expected_values: Vec<String> = (0..RECORDS).map(|i| format!("kept-{i}")).collect();
    assert_eq!(values, expected_values);
    assert_eq!(fetched.high_watermark, RECORDS as u64);

    // 4. Positive control: a heartbeat in the hostile term from a member does raise the term.
    let member_heartbeat = message(&scene, scene.other, HOSTILE_TERM, heartbeat());
    let _member_link = send_as(&paths, peer, scene.other, vec![member_heartbeat]).await;
    wait_for("a member's heartbeat to raise the term", 60, || async {
        let now = partition(&admin, scene.partition).await;
        now.term.is_some_and(|t| t >= HOSTILE_TERM).then_some(())
    })
    .await;
    assert_eq!(
        refused(&metrics, &target.url, "Heartbeat", "not_member").await,
        1,
        "the member's heartbeat was admitted"
    );
}
