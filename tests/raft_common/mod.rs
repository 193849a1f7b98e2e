//! Harness shared by the Raft scenario tests and the simulator: a replica on a `MemStore`
//! that executes Readies in the contract order and models what an fsync makes durable.
//!
//! Entries and snapshots always come with `must_sync`, so the store holds them durably once
//! persisted. A hard state written without `must_sync` stays in the page cache: a crash
//! reverts it to the last synced one.

#![allow(dead_code)]

pub mod checker;

use palisade::raft::{
    ConfState, Config, Entry, HardState, LogIndex, LogStore, MemStore, Message, NodeId, RawNode,
    Snapshot,
};

/// What one Ready did, for traces and invariant checks.
pub struct Processed {
    pub messages: Vec<Message>,
    pub entries: Vec<Entry>,
    pub snapshot: Option<Snapshot>,
    pub committed: Vec<Entry>,
    pub synced: bool,
}

pub struct Replica {
    pub id: NodeId,
    pub config: Config,
    node: Option<RawNode<MemStore>>,
    crashed_store: Option<MemStore>,
    pub durable_hard_state: HardState,
}

impl Replica {
    pub fn new(config: Config, conf_state: ConfState) -> Replica {
        let store = MemStore::new(conf_state);
        let node = RawNode::new(&config, store).expect("a fresh MemStore is readable");
        Replica {
            id: config.id,
            config,
            node: Some(node),
            crashed_store: None,
            durable_hard_state: HardState::default(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    pub fn node(&self) -> &RawNode<MemStore> {
        self.node.as_ref().expect("replica is up")
    }

    pub fn node_mut(&mut self) -> &mut RawNode<MemStore> {
        self.node.as_mut().expect("replica is up")
    }

    pub fn try_node_mut(&mut self) -> Option<&mut RawNode<MemStore>> {
        self.node.as_mut()
    }

    /// The persisted store, whether the replica is up or crashed.
    pub fn store(&self) -> &MemStore {
        match &self.node {
            Some(node) => node.store(),
            None => self
                .crashed_store
                .as_ref()
                .expect("crashed replica keeps its store"),
        }
    }

    /// Executes one Ready if there is one: persist (fsync when asked), hand out the messages,
    /// apply, advance.
    pub fn process_ready(&mut self) -> Option<Processed> {
        let node = self.node.as_mut()?;
        if !node.has_ready() {
            return None;
        }
        let mut ready = node.ready();
        node.store_mut().persist(&ready);
        if ready.must_sync {
            self.durable_hard_state = node.store().hard_state();
        }
        let processed = Processed {
            messages: std::mem::take(&mut ready.messages),
            entries: ready.entries.clone(),
            snapshot: ready.snapshot.clone(),
            committed: ready.committed_entries.clone(),
            synced: ready.must_sync,
        };
        node.advance(ready);
        Some(processed)
    }

    /// Loses everything not synced.
    pub fn crash(&mut self) {
        if let Some(node) = self.node.take() {
            let mut store = node.store().clone();
            store.set_hard_state(self.durable_hard_state);
            self.crashed_store = Some(store);
        }
    }

    /// Restarts from the persisted store; the application state is the snapshot's.
    pub fn restart(&mut self) -> LogIndex {
        let store = self
            .crashed_store
            .take()
            .expect("restart a crashed replica");
        let applied = store.first_index().prev();
        let mut config = self.config.clone();
        config.applied = applied;
        self.node = Some(RawNode::new(&config, store).expect("MemStore reads cannot fail"));
        applied
    }
}
