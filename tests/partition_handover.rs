//! Writes that reach a partition leader while it hands its leadership over wait for the handover
//! (`partition::handover`) instead of being refused as "busy": on three real replicas in this
//! process, each with its own redb file, wired to each other by a switchboard that can drop the
//! messages for one of them.
//! - A transfer that completes: the waiting write is answered `NotLeader` naming the new leader,
//!   so its forwarder asks that broker at once; nothing was written by the old leader.
//! - A transfer that cannot complete (its target hears nothing): once the leader gives the
//!   transfer up, the waiting write is written and acknowledged by the same leader.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade::partition::batch::Record;
use palisade::partition::{
    AckPolicy, AppendResult, Host, Inbound, OutboundSink, PartitionHandle, Produce, ReplicaError,
    ReplicaSettings, TransferLeadership,
};
use palisade::raft::{GroupId, NodeId};
use palisade::storage::{Store, WriterConfig};
use tokio::sync::oneshot;

const GROUP: GroupId = GroupId(3);
const NODES: [u64; 3] = [1, 2, 3];

/// Routes Raft messages between the replicas; messages to a blocked node are dropped.
#[derive(Clone, Default)]
struct Switchboard {
    replicas: Arc<Mutex<HashMap<u64, PartitionHandle>>>,
    blocked: Arc<Mutex<HashSet<u64>>>,
}

impl Switchboard {
    fn sink(&self) -> OutboundSink {
        let board = self.clone();
        Arc::new(move |messages| {
            for message in messages {
                let to = message.to.0;
                if board.blocked.lock().expect("lock").contains(&to) {
                    continue;
                }
                if let Some(handle) = board.replicas.lock().expect("lock").get(&to) {
                    handle.addr.do_send(Inbound(message));
                }
            }
        })
    }

    fn handle(&self, node: u64) -> PartitionHandle {
        self.replicas.lock().expect("lock")[&node].clone()
    }
}

struct Group {
    board: Switchboard,
    _hosts: Vec<Host>,
    _dir: tempfile::TempDir,
}

async fn start_group() -> Group {
    let dir = tempfile::tempdir().expect("tempdir");
    let board = Switchboard::default();
    let mut hosts = Vec::new();
    for node in NODES {
        let store = Store::open(&dir.path().join(format!("node-{node}.redb"))).expect("store");
        let writer = store.start_writer(WriterConfig::default());
        let settings = ReplicaSettings {
            node: NodeId(node),
            tick_ms: 10,
            election_timeout_ticks: 20,
            heartbeat_interval_ticks: 2,
            pending_proposals_max: 100,
            ack: AckPolicy::AfterCommit,
            retention_check_ms: 60_000,
            entry_bytes_max: 64 * 1024,
            quiesce: false,
        };
        let host = Host::new(store, writer, settings, 1, Some(board.sink()));
        host.ensure_group(GROUP, NODES.iter().map(|n| NodeId(*n)).collect())
            .await
            .expect("create group");
        let handle = host.start_partition(GROUP).expect("start replica");
        board.replicas.lock().expect("lock").insert(node, handle);
        hosts.push(host);
    }
    Group {
        board,
        _hosts: hosts,
        _dir: dir,
    }
}

/// Waits until `node` leads (any node when `None`); returns the leader.
async fn wait_leader(board: &Switchboard, node: Option<u64>) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for candidate in NODES {
            if node.is_some_and(|node| node != candidate) {
                continue;
            }
            let status = board.handle(candidate).status.borrow().clone();
            if status.is_leader {
                return candidate;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader ({node:?}) within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn records(count: usize, label: &str) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            key: None,
            value: format!("{label}-{i}").into_bytes(),
            value_is_text: true,
            headers: vec![],
        })
        .collect()
}

/// Sends a produce now; the answer comes through the returned receiver.
fn send_produce(
    handle: &PartitionHandle,
    label: &str,
) -> oneshot::Receiver<Result<AppendResult, ReplicaError>> {
    let (reply, wait) = oneshot::channel();
    handle.addr.do_send(Produce {
        records: records(2, label).into(),
        timestamp_ms: 1,
        expected_base: None,
        reply,
    });
    wait
}

async fn answer(
    wait: oneshot::Receiver<Result<AppendResult, ReplicaError>>,
) -> Result<AppendResult, ReplicaError> {
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("answered within 20 s")
        .expect("the replica answers")
}

/// Waits for a leader, writes one batch (offsets 0 and 1) and waits until another replica holds
/// the whole log, so a transfer to it hands over at once; returns (leader, that replica).
async fn one_write_then_a_target(board: &Switchboard) -> (u64, u64) {
    let leader = wait_leader(board, None).await;
    let first = answer(send_produce(&board.handle(leader), "before")).await;
    assert_eq!(first.map(|r| r.base_offset), Ok(0), "the first write");
    let target = NODES.into_iter().find(|n| *n != leader).expect("another");
    wait_for_match(board, leader, target).await;
    (leader, target)
}

#[actix_rt::test]
async fn a_write_during_a_completed_transfer_names_the_new_leader() {
    let group = start_group().await;
    let board = &group.board;
    let (leader, target) = one_write_then_a_target(board).await;
    let old = board.handle(leader);
    let asked = old.addr.send(TransferLeadership(NodeId(target))).await;
    assert!(matches!(asked, Ok(Ok(()))), "transfer asked: {asked:?}");
    // The target must persist its new term before it asks for votes, so this write reaches the
    // old leader while the transfer is still under way.
    let during = answer(send_produce(&old, "during")).await;
    assert_eq!(
        during,
        Err(ReplicaError::NotLeader {
            leader: Some(NodeId(target))
        }),
        "a write during the transfer is answered with the new leader, not refused as busy"
    );
    wait_leader(board, Some(target)).await;
    let after = answer(send_produce(&board.handle(target), "after")).await;
    assert_eq!(
        after.map(|r| r.base_offset),
        Ok(2),
        "the old leader wrote nothing of the refused write; the new leader goes on at 2"
    );
}

#[actix_rt::test]
async fn a_write_during_a_transfer_given_up_is_written_by_the_leader() {
    let group = start_group().await;
    let board = &group.board;
    let (leader, target) = one_write_then_a_target(board).await;
    // The target hears nothing from now on: the transfer cannot complete.
    board.blocked.lock().expect("lock").insert(target);
    let old = board.handle(leader);
    let asked = old.addr.send(TransferLeadership(NodeId(target))).await;
    assert!(matches!(asked, Ok(Ok(()))), "transfer asked: {asked:?}");
    let during = answer(send_produce(&old, "during")).await;
    assert_eq!(
        during.map(|r| (r.base_offset, r.count)),
        Ok((2, 2)),
        "the write waited until the transfer was given up and the leader wrote it"
    );
    assert!(old.status.borrow().is_leader, "the leader still leads");
}

/// Waits until the leader's progress shows `target` holding the whole log.
async fn wait_for_match(board: &Switchboard, leader: u64, target: u64) {
    let handle = board.handle(leader);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = handle.status.borrow().clone();
        let matched = status
            .progress
            .iter()
            .find(|(node, _)| node.0 == target)
            .map(|(_, matched)| *matched);
        if matched.is_some_and(|m| m >= status.progress_commit) && status.progress_commit.0 > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{target} did not catch up: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
