//! Raft core throughput: a 3-node group on in-memory stores, entries per second from propose
//! to commit on the leader, 1 KiB payloads, one entry per proposal round and batched.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade::raft::{
    ConfState, Config, GroupId, LogIndex, LogStore, MemStore, NodeId, RawNode, Role,
};

const PAYLOAD_BYTES: usize = 1024;
const BATCH_ENTRIES: u64 = 64;
/// Compact once a store holds this many entries, so memory stays flat over long runs.
const RETAINED_ENTRIES_MAX: u64 = 4096;

struct Group {
    nodes: Vec<RawNode<MemStore>>,
}

impl Group {
    fn new() -> Group {
        let voters = ConfState::with_voters(vec![NodeId(1), NodeId(2), NodeId(3)]);
        let nodes = (1..=3)
            .map(|id| {
                let config = Config::new(NodeId(id), GroupId(1));
                RawNode::new(&config, MemStore::new(voters.clone())).expect("fresh store")
            })
            .collect();
        let mut group = Group { nodes };
        group.nodes[0].campaign();
        group.pump();
        assert_eq!(group.nodes[0].status().role, Role::Leader);
        group
    }

    /// Runs Readies and delivers messages until the group is quiet.
    fn pump(&mut self) {
        loop {
            let mut messages = Vec::new();
            for node in &mut self.nodes {
                while node.has_ready() {
                    let mut ready = node.ready();
                    node.store_mut().persist(&ready);
                    messages.append(&mut ready.messages);
                    black_box(&ready.committed_entries);
                    node.advance(ready);
                }
            }
            if messages.is_empty() {
                return;
            }
            for message in messages {
                let to = (message.to.0 - 1) as usize;
                self.nodes[to].step(message).expect("routed");
            }
        }
    }

    fn propose_and_commit(&mut self, entries: u64) {
        let mut last = LogIndex(0);
        for _ in 0..entries {
            last = self.nodes[0]
                .propose(vec![7; PAYLOAD_BYTES])
                .expect("leader");
        }
        self.pump();
        assert!(self.nodes[0].status().commit >= last);
        self.compact();
    }

    fn compact(&mut self) {
        for node in &mut self.nodes {
            let applied = node.status().applied;
            if applied.0 >= node.store().first_index().0 + RETAINED_ENTRIES_MAX {
                node.store_mut()
                    .compact(applied, Vec::new())
                    .expect("applied is persisted");
            }
        }
    }
}

fn propose_to_commit(criterion: &mut Criterion) {
    let mut benchmarks = criterion.benchmark_group("raft_3_nodes_1KiB");
    benchmarks.throughput(Throughput::Elements(1));
    let mut single = Group::new();
    benchmarks.bench_function("one_entry_per_round", |bencher| {
        bencher.iter(|| single.propose_and_commit(1))
    });
    benchmarks.throughput(Throughput::Elements(BATCH_ENTRIES));
    let mut batched = Group::new();
    benchmarks.bench_function("batch_of_64", |bencher| {
        bencher.iter(|| batched.propose_and_commit(BATCH_ENTRIES))
    });
    benchmarks.finish();
}

criterion_group!(benches, propose_to_commit);
criterion_main!(benches);
