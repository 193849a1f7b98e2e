//! Partition replicas: one actix actor per Raft group replica on this broker.
//!
//! Owns the Ready loop (`replica`), the partition's applied state and its apply (`machine`), the
//! leader's decisions and handlers for produce, idempotent produce, long-poll fetch and retention
//! (`leader`), writes waiting out a leadership handover (`handover`), record batch encoding (`batch`, and `encoded` for the records a produce carries
//! encoded once), committed-record reads (`read`), producer deduplication rules (`dedup`),
//! committed consumer offsets (`offsets`), what a replica does with a peer message its Raft core
//! does not admit (`admission`) and the placement of replica actors on a small fixed
//! set of arbiters (`Host`). Knows nothing about HTTP, brokers or the cluster.

pub mod admission;
pub mod batch;
pub mod dedup;
pub mod encoded;
mod handover;
pub mod leader;
pub mod log_store;
pub mod machine;
pub mod offsets;
pub mod read;
mod registry;
pub mod replica;
pub mod retention;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{oneshot, watch};

use crate::raft::{ConfState, EntryPayload, GroupId, NodeId, SnapshotMeta};
use crate::storage::{GroupRecovery, StorageError, Store, WriteBatch, Writer};
pub use admission::ReplicaDirectory;
pub use dedup::AppendResult;
pub use encoded::EncodedRecords;
pub use leader::{Fetch, IdempotentProduce, Produce, SetRetention};
pub use machine::{FetchError, FetchWindow, PartitionMachine, PartitionState};
pub use offsets::{CommitOffset, GroupPosition, ReadGroupPosition};
pub use registry::Registry;
pub use replica::{
    AckPolicy, ChangeMembership, Inbound, LinkProbe, OutboundSink, PeerDown, Propose, Replica,
    ReplicaError, ReplicaSettings, ReplicaStatus, StateMachine, Stop, TransferLeadership,
};
use retention::BatchInfo;

/// Long polls parked per partition at once.
pub const FETCH_WAITERS_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("raft log: {0}")]
    Raft(#[from] crate::raft::StorageError),
    #[error("group {0} has no state on disk")]
    Missing(u64),
    #[error("stored state of group {group} does not decode: {reason}")]
    BadState { group: u64, reason: String },
}

/// A running replica and the view of its status.
pub struct ReplicaHandle<M: StateMachine> {
    pub group: GroupId,
    pub addr: Addr<Replica<M>>,
    pub status: watch::Receiver<ReplicaStatus>,
    /// Write slots (`WRITES_IN_FLIGHT_MAX`): a client write (produce, offset commit) takes one
    /// before its message is sent and holds it until the write is answered.
    pub writes: Arc<tokio::sync::Semaphore>,
}

/// Client writes one partition replica holds at once, queued in its mailbox or proposed and
/// not yet answered. A write that finds none free waits up to `limits.budget_wait_ms` and is
/// then answered 503 `overloaded`, so neither the mailbox nor the proposals grow with load.
pub const WRITES_IN_FLIGHT_MAX: usize = 1024;

impl<M: StateMachine> Clone for ReplicaHandle<M> {
    fn clone(&self) -> Self {
        ReplicaHandle {
            group: self.group,
            addr: self.addr.clone(),
            status: self.status.clone(),
            writes: self.writes.clone(),
        }
    }
}

pub type PartitionHandle = ReplicaHandle<PartitionMachine>;

/// Starts replica actors of this broker, spreading them over a fixed set of arbiters.
pub struct Host {
    pub store: Store,
    pub writer: Writer,
    pub settings: ReplicaSettings,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    /// Where replicas send Raft messages for other brokers; `None` without peers.
    outbound: Option<OutboundSink>,
    /// Who the controller assigns to each group (see `admission`); `None` without peers.
    directory: Option<ReplicaDirectory>,
    /// Which peers' links are up, for quiesced replicas (see `replica::PeerDown`); `None`
    /// without peers.
    links: Option<LinkProbe>,
}

impl Host {
    /// `arbiters_count` threads carry every replica (about one per core, never one per partition).
    pub fn new(
        store: Store,
        writer: Writer,
        settings: ReplicaSettings,
        arbiters_count: usize,
        outbound: Option<OutboundSink>,
    ) -> Host {
        let arbiters = (0..arbiters_count.max(1))
            .map(|_| Arbiter::new().handle())
            .collect();
        Host {
            store,
            writer,
            settings,
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            outbound,
            directory: None,
            links: None,
        }
    }

