//! Elections: PreVote, votes, CheckQuorum leases and role changes.
//!
//! Owns the transitions between follower, pre-candidate, candidate and leader. Must not touch
//! log replication beyond appending the new leader's no-op.

use super::message::{Message, MessageBody};
use super::node::{RawNode, Role};
use super::progress::Progress;
use super::storage::LogStore;
use super::types::{EntryPayload, NodeId, Term};

enum Poll {
    Won,
    Lost,
    Pending,
}

impl<S: LogStore> RawNode<S> {
    /// Applies the term rules (Raft paper 5.1) before a message is handled. Returns whether
    /// the message should be handled further.
    pub(super) fn step_term(&mut self, message: &Message) -> bool {
        let is_vote_request = matches!(
            message.body,
            MessageBody::PreVote { .. } | MessageBody::Vote { .. }
        );
        if message.term > self.term {
            let transfer = matches!(message.body, MessageBody::Vote { transfer: true, .. });
            if is_vote_request && !transfer && self.in_lease() {
                // CheckQuorum: a live leader is known, so this candidate cannot win honestly.
                return false;
            }
            match message.body {
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResponse { reject: false } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Quiesce { .. }
                | MessageBody::Snapshot { .. } => {
                    self.become_follower(message.term, Some(message.from))
                }
                _ => self.become_follower(message.term, None),
            }
            return true;
        }
        if message.term < self.term {
            match message.body {
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Quiesce { .. }
                    if self.config.check_quorum || self.config.pre_vote =>
                {
                    // A stale leader learns our term and steps down.
                    self.send(message.from, MessageBody::HeartbeatResponse);
                }
                MessageBody::PreVote { .. } => {
                    self.send(message.from, MessageBody::PreVoteResponse { reject: true });
                }
                _ => {}
            }
            return false;
        }
        true
    }

