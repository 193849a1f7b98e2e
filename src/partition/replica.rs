//! `Replica<M>`: the actor that drives one Raft group's `RawNode` and executes every Ready in the
//! contract order: persist (through the group-commit writer), send, apply, advance. The one
//! exception: a leader sends its appends while its own write is in flight (Raft allows it, as the
//! leader's entries count toward a commit only once they are durable on the leader too).
//!
//! The same actor runs partitions (`PartitionMachine`) and the controller (`cluster::MetadataMachine`):
//! the replicated state machine is a type parameter. Proposals wait for the apply of their index and
//! are answered with the machine's output, so a reply always means "committed on a majority and applied".

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{oneshot, watch};

use super::admission::{self, ReplicaDirectory};
use super::log_store::GroupLog;
use crate::raft::{
    Assigned, ConfChangeRefusal, Config as RaftConfig, Entry, EntryPayload, GroupId, LogIndex,
    LogStore, Message as RaftMessage, NodeId, ProposeError, RawNode, Ready, Role, Snapshot,
    SnapshotMeta, Term, Wake,
};
use crate::storage::{Compaction, GroupRecovery, Store, WriteBatch, Writer};

/// A deterministic state machine replicated by a Raft group.
pub trait StateMachine: Unpin + 'static {
    /// What a proposal's caller receives once its entry is applied.
    type Output: Send + 'static;
    /// Applies one committed Normal entry. Must be deterministic: every replica computes the same.
    fn apply(&mut self, index: LogIndex, data: &[u8]) -> Self::Output;
    /// The state to store beside the applied index (same transaction), and in snapshots.
    fn encode_state(&self) -> Vec<u8>;
    /// Offset-index row for an entry's payload (record batches only).
    fn offset_row(&self, _data: &[u8]) -> Option<u64> {
        None
    }
    /// Called after a run of applies, e.g. to wake long polls or publish a state view.
    fn after_apply(&mut self) {}
    /// Replaces the whole state with a snapshot's (a follower far behind, or a new replica).
    /// Must accept what `encode_state` produced; empty bytes mean the initial state.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
    /// An applied index up to which entries may be compacted, and the offset below which offset
    /// rows go with them (retention). Taken once.
    fn take_compaction(&mut self) -> Option<(LogIndex, u64)> {
        None
    }
}

/// Why a proposal or request did not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    #[error("this replica is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("the proposal was dropped by a leadership change; retry")]
    ProposalDropped,
    /// This replica stopped leading before the proposal was applied: another leader may still
    /// commit it, so its outcome is unknown.
    #[error("the partition's leader stepped down before the write was applied; the write may or may not have been applied")]
    LeadershipLost,
    #[error("the group is busy with a membership change or transfer; retry")]
    Busy,
    #[error("the replica has stopped")]
    Stopped,
    #[error("too many proposals are waiting; retry later")]
    Overloaded,
    #[error("refused: {0}")]
    Invalid(String),
    /// A membership change that does not apply to the current configuration.
    #[error("invalid membership change: {0}")]
    ConfChange(ConfChangeRefusal),
    /// Nothing was proposed and trying again shortly is safe: an idempotent batch with the same
    /// sequence is still in flight, or a new leader has not applied its predecessors' entries.
    #[error("{0}; retry")]
    Retry(String),
    /// The proposal would make a Raft entry larger than a peer frame can carry.
    #[error("the write is {bytes} bytes encoded; one replicated entry holds at most {bytes_max}")]
    TooLarge { bytes: u64, bytes_max: u64 },
    /// A conditional append expected the log to end at `expected`; it ends at `tail` (counting
    /// appends not yet committed). Nothing was proposed.
    #[error("the log ends at offset {tail}, not {expected}: something was appended meanwhile")]
    TailMoved { expected: u64, tail: u64 },
    /// A consumer offset beyond the end of the committed log.
    #[error("offset {offset} is beyond the partition's end (high watermark {high_watermark})")]
    OffsetBeyondEnd { offset: u64, high_watermark: u64 },
}