    /// Replicas started from now on ask `directory` about senders their configuration lacks.
    pub fn with_directory(mut self, directory: ReplicaDirectory) -> Host {
        self.directory = Some(directory);
        self
    }

    /// Replicas started from now on ask `links` whether a member's broker is reachable.
    pub fn with_links(mut self, links: LinkProbe) -> Host {
        self.links = Some(links);
        self
    }

    pub fn node(&self) -> NodeId {
        self.settings.node
    }

    /// Creates a group on disk with `voters` as its first membership, if it does not exist yet.
    /// Empty `voters` make a replica that joins a running group: it waits for the leader's
    /// snapshot, which brings the membership.
    pub async fn ensure_group(&self, group: GroupId, voters: Vec<NodeId>) -> Result<(), HostError> {
        if self.store.load_group(group)?.is_some() {
            return Ok(());
        }
        let meta = SnapshotMeta {
            conf_state: ConfState {
                voters,
                learners: vec![],
            },
            ..Default::default()
        };
        let batch = WriteBatch {
            group,
            create: Some(meta),
            ..WriteBatch::default()
        };
        self.write(batch).await
    }

    /// Removes every stored row of a group (its replica must be stopped first).
    pub async fn delete_group(&self, group: GroupId) -> Result<(), HostError> {
        self.write(WriteBatch {
            group,
            delete_group: true,
            ..WriteBatch::default()
        })
        .await
    }

    async fn write(&self, batch: WriteBatch) -> Result<(), HostError> {
        let (done, wait) = oneshot::channel();
        self.writer.submit(
            batch,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        )?;
        wait.await.map_err(|_| StorageError::WriterStopped)??;
        Ok(())
    }

    /// Recovers a stored group and starts its replica with `make_machine(applied_state)`.
    pub fn start<M, F>(
        &self,
        group: GroupId,
        make_machine: F,
    ) -> Result<ReplicaHandle<M>, HostError>
    where
        M: StateMachine + Send,
        F: FnOnce(&GroupRecovery) -> Result<M, String>,
    {
        let recovery = self
            .store
            .load_group(group)?
            .ok_or(HostError::Missing(group.0))?;
        let machine = make_machine(&recovery).map_err(|reason| HostError::BadState {
            group: group.0,
            reason,
        })?;
        let (replica, status) = Replica::new(
            self.store.clone(),
            self.writer.clone(),
            group,
            &recovery,
            machine,
            self.settings.clone(),
        )?;
        let replica = replica
            .with_outbound(self.outbound.clone())
            .with_directory(self.directory.clone())
            .with_links(self.links.clone());
        let position = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let addr = Replica::start_in_arbiter(&self.arbiters[position], move |_| replica);
        Ok(ReplicaHandle {
            group,
            addr,
            status,
            writes: Arc::new(tokio::sync::Semaphore::new(WRITES_IN_FLIGHT_MAX)),
        })
    }

    /// Starts a partition replica.
    pub fn start_partition(&self, group: GroupId) -> Result<PartitionHandle, HostError> {
        let store = self.store.clone();
        self.start(group, move |recovery| {
            let batches = stored_batches(&store, group, recovery);
            PartitionMachine::restore(&recovery.applied_state, FETCH_WAITERS_MAX, batches)
                .map_err(|e| e.to_string())
        })
    }
}

/// Entries read per call while listing stored batches at start-up.
const RECOVERY_READ_BYTES: u64 = 4 << 20;

/// The batches stored from the log start up to the applied index, for retention. Reads the log once
/// at start-up; a row that does not read back stops the broker (see `log_store`).
fn stored_batches(store: &Store, group: GroupId, recovery: &GroupRecovery) -> VecDeque<BatchInfo> {
    let mut batches = VecDeque::new();
    let mut index = recovery.snapshot.meta.index.next();
    let end = recovery.applied_index.next();
    while index < end {
        let entries = store
            .entries(group, index, end, RECOVERY_READ_BYTES)
            .unwrap_or_else(|error| log_store::stop_on_read_error(group, index, &error));
        let Some(last) = entries.last() else { break };
        index = last.index.next();
        for entry in entries {
            let EntryPayload::Normal(data) = &entry.payload else {
                continue;
            };
            if let Some(append) = batch::decode_header(data).ok().and_then(|h| h.append()) {
                batches.push_back(BatchInfo {
                    base_offset: append.base_offset,
                    end_offset: append.base_offset + append.count,
                    timestamp_ms: append.timestamp_ms,
                    bytes: data.len() as u64,
                    index: entry.index,
                });
            }
        }
    }
    batches
}