    fn in_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader.is_some()
            && !self.leader_unreachable
            && self.election_elapsed < self.config.election_timeout_ticks
    }

    pub(super) fn handle_vote_request(&mut self, message: Message) {
        let (last_log_index, last_log_term, is_pre_vote) = match message.body {
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            } => (last_log_index, last_log_term, true),
            MessageBody::Vote {
                last_log_index,
                last_log_term,
                ..
            } => (last_log_index, last_log_term, false),
            _ => return,
        };
        let can_vote = self.vote == Some(message.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (is_pre_vote && message.term > self.term);
        let grant = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        let term = if grant { message.term } else { self.term };
        let body = if is_pre_vote {
            MessageBody::PreVoteResponse { reject: !grant }
        } else {
            MessageBody::VoteResponse { reject: !grant }
        };
        if grant && !is_pre_vote {
            self.vote = Some(message.from);
            self.election_elapsed = 0;
        }
        self.send_with_term(message.from, term, body);
    }

    pub(super) fn handle_vote_response(&mut self, message: Message) {
        let poll = match (self.role, &message.body) {
            (Role::PreCandidate, MessageBody::PreVoteResponse { reject }) => {
                self.record_vote(message.from, !reject)
            }
            (Role::Candidate, MessageBody::VoteResponse { reject })
                if message.term == self.term =>
            {
                self.record_vote(message.from, !reject)
            }
            _ => return,
        };
        match (poll, self.role) {
            (Poll::Won, Role::PreCandidate) => self.campaign_for_real(false),
            (Poll::Won, _) => self.become_leader(),
            (Poll::Lost, _) => {
                let term = self.term;
                self.become_follower(term, None);
            }
            (Poll::Pending, _) => {}
        }
    }

    /// Counts a vote; only voters of our membership count.
    fn record_vote(&mut self, from: NodeId, granted: bool) -> Poll {
        if self.conf().is_voter(from) {
            self.votes.entry(from).or_insert(granted);
        }
        let granted_count = self.votes.values().filter(|granted| **granted).count();
        let rejected_count = self.votes.values().filter(|granted| !**granted).count();
        let quorum = self.quorum();
        if granted_count >= quorum {
            Poll::Won
        } else if rejected_count >= quorum || self.conf().voters.len() - rejected_count < quorum {
            Poll::Lost
        } else {
            Poll::Pending
        }
    }

    /// Starts an election: a pre-vote first unless disabled or the election is a transfer.
    pub(super) fn hup(&mut self, transfer: bool) {
        if self.role == Role::Leader || !self.is_promotable() {
            return;
        }
        if self.config.pre_vote && !transfer {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.votes.clear();
            self.election_elapsed = 0;
            self.reset_election_timeout();
            let id = self.id;
            if let Poll::Won = self.record_vote(id, true) {
                self.campaign_for_real(false);
                return;
            }
            let body = MessageBody::PreVote {
                last_log_index: self.log.last_index(),
                last_log_term: self.log.last_term(),
            };
            let term = Term(self.term.0 + 1);
            for voter in self.other_voters() {
                self.send_with_term(voter, term, body.clone());
            }
        } else {
            self.campaign_for_real(transfer);
        }
    }

    fn campaign_for_real(&mut self, transfer: bool) {
        self.role = Role::Candidate;
        self.term = Term(self.term.0 + 1);
        self.vote = Some(self.id);
        self.leader = None;
        self.votes.clear();
        self.election_elapsed = 0;
        self.reset_election_timeout();
        let id = self.id;
        if let Poll::Won = self.record_vote(id, true) {
            self.become_leader();
            return;
        }
        let body = MessageBody::Vote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            transfer,
        };
        for voter in self.other_voters() {
            self.send(voter, body.clone());
        }
    }

    pub(super) fn other_voters(&self) -> Vec<NodeId> {
        let id = self.id;
        self.conf()
            .voters
            .iter()
            .copied()
            .filter(|voter| *voter != id)
            .collect()
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.quiesced = false;
        self.leader = leader;
        self.leader_unreachable = false;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.progress.clear();
        self.votes.clear();
        self.transfer_target = None;
        self.broadcast_pending = false;
        self.reset_election_timeout();
        self.refresh_role();
    }

    /// Raft paper 5.2 and 8: a new leader appends a no-op so entries of earlier terms commit
    /// through it.
    pub(super) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.quiesced = false;
        self.leader = Some(self.id);
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.transfer_target = None;
        let next = self.log.last_index().next();
        let members: Vec<NodeId> = self.conf().members().collect();
        self.progress = members
            .into_iter()
            .map(|member| (member, Progress::new(next)))
            .collect();
        let persisted = self.log.persisted_index();
        let id = self.id;
        if let Some(own) = self.progress.get_mut(&id) {
            own.maybe_update(persisted);
            own.become_replicate();
        }
        // Any conf change still in the log may be uncommitted: no new one until it commits.
        self.pending_conf_index = self.log.last_index();
        self.append_as_leader(EntryPayload::Noop);
        self.broadcast_pending = false;
        self.broadcast_append();
        self.maybe_commit();
    }

    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.transfer_target.is_some() {
            self.transfer_elapsed += 1;
            if self.transfer_elapsed >= self.config.election_timeout_ticks {
                self.transfer_target = None;
            }
        }
        if self.election_elapsed >= self.config.election_timeout_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_active() {
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            if self.can_quiesce() {
                self.quiesce_as_leader();
            } else {
                self.broadcast_heartbeat();
            }
        }
    }

    /// CheckQuorum: whether a majority of voters was heard from since the last round.
    fn quorum_active(&mut self) -> bool {
        let id = self.id;
        let voters = self.conf().voters.clone();
        let active = voters
            .iter()
            .filter(|voter| {
                **voter == id || self.progress.get(voter).is_some_and(|p| p.recent_active)
            })
            .count();
        for (member, progress) in self.progress.iter_mut() {
            progress.recent_active = *member == id;
        }
        active >= self.quorum()
    }
}