/// What every other part of the broker may know about a replica without asking it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub leader: Option<NodeId>,
    pub term: Term,
    pub is_leader: bool,
    pub commit: LogIndex,
    pub applied: LogIndex,
    /// The last index in the log; on a new leader it covers the leader's no-op.
    pub last_index: LogIndex,
    /// Membership as this replica knows it (refreshed every tick).
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// On the leader: each member's matched index (refreshed every tick); empty elsewhere.
    pub progress: Vec<(NodeId, LogIndex)>,
    /// The commit index when `progress` was taken, so lags compare like with like.
    pub progress_commit: LogIndex,
    /// The group is idle: this replica's Raft clock is stopped (`raft::quiesce`).
    pub quiesced: bool,
}

impl ReplicaStatus {
    /// Members whose log matches the leader's commit index (leader only; empty elsewhere).
    pub fn in_sync(&self) -> Vec<NodeId> {
        self.progress
            .iter()
            .filter(|(_, matched)| *matched >= self.progress_commit)
            .map(|(node, _)| *node)
            .collect()
    }
}

/// Settings a replica is started with.
#[derive(Clone, Debug)]
pub struct ReplicaSettings {
    pub node: NodeId,
    pub tick_ms: u64,
    pub election_timeout_ticks: u32,
    pub heartbeat_interval_ticks: u32,
    /// Proposals waiting for their apply at once; more are refused with `Overloaded`.
    pub pending_proposals_max: usize,
    /// When a produce is acknowledged. Only tests that prove the crash checker change it.
    pub ack: AckPolicy,
    /// How often partition leaders check retention.
    pub retention_check_ms: u64,
    /// Largest proposal accepted: an entry above it could not travel in one peer frame, so its
    /// followers would never receive it. Refused with `TooLarge` at propose time instead.
    pub entry_bytes_max: u64,
    /// Idle groups stop ticking (`raft::quiesce`). Only safe where peers' brokers going away are
    /// reported (`PeerDown`) or the group has one member.
    pub quiesce: bool,
}

/// How many election timeouts a new group's other replicas wait before their first election,
/// leaving the preferred replica time to be elected (its vote requests may reach a replica
/// that has not started yet, which drops them; the preferred replica then tries again first).
const NON_PREFERRED_FIRST_ELECTION_TIMEOUTS: u32 = 3;

/// The first election timeout of a replica of a group that never had a term: the base for the
/// preferred replica (the first voter of the membership it was created with), three times
/// that for the others. A group that has had a term elects as usual.
fn first_election_timeout(recovery: &GroupRecovery, settings: &ReplicaSettings) -> Option<u32> {
    let fresh = recovery.hard_state.term.0 == 0 && recovery.last_index.0 == 0;
    let voters = &recovery.snapshot.meta.conf_state.voters;
    if !fresh || voters.len() < 2 {
        return None;
    }
    let base = settings.election_timeout_ticks;
    Some(if voters.first() == Some(&settings.node) {
        base
    } else {
        base.saturating_mul(NON_PREFERRED_FIRST_ELECTION_TIMEOUTS)
    })
}

/// When a produce is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckPolicy {
    /// After the batch is committed (fsynced on a majority) and applied: the product's promise.
    AfterCommit,
    /// Deliberately broken: as soon as the batch is proposed, before anything is durable. Exists
    /// only so tests can show that the crash-safety checker catches a broker that acks too early,
    /// and only in builds with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    BeforeCommitUnsafe,
}

type Reply<O> = oneshot::Sender<Result<O, ReplicaError>>;

/// Where a replica hands Raft messages for other brokers (the peer network).
pub type OutboundSink = std::sync::Arc<dyn Fn(Vec<RaftMessage>) + Send + Sync>;

/// Whether this broker has a live link to another broker right now (the peer network).
pub type LinkProbe = std::sync::Arc<dyn Fn(NodeId) -> bool + Send + Sync>;

