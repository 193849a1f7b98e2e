//! The controller (Raft group 0): replicated metadata, its pure decisions, and reconciliation.
//!
//! `metadata` is the replicated state and its pure `apply`; `placement` the pure replica plan;
//! `Controller` proposes commands and exposes the latest applied state to every reader without a
//! round trip; `reconcile` keeps the running partition replicas in line with the assignments in
//! that state.

pub mod balance;
pub mod groups;
pub mod metadata;
pub mod placement;
pub mod producers;
pub mod reconcile;
pub mod records;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::clock::SharedClock;
use crate::partition::{Host, HostError, Propose, ReplicaError, ReplicaHandle, StateMachine};
use crate::raft::{LogIndex, NodeId};
pub use metadata::{
    MetaCommand, MetaEnvelope, MetaError, MetaOutput, MetadataState, TopicMeta, TopicSpec,
    UserRecord, AUDIT_TOPIC, METADATA_GROUP,
};

/// Applies metadata commands and publishes each new state to readers.
pub struct MetadataMachine {
    state: MetadataState,
    view: watch::Sender<Arc<MetadataState>>,
    /// Entries applied since the log was last compacted.
    since_compaction: u64,
    /// An index up to which the log may be compacted, once asked.
    compaction: Option<LogIndex>,
}

/// The controller log is compacted each time this many entries were applied since the last
/// time: its state is snapshotted and the entries before the last [`CONTROLLER_LOG_TAIL`] go.
/// So the log holds at most about twice that many entries, however long the cluster runs, and
/// a new broker receives one snapshot instead of every command ever made.
pub const CONTROLLER_COMPACT_EVERY: u64 = 1_000;
/// Entries kept before the applied index at compaction, so followers a little behind catch up
/// from the log rather than from a snapshot.
pub const CONTROLLER_LOG_TAIL: u64 = 1_000;

impl MetadataMachine {
    fn new(state: MetadataState, view: watch::Sender<Arc<MetadataState>>) -> MetadataMachine {
        MetadataMachine {
            state,
            view,
            since_compaction: 0,
            compaction: None,
        }
    }
}

/// A command's result and the index it was applied at (readers wait for that index).
pub type Applied = (LogIndex, Result<MetaOutput, MetaError>);

impl StateMachine for MetadataMachine {
    type Output = Applied;

    fn apply(&mut self, index: LogIndex, data: &[u8]) -> Self::Output {
        // JSON keeps the controller's commands readable and tolerant of added fields.
        let result = serde_json::from_slice::<MetaEnvelope>(data)
            .map_err(|error| MetaError::Malformed(error.to_string()))
            .and_then(|envelope| metadata::apply(&mut self.state, envelope));
        self.since_compaction += 1;
        if self.since_compaction >= CONTROLLER_COMPACT_EVERY && index.0 > CONTROLLER_LOG_TAIL {
            self.since_compaction = 0;
            self.compaction = Some(LogIndex(index.0 - CONTROLLER_LOG_TAIL));
        }
        (index, result)
    }

    fn take_compaction(&mut self) -> Option<(LogIndex, u64)> {
        // The controller has no offset rows: nothing below any offset to drop with the entries.
        self.compaction.take().map(|index| (index, 0))
    }

    fn encode_state(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state).expect("metadata state is plain data")
    }

    fn after_apply(&mut self) {
        self.view.send_replace(Arc::new(self.state.clone()));
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.since_compaction = 0;
        self.compaction = None;
        self.state = if data.is_empty() {
            MetadataState::default()
        } else {
            serde_json::from_slice(data).map_err(|error| error.to_string())?
        };
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("the controller did not answer within {0:?}")]
    Timeout(Duration),
}

/// Handle to the controller replica on this broker.
#[derive(Clone)]
pub struct Controller {
    replica: ReplicaHandle<MetadataMachine>,
    view: watch::Receiver<Arc<MetadataState>>,
    /// Stamps each proposed command, so every replica applies it with the proposer's time.
    clock: SharedClock,
}

/// How long a metadata proposal may wait for its commit.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

impl Controller {
    /// Creates group 0 on disk if needed with `voters` (empty: this broker joins a running
    /// controller as a learner) and starts its replica.
    pub async fn start(
        host: &Host,
        voters: Vec<NodeId>,
        clock: SharedClock,
    ) -> Result<Controller, HostError> {
        host.ensure_group(METADATA_GROUP, voters).await?;
        let (view_sender, view) = watch::channel(Arc::new(MetadataState::default()));
        let replica = host.start(METADATA_GROUP, move |recovery| {
            let state: MetadataState = if recovery.applied_state.is_empty() {
                MetadataState::default()
            } else {
                serde_json::from_slice(&recovery.applied_state).map_err(|e| e.to_string())?
            };
            view_sender.send_replace(Arc::new(state.clone()));
            Ok(MetadataMachine::new(state, view_sender))
        })?;
        Ok(Controller {
            replica,
            view,
            clock,
        })
    }

    /// The latest applied state (cheap: an `Arc` clone).
    pub fn state(&self) -> Arc<MetadataState> {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataState>> {
        self.view.clone()
    }

    /// Proposes a command on this broker's replica (it must lead) and waits until it is
    /// committed and applied.
    pub async fn propose(&self, command: MetaCommand) -> Result<MetaOutput, ControllerError> {
        let (_, output) = self.propose_encoded(self.encode(command)).await?;
        Ok(output?)
    }

    /// Proposes an encoded `MetaEnvelope`; answers the applied index and the command's result.
    pub async fn propose_encoded(&self, data: Vec<u8>) -> Result<Applied, ControllerError> {
        let (reply, wait) = oneshot::channel();
        self.replica.addr.do_send(Propose { data, reply });
        match tokio::time::timeout(PROPOSE_TIMEOUT, wait).await {
            Err(_) => Err(ControllerError::Timeout(PROPOSE_TIMEOUT)),
            Ok(Err(_)) => Err(ReplicaError::Stopped.into()),
            Ok(Ok(result)) => Ok(result?),
        }
    }

    /// The bytes of a command as proposed: the proposer's clock and the command, as JSON.
    pub fn encode(&self, command: MetaCommand) -> Vec<u8> {
        let envelope = MetaEnvelope {
            now_ms: self.clock.now_ms(),
            command,
        };
        serde_json::to_vec(&envelope).expect("metadata commands are plain data")
    }

    /// The clock commands are stamped with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// This broker's replica of group 0.
    pub fn replica(&self) -> &ReplicaHandle<MetadataMachine> {
        &self.replica
    }

    /// Waits until this broker applied the controller log up to `index`.
    pub async fn wait_applied(&self, index: LogIndex, timeout: Duration) -> bool {
        let mut status = self.replica.status.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if status.borrow_and_update().applied >= index {
                return true;
            }
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Waits until the controller replica has applied every entry in its log (after a restart).
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let mut status = self.replica.status.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = status.borrow_and_update().clone();
            if current.leader.is_some() && current.applied >= current.last_index {
                return true;
            }
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Waits until this broker's controller replica leads (single broker) or `timeout` passes.
    pub async fn wait_leader(&self, timeout: Duration) -> bool {
        let mut status = self.replica.status.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if status.borrow_and_update().leader.is_some() {
                return true;
            }
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }
}
