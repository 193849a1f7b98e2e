//! `RawNode`: one replica of one Raft group as a pure state machine.
//!
//! Owns term, vote, role, the log view, membership and the leader's progress. Inputs are
//! `tick`, `step`, `propose*`, `campaign`, `transfer_leader`; the only output is `Ready`.
//! Must not do I/O, read clocks or use global randomness.

use std::collections::BTreeMap;

use super::config::{Canary, Config};
use super::error::{ProposeError, StepError, StorageError};
use super::log::RaftLog;
use super::message::{Message, MessageBody};
use super::progress::Progress;
use super::rng::Rng;
use super::storage::LogStore;
use super::types::{ConfState, EntryPayload, GroupId, HardState, LogIndex, NodeId, Term, Wake};

/// The role a replica plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
    /// A follower that is a learner in its membership: it never campaigns and is never counted.
    Learner,
}

/// A snapshot of a replica's state for callers, tests and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub group: GroupId,
    pub role: Role,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub last_index: LogIndex,
    pub persisted_index: LogIndex,
    pub conf_state: ConfState,
    /// On the leader: each member's matched index (the leader's own is its persisted index).
    pub progress: Vec<(NodeId, LogIndex)>,
}

/// One replica of a Raft group.
pub struct RawNode<S> {
    pub(super) id: NodeId,
    pub(super) group: GroupId,
    pub(super) config: Config,
    pub(super) role: Role,
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
    pub(super) leader: Option<NodeId>,
    pub(super) log: RaftLog<S>,
    /// Membership after each conf change in the log, oldest first; the first element is the
    /// membership of the snapshot. The last element is in effect.
    pub(super) conf_history: Vec<(LogIndex, ConfState)>,
    /// Index of the last conf change a leader appended (or its last index when elected).
    pub(super) pending_conf_index: LogIndex,
    pub(super) progress: BTreeMap<NodeId, Progress>,
    pub(super) votes: BTreeMap<NodeId, bool>,
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    pub(super) randomized_election_timeout: u32,
    pub(super) transfer_target: Option<NodeId>,
    pub(super) transfer_elapsed: u32,
    /// Proposals were appended; appends go out when the next Ready is built (batching).
    pub(super) broadcast_pending: bool,
    pub(super) messages: Vec<Message>,
    /// The hard state as of the last Ready handed out (or as persisted at start).
    pub(super) hard_state_handed: HardState,
    pub(super) rng: Rng,
    /// The group is idle and this replica does not tick (`quiesce`).
    pub(super) quiesced: bool,
    /// The connection to the leader this follower follows was reported lost (`leader_lost`):
    /// its lease no longer holds, so it grants PreVotes, until it hears from a leader again.
    pub(super) leader_unreachable: bool,
}

impl<S: LogStore> RawNode<S> {
    /// Restores a replica from its persisted state. Membership is the snapshot's plus the conf
    /// changes in the persisted log after it.
    pub fn new(config: &Config, store: S) -> Result<RawNode<S>, StorageError> {
        assert!(config.election_timeout_ticks > config.heartbeat_interval_ticks);
        assert!(config.inflight_appends_max > 0 && config.heartbeat_interval_ticks > 0);
        let (hard_state, snapshot_meta) = store.initial_state()?;
        let last_index = store.last_index();
        let applied = config.applied.max(snapshot_meta.index).min(last_index);
        let commit = hard_state.commit.max(applied).min(last_index);
        let mut conf_history = vec![(snapshot_meta.index, snapshot_meta.conf_state.clone())];
        let mut low = store.first_index();
        while low <= last_index {
            let chunk = store.entries(low, last_index.next(), 4 * 1024 * 1024)?;
            let Some(last) = chunk.last() else {
                return Err(StorageError::Unavailable);
            };
            low = last.index.next();
            for entry in &chunk {
                if let EntryPayload::ConfChange(change) = entry.payload {
                    let mut conf = conf_history[conf_history.len() - 1].1.clone();
                    conf.apply_change(change);
                    conf_history.push((entry.index, conf));
                }
            }
        }
        let mut node = RawNode {
            id: config.id,
            group: config.group,
            config: config.clone(),
            role: Role::Follower,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            log: RaftLog::new(store, commit, applied),
            conf_history,
            pending_conf_index: LogIndex(0),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: config.election_timeout_ticks,
            transfer_target: None,
            transfer_elapsed: 0,
            broadcast_pending: false,
            messages: Vec::new(),
            hard_state_handed: HardState {
                term: hard_state.term,
                vote: hard_state.vote,
                commit,
            },
            rng: Rng::new(config.seed ^ config.id.0.rotate_left(32) ^ config.group.0),
            quiesced: false,
            leader_unreachable: false,
        };
        node.reset_election_timeout();
        if let Some(first) = config.first_election_timeout_ticks {
            node.randomized_election_timeout = first;
        }
        node.refresh_role();
        Ok(node)
    }