pub struct Replica<M: StateMachine> {
    pub(super) node: RawNode<GroupLog>,
    pub(super) machine: M,
    group: GroupId,
    writer: Writer,
    settings: ReplicaSettings,
    /// The Ready handed to the writer and not yet durable. Only one at a time.
    in_flight: Option<Ready>,
    proposals: BTreeMap<LogIndex, (Term, Reply<M::Output>)>,
    /// Membership changes waiting for their commit.
    conf_proposals: BTreeMap<LogIndex, (Term, Reply<()>)>,
    applied: LogIndex,
    /// The applied index and state have moved past what is on disk.
    applied_dirty: bool,
    /// The newest hard state not yet handed to the writer (commit-only changes wait for a write).
    unwritten_hard_state: Option<crate::raft::HardState>,
    status: watch::Sender<ReplicaStatus>,
    /// Raft messages for other brokers; `None` on a broker without peers.
    outbound: Option<OutboundSink>,
    /// Who the controller assigns to this group, for senders the configuration does not list;
    /// `None` (a broker without peers, tests): nobody beyond the configuration.
    directory: Option<ReplicaDirectory>,
    /// Membership and progress were published at this tick count.
    ticks: u64,
    /// Whether a member's broker is reachable; `None`: no other broker ever is.
    links: Option<LinkProbe>,
    /// The tick timer; cancelled while the group is quiesced.
    tick_timer: Option<SpawnHandle>,
    /// The leadership transfer under way: its target and when it began (for the log).
    transfer: Option<(NodeId, std::time::Instant)>,
    /// When this replica last stepped down with writes waiting (`answer_lost_leadership`).
    stepped_down: Option<std::time::Instant>,
}

/// Propose a membership change; answered once its entry is committed and applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangeMembership {
    pub change: crate::raft::ConfChange,
    pub reply: Reply<()>,
}

/// Hand leadership to another voter (answered at once; the transfer completes asynchronously).
#[derive(Message)]
#[rtype(result = "Result<(), ReplicaError>")]
pub struct TransferLeadership(pub NodeId);

/// A Raft message for this replica from a peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub RaftMessage);

/// This broker's link to another broker went down (closed, or silent past its deadline). A
/// quiesced replica that depends on that broker wakes up: a follower whose leader it hosts starts
/// its election clock as if the whole timeout had passed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerDown(pub NodeId);

/// Propose an opaque command; answered after it is applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Propose<O: Send + 'static> {
    pub data: Vec<u8>,
    pub reply: oneshot::Sender<Result<O, ReplicaError>>,
}

/// The storage writer finished (or failed) the in-flight Ready.
#[derive(Message)]
#[rtype(result = "()")]
struct Persisted;

/// A compaction is durable: the log now starts after the snapshot.
#[derive(Message)]
#[rtype(result = "()")]
struct Compacted(Snapshot);

impl<M: StateMachine> Handler<Compacted> for Replica<M> {
    type Result = ();
    fn handle(&mut self, message: Compacted, _: &mut Context<Self>) {
        self.node.store_mut().on_compacted(message.0);
    }
}

/// Stop the replica (topic deleted or broker shutting down).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl<M: StateMachine> Replica<M> {
    /// Builds a replica from what storage recovered; `machine` was restored from the same recovery.
    pub fn new(
        store: Store,
        writer: Writer,
        group: GroupId,
        recovery: &GroupRecovery,
        machine: M,
        settings: ReplicaSettings,
    ) -> Result<(Replica<M>, watch::Receiver<ReplicaStatus>), crate::raft::StorageError> {
        let log = GroupLog::new(store, group, recovery);
        let mut config = RaftConfig::new(settings.node, group);
        config.election_timeout_ticks = settings.election_timeout_ticks;
        config.heartbeat_interval_ticks = settings.heartbeat_interval_ticks;
        config.applied = recovery.applied_index;
        config.seed = group.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ settings.node.0;
        config.quiesce = settings.quiesce;
        config.first_election_timeout_ticks = first_election_timeout(recovery, &settings);
        let node = RawNode::new(&config, log)?;
        let (status, receiver) = watch::channel(ReplicaStatus::default());
        let replica = Replica {
            node,
            machine,
            group,
            writer,
            settings,
            in_flight: None,
            proposals: BTreeMap::new(),
            conf_proposals: BTreeMap::new(),
            applied: recovery.applied_index,
            applied_dirty: false,
            unwritten_hard_state: None,
            status,
            outbound: None,
            directory: None,
            ticks: 0,
            links: None,
            tick_timer: None,
            transfer: None,
            stepped_down: None,
        };
        Ok((replica, receiver))
    }

    pub fn with_outbound(mut self, outbound: Option<OutboundSink>) -> Self {
        self.outbound = outbound;
        self
    }

    pub fn with_directory(mut self, directory: Option<ReplicaDirectory>) -> Self {
        self.directory = directory;
        self
    }

    pub fn with_links(mut self, links: Option<LinkProbe>) -> Self {
        self.links = links;
        self
    }

    /// Whether `node`'s broker is reachable from here (this broker always is).
    fn reachable(&self, node: NodeId) -> bool {
        node == self.settings.node || self.links.as_ref().is_some_and(|probe| probe(node))
    }

    /// Whether a quiesced replica may stay quiet: a follower needs its leader's broker, the
    /// leader every member's.
    fn quiet_is_safe(&self) -> bool {
        if self.node.role() == Role::Leader {
            let conf = self.node.conf_state();
            conf.voters
                .iter()
                .chain(&conf.learners)
                .all(|member| self.reachable(*member))
        } else {
            self.node
                .leader()
                .is_some_and(|leader| self.reachable(leader))
        }
    }

    /// Stops the tick timer while the group is quiesced and nothing local is pending (a write in
    /// flight, applied state not yet stored, waiting proposals); starts it again otherwise.
    fn settle_timer(&mut self, ctx: &mut Context<Self>) {
        // `publish_status` (just before, in `drive`) published the quiesced flag before the links
        // are checked here: whoever sends `PeerDown` reads it after marking the link down, so a
        // link lost while this replica quiesces is seen here or reported by a notice.
        if self.node.is_quiesced() && !self.quiet_is_safe() {
            self.node.wake(Wake::MemberDown);
            self.publish_status();
        }
        let quiet = self.node.is_quiesced()
            && self.in_flight.is_none()
            && !self.applied_dirty
            && self.unwritten_hard_state.is_none()
            && self.proposals.is_empty()
            && self.conf_proposals.is_empty()
            && !self.node.has_ready();
        match (quiet, self.tick_timer.is_some()) {
            (true, true) => {
                if let Some(timer) = self.tick_timer.take() {
                    ctx.cancel_future(timer);
                }
                self.publish_membership();
            }
            (false, false) => {
                let timer = ctx.run_interval(
                    Duration::from_millis(self.settings.tick_ms),
                    |replica, ctx| replica.tick(ctx),
                );
                self.tick_timer = Some(timer);
            }
            _ => {}
        }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Whether the controller assigns `node` to this group.
    fn assigned(&self, node: NodeId) -> Assigned {
        match &self.directory {
            Some(directory) if directory(self.group, node) => Assigned::Yes,
            _ => Assigned::No,
        }
    }

    /// Whether every entry of earlier terms is applied: the applied entry is of the current term.
    pub(super) fn applied_current_term(&self) -> bool {
        self.node.term_at(self.applied) == Some(self.node.term())
    }

    #[cfg(feature = "test-hooks")]
    pub(super) fn ack_policy(&self) -> AckPolicy {
        self.settings.ack
    }

    /// Proposes `data`; `reply` is answered when its index is applied, or at once on failure.
    /// Returns whether the proposal was accepted.
    pub(super) fn propose_with_reply(
        &mut self,
        data: impl Into<bytes::Bytes>,
        reply: Reply<M::Output>,
    ) -> bool {
        if self.proposals.len() >= self.settings.pending_proposals_max {
            let _ = reply.send(Err(ReplicaError::Overloaded));
            return false;
        }
        let data = data.into();
        let bytes = data.len() as u64;
        if bytes > self.settings.entry_bytes_max {
            let bytes_max = self.settings.entry_bytes_max;
            let _ = reply.send(Err(ReplicaError::TooLarge { bytes, bytes_max }));
            return false;
        }
        match self.node.propose(data) {
            Ok(index) => {
                let term = self.node.term();
                self.proposals.insert(index, (term, reply));
                true
            }
            Err(error) => {
                let _ = reply.send(Err(self.map_propose_error(error)));
                false
            }
        }
    }

    /// Proposals waiting for their apply.
    pub(super) fn proposals_waiting(&self) -> usize {
        self.proposals.len()
    }

    pub(super) fn pending_proposals_max(&self) -> usize {
        self.settings.pending_proposals_max
    }

    /// One election timeout, which is also how long a leadership transfer may take.
    pub(super) fn election_timeout(&self) -> Duration {
        Duration::from_millis(
            self.settings
                .tick_ms
                .saturating_mul(u64::from(self.settings.election_timeout_ticks)),
        )
    }

    pub(super) fn map_propose_error(&self, error: ProposeError) -> ReplicaError {
        match error {
            ProposeError::NotLeader { leader_hint } => ReplicaError::NotLeader {
                leader: leader_hint,
            },
            ProposeError::InvalidConfChange { reason } => ReplicaError::ConfChange(reason),
            ProposeError::InvalidTransferTarget { .. } => ReplicaError::Invalid(error.to_string()),
            _ => ReplicaError::Busy,
        }
    }

    /// Takes the next Ready if none is in flight, hands it to the writer or finishes it at once.
    pub(super) fn drive(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight.is_none() && self.node.has_ready() {
            let mut ready = self.node.ready();
            // A leader may send its appends before its own write is durable (its own log counts
            // toward a commit only once persisted), so its fsync and its followers' overlap.
            // Every other message (votes, replies) waits for the write, as the contract says.
            if self.node.role() == Role::Leader && !ready.messages.is_empty() {
                self.send(std::mem::take(&mut ready.messages));
            }
            if let Some(hard_state) = ready.hard_state {
                self.unwritten_hard_state = Some(hard_state);
            }
            // A commit-index-only change needs no fsync: it rides along with the next write.
            let needs_write =
                ready.must_sync || ready.snapshot.is_some() || !ready.entries.is_empty();
            if !needs_write {
                self.finish(ready);
                continue;
            }
            let batch = self.write_batch(&ready);
            self.applied_dirty = false;
            self.unwritten_hard_state = None;
            self.in_flight = Some(ready);
            let address = ctx.address();
            let submitted = self.writer.submit(
                batch,
                Box::new(move |result| {
                    if let Err(error) = result {
                        // The writer aborts the process on a failed commit; this is the last word.
                        tracing::error!(%error, "storage write failed");
                    }
                    address.do_send(Persisted);
                }),
            );
            if let Err(error) = submitted {
                tracing::error!(%error, group = self.group.0, "storage writer is gone; stopping replica");
                ctx.stop();
                return;
            }
        }
        if let Some((index, offset_below)) = self.machine.take_compaction() {
            self.compact(index, offset_below, ctx);
        }
        self.publish_status();
        self.settle_timer(ctx);
    }

    /// Drops entries up to `index` (all applied) with a snapshot of the applied state in their place.
    fn compact(&mut self, index: LogIndex, offset_below: u64, ctx: &mut Context<Self>) {
        assert!(
            index <= self.applied,
            "compacting {index:?} beyond applied {:?}",
            self.applied
        );
        let log = self.node.store();
        if index < log.first_index() {
            return;
        }
        let term = match log.term(index) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, group = self.group.0, "cannot compact: term unknown");
                return;
            }
        };
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state: self.node.status().conf_state,
            },
            data: self.machine.encode_state(),
        };
        let batch = WriteBatch {
            group: self.group,
            compact: Some(Compaction {
                snapshot: snapshot.clone(),
                offset_below,
            }),
            applied: Some((self.applied, self.machine.encode_state())),
            ..WriteBatch::default()
        };
        let address = ctx.address();
        let submitted = self.writer.submit(
            batch,
            Box::new(move |result| {
                if result.is_ok() {
                    address.do_send(Compacted(snapshot));
                }
            }),
        );
        if let Err(error) = submitted {
            tracing::error!(%error, "storage writer is gone");
            ctx.stop();
        }
    }

    fn write_batch(&self, ready: &Ready) -> WriteBatch {
        let mut offset_rows = Vec::new();
        for entry in &ready.entries {
            if let EntryPayload::Normal(data) = &entry.payload {
                if let Some(base) = self.machine.offset_row(data) {
                    offset_rows.push((base, entry.index));
                }
            }
        }
        WriteBatch {
            group: self.group,
            snapshot: ready.snapshot.clone(),
            hard_state: self.unwritten_hard_state,
            entries: ready.entries.clone(),
            offset_rows,
            applied: self
                .applied_dirty
                .then(|| (self.applied, self.machine.encode_state())),
            ..WriteBatch::default()
        }
    }

    /// Steps after persistence: send, apply, update the log view, advance.
    fn finish(&mut self, mut ready: Ready) {
        self.send(std::mem::take(&mut ready.messages));
        if let Some(snapshot) = &ready.snapshot {
            self.install_snapshot(snapshot);
        }
        let committed = std::mem::take(&mut ready.committed_entries);
        self.apply_entries(committed);
        self.node.store_mut().on_persisted(
            ready.snapshot.as_ref(),
            ready.hard_state,
            &ready.entries,
        );
        self.node.advance(ready);
    }

    fn send(&self, messages: Vec<RaftMessage>) {
        if messages.is_empty() {
            return;
        }
        match &self.outbound {
            Some(outbound) => outbound(messages),
            None => tracing::debug!(count = messages.len(), "no peers: dropping raft messages"),
        }
    }

    /// The state machine takes the snapshot's state; proposals it covers lost their slot.
    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        if let Err(reason) = self.machine.restore(&snapshot.data) {
            // The leader sent a state this build cannot read: continuing would diverge.
            panic!(
                "group {:?}: snapshot at {:?} does not restore: {reason}",
                self.group, snapshot.meta.index
            );
        }
        self.applied = snapshot.meta.index;
        self.applied_dirty = true;
        self.drop_answered_up_to(snapshot.meta.index);
        self.machine.after_apply();
    }

    /// A leader that steps down (a newer term, CheckQuorum on a leader cut off from its
    /// quorum, a transfer) keeps its waiting writes for one election timeout: a write the new
    /// leader commits in that time is applied here too and answered as usual (the normal case
    /// of a transfer). What still waits then is answered at once rather than when its index is
    /// applied, which for a cut-off leader is only after the partition heals. That answer says
    /// the outcome is unknown (`LeadershipLost`): a new leader may still commit the entry, so
    /// nothing resends it unless it is deduplicated.
    fn expire_lost_leadership(&mut self) {
        let Some(at) = self.stepped_down else { return };
        if self.node.role() == Role::Leader {
            self.stepped_down = None;
            return;
        }
        if at.elapsed() >= self.election_timeout() {
            self.stepped_down = None;
            self.answer_lost_leadership();
        }
    }

    fn answer_lost_leadership(&mut self) {
        for (_, (_, reply)) in std::mem::take(&mut self.proposals) {
            let _ = reply.send(Err(ReplicaError::LeadershipLost));
        }
        for (_, (_, reply)) in std::mem::take(&mut self.conf_proposals) {
            let _ = reply.send(Err(ReplicaError::LeadershipLost));
        }
    }

    fn drop_answered_up_to(&mut self, applied: LogIndex) {
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > applied {
                break;
            }
            let (_, reply) = entry.remove();
            let _ = reply.send(Err(ReplicaError::ProposalDropped));
        }
        while let Some(entry) = self.conf_proposals.first_entry() {
            if *entry.key() > applied {
                break;
            }
            let (_, reply) = entry.remove();
            let _ = reply.send(Err(ReplicaError::ProposalDropped));
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        for entry in entries {
            assert!(
                entry.index > self.applied,
                "group {:?}: entry {:?} applied twice (applied {:?})",
                self.group,
                entry.index,
                self.applied
            );
            let waiting = self.proposals.remove(&entry.index);
            match &entry.payload {
                EntryPayload::Normal(data) => {
                    let output = self.machine.apply(entry.index, data);
                    if let Some((term, reply)) = waiting {
                        let result = if term == entry.term {
                            Ok(output)
                        } else {
                            Err(ReplicaError::ProposalDropped)
                        };
                        let _ = reply.send(result);
                    }
                }
                EntryPayload::Noop | EntryPayload::ConfChange(_) => {
                    if let Some((_, reply)) = waiting {
                        let _ = reply.send(Err(ReplicaError::ProposalDropped));
                    }
                    if let Some((term, reply)) = self.conf_proposals.remove(&entry.index) {
                        let applied_as_proposed = term == entry.term
                            && matches!(entry.payload, EntryPayload::ConfChange(_));
                        let _ = reply.send(if applied_as_proposed {
                            Ok(())
                        } else {
                            Err(ReplicaError::ProposalDropped)
                        });
                    }
                }
            }
            self.applied = entry.index;
        }
        // Proposals at or below the applied index that were not answered lost their slot.
        self.drop_answered_up_to(self.applied);
        self.node.store_mut().release_applied(self.applied);
        self.applied_dirty = true;
        self.machine.after_apply();
    }

    fn publish_status(&mut self) {
        let leader = self.node.leader();
        let term = self.node.term();
        let is_leader = self.node.role() == Role::Leader;
        if !is_leader && self.status.borrow().is_leader {
            // Answered after an election timeout unless applied first (`expire_lost_leadership`).
            self.stepped_down = Some(std::time::Instant::now());
        }
        self.log_transfer(is_leader);
        let commit = self.node.commit();
        let applied = self.applied;
        let last_index = self.node.last_index();
        let quiesced = self.node.is_quiesced();
        self.status.send_if_modified(|current| {
            let same = current.leader == leader
                && current.term == term
                && current.is_leader == is_leader
                && current.commit == commit
                && current.applied == applied
                && current.last_index == last_index
                && current.quiesced == quiesced;
            if !same {
                current.leader = leader;
                current.term = term;
                current.is_leader = is_leader;
                current.commit = commit;
                current.applied = applied;
                current.last_index = last_index;
                current.quiesced = quiesced;
            }
            !same
        });
    }

    /// Logs how a leadership transfer ended and how long it took: handed over, or given up by a
    /// leader that still leads (its target did not catch up, or did not win in time).
    fn log_transfer(&mut self, is_leader: bool) {
        match (self.transfer, self.node.transferring()) {
            (None, Some(target)) => self.transfer = Some((target, std::time::Instant::now())),
            (Some((target, since)), None) => {
                self.transfer = None;
                let ms = since.elapsed().as_millis() as u64;
                if is_leader {
                    tracing::info!(
                        group = self.group.0,
                        to = target.0,
                        ms,
                        "leadership transfer given up"
                    );
                } else {
                    tracing::info!(
                        group = self.group.0,
                        to = target.0,
                        ms,
                        "leadership handed over"
                    );
                }
            }
            _ => {}
        }
    }

    /// Membership and follower progress change slowly or matter only to the balancer and
    /// `GET /v1/cluster`, so they are refreshed per tick rather than per Ready.
    fn publish_membership(&mut self) {
        let status = self.node.status();
        let progress = if status.role == Role::Leader {
            status.progress
        } else {
            Vec::new()
        };
        self.status.send_if_modified(|current| {
            let same = current.voters == status.conf_state.voters
                && current.learners == status.conf_state.learners
                && current.progress == progress
                && current.progress_commit == status.commit;
            if !same {
                current.voters = status.conf_state.voters;
                current.learners = status.conf_state.learners;
                current.progress = progress;
                current.progress_commit = status.commit;
            }
            !same
        });
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.node.tick();
        self.expire_lost_leadership();
        self.ticks += 1;
        self.publish_membership();
        // Persist a lagging applied state when the group is otherwise idle.
        let lagging = self.applied_dirty || self.unwritten_hard_state.is_some();
        if lagging && self.in_flight.is_none() && !self.node.has_ready() {
            let batch = WriteBatch {
                group: self.group,
                hard_state: self.unwritten_hard_state.take(),
                applied: Some((self.applied, self.machine.encode_state())),
                ..WriteBatch::default()
            };
            self.applied_dirty = false;
            if let Err(error) = self.writer.submit(batch, Box::new(|_| {})) {
                tracing::error!(%error, "storage writer is gone");
                ctx.stop();
            }
        }
        self.drive(ctx);
    }
}