    #[cfg(feature = "test-hooks")]
    pub(super) fn canary(&self, canary: Canary) -> bool {
        self.config.canary == Some(canary)
    }

    #[cfg(not(feature = "test-hooks"))]
    pub(super) fn canary(&self, _canary: Canary) -> bool {
        false
    }

    pub(super) fn conf(&self) -> &ConfState {
        &self.conf_history[self.conf_history.len() - 1].1
    }

    /// A voter in its own membership: may campaign.
    pub(super) fn is_promotable(&self) -> bool {
        self.conf().is_voter(self.id)
    }

    /// A replica that knows no membership yet (created to join an existing group). It accepts
    /// nothing but a snapshot, which brings the membership along.
    pub(super) fn is_uninitialized(&self) -> bool {
        self.conf().voters.is_empty() && self.conf().learners.is_empty()
    }

    pub(super) fn quorum(&self) -> usize {
        self.conf().voters.len() / 2 + 1
    }

    pub(super) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.commit,
        }
    }

    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        let term = self.term;
        self.send_with_term(to, term, body);
    }

    pub(super) fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.messages.push(Message {
            group: self.group,
            from: self.id,
            to,
            term,
            body,
        });
    }

    pub(super) fn reset_election_timeout(&mut self) {
        let base = self.config.election_timeout_ticks;
        self.randomized_election_timeout = base + self.rng.below(u64::from(base)) as u32;
    }

    /// Keeps a follower's role in line with its membership (learner or not).
    pub(super) fn refresh_role(&mut self) {
        let is_learner = self.conf().is_learner(self.id);
        match self.role {
            Role::Follower if is_learner => self.role = Role::Learner,
            Role::Learner if !is_learner => self.role = Role::Follower,
            _ => {}
        }
    }

    pub fn tick(&mut self) {
        if self.quiesced {
            return;
        }
        if self.role == Role::Leader {
            self.tick_leader();
            return;
        }
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.is_promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        if message.group != self.group {
            return Err(StepError::WrongGroup {
                expected: self.group,
                got: message.group,
            });
        }
        if message.to != self.id {
            return Err(StepError::WrongRecipient {
                expected: self.id,
                got: message.to,
            });
        }
        if self.quiesced && !self.keeps_quiet(&message) {
            self.wake(Wake::Activity);
        }
        if !self.step_term(&message) {
            return Ok(());
        }
        match message.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => {
                self.handle_vote_request(message)
            }
            MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } => {
                self.handle_vote_response(message)
            }
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Quiesce { .. }
            | MessageBody::Snapshot { .. } => self.handle_leader_message(message),
            MessageBody::AppendResponse { .. } | MessageBody::HeartbeatResponse => {
                self.handle_follower_reply(message)
            }
            MessageBody::TimeoutNow => {
                if self.role != Role::Leader && self.is_promotable() {
                    self.hup(true);
                }
            }
        }
        Ok(())
    }

    /// Appends a normal entry; returns its index.
    pub fn propose(&mut self, data: impl Into<bytes::Bytes>) -> Result<LogIndex, ProposeError> {
        self.check_can_propose()?;
        Ok(self.append_as_leader(EntryPayload::Normal(data.into())))
    }

    pub(super) fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.transfer_target.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(())
    }

    /// Start an election now. A single-voter group elects itself at once.
    pub fn campaign(&mut self) {
        self.wake(Wake::Activity);
        self.hup(false);
    }

    pub fn store(&self) -> &S {
        &self.log.store
    }

    pub fn store_mut(&mut self) -> &mut S {
        &mut self.log.store
    }

    /// Term of the entry at `index` in this replica's view of the log, if it holds it.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term(index).ok()
    }

    /// This node's role; cheaper than `status()` on hot paths.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current term; cheaper than `status()` on hot paths.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The membership in effect.
    pub fn conf_state(&self) -> &ConfState {
        self.conf()
    }

    /// The leader this node knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The commit index.
    /// On a leader handing its leadership over: the voter it hands it to.
    pub fn transferring(&self) -> Option<NodeId> {
        self.transfer_target
    }

    pub fn commit(&self) -> LogIndex {
        self.log.commit
    }

    /// The last index of the log (persisted or not).
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    pub fn status(&self) -> Status {
        let role = self.role;
        let progress = if role == Role::Leader {
            self.progress
                .iter()
                .map(|(id, progress)| (*id, progress.matched))
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.id,
            group: self.group,
            role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.log.commit,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            persisted_index: self.log.persisted_index(),
            conf_state: self.conf().clone(),
            progress,
        }
    }
}