impl<M: StateMachine> Actor for Replica<M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        let status = self.node.status();
        if status.conf_state.voters == [self.settings.node] && status.role != Role::Leader {
            self.node.campaign();
        }
        self.drive(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for (_, (_, reply)) in std::mem::take(&mut self.proposals) {
            let _ = reply.send(Err(ReplicaError::Stopped));
        }
        for (_, (_, reply)) in std::mem::take(&mut self.conf_proposals) {
            let _ = reply.send(Err(ReplicaError::Stopped));
        }
    }
}

/// Bound on messages queued per replica for senders that use `send` or `try_send` (they wait or
/// fail past it). `do_send` ignores it: client writes are bounded before they are sent, by the
/// handle's write slots (`WRITES_IN_FLIGHT_MAX`), and peer messages by the peer link's queue.
pub const MAILBOX_CAPACITY: usize = 4096;

impl<M: StateMachine> Handler<Persisted> for Replica<M> {
    type Result = ();
    fn handle(&mut self, _: Persisted, ctx: &mut Context<Self>) {
        let ready = self
            .in_flight
            .take()
            .expect("a Persisted notice always follows a submitted Ready");
        self.finish(ready);
        self.drive(ctx);
    }
}

impl<M: StateMachine> Handler<Inbound> for Replica<M> {
    type Result = ();
    fn handle(&mut self, message: Inbound, ctx: &mut Context<Self>) {
        let message = message.0;
        // The sender is authenticated (its certificate's broker id); whether it has authority
        // in this group is decided against this replica's own, current configuration.
        if let Err(refusal) = self.node.admit(&message, || self.assigned(message.from)) {
            admission::refused(self.group, &message, refusal);
            return;
        }
        if let Err(error) = self.node.step(message) {
            tracing::debug!(%error, group = self.group.0, "dropped raft message");
        }
        self.drive(ctx);
    }
}

impl<M: StateMachine> Handler<PeerDown> for Replica<M> {
    type Result = ();
    fn handle(&mut self, message: PeerDown, ctx: &mut Context<Self>) {
        let peer = message.0;
        if self.node.role() == Role::Leader {
            if self.node.is_quiesced() && self.node.conf_state().contains(peer) {
                self.node.wake(Wake::MemberDown);
                self.drive(ctx);
            }
        } else if self.node.leader() == Some(peer) {
            // Quiesced or not: a follower whose leader's connection closed campaigns early.
            self.node.leader_lost(peer);
            self.drive(ctx);
        }
    }
}

impl<M: StateMachine> Handler<Propose<M::Output>> for Replica<M> {
    type Result = ();
    fn handle(&mut self, message: Propose<M::Output>, ctx: &mut Context<Self>) {
        self.propose_with_reply(message.data, message.reply);
        self.drive(ctx);
    }
}

impl<M: StateMachine> Handler<ChangeMembership> for Replica<M> {
    type Result = ();
    fn handle(&mut self, message: ChangeMembership, ctx: &mut Context<Self>) {
        match self.node.propose_conf_change(message.change) {
            Ok(index) => {
                let term = self.node.term();
                self.conf_proposals.insert(index, (term, message.reply));
            }
            Err(error) => {
                let _ = message.reply.send(Err(self.map_propose_error(error)));
            }
        }
        self.drive(ctx);
    }
}

impl<M: StateMachine> Handler<TransferLeadership> for Replica<M> {
    type Result = Result<(), ReplicaError>;
    fn handle(&mut self, message: TransferLeadership, ctx: &mut Context<Self>) -> Self::Result {
        let result = self
            .node
            .transfer_leader(message.0)
            .map_err(|error| self.map_propose_error(error));
        self.drive(ctx);
        result
    }
}

impl<M: StateMachine> Handler<Stop> for Replica<M> {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
