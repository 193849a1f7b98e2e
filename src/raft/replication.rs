//! Log replication: appends, heartbeats, snapshots, their replies, and commit.
//!
//! Owns what the leader sends each follower and how a follower accepts or rejects it. Must not
//! change terms or roles (the election module does), except that followers learn the leader.

use super::config::Canary;
use super::error::StorageError;
use super::message::{Message, MessageBody};
use super::node::{RawNode, Role};
use super::progress::{quorum_index, ProgressState};
use super::storage::LogStore;
use super::types::{Entry, EntryPayload, LogIndex, NodeId, Snapshot, Term};

impl<S: LogStore> RawNode<S> {
    /// Appends one entry of the current term to the leader's log; returns its index.
    pub(super) fn append_as_leader(&mut self, payload: EntryPayload) -> LogIndex {
        assert!(
            self.role == Role::Leader && self.log.last_term() <= self.term,
            "node {:?}: appending as {:?} in term {:?} after a log of term {:?}",
            self.id,
            self.role,
            self.term,
            self.log.last_term()
        );
        self.wake(super::types::Wake::Activity);
        let index = self.log.last_index().next();
        let entry = Entry {
            term: self.term,
            index,
            payload,
        };
        self.append_entries(&[entry]);
        if self.progress.len() > 1 {
            self.broadcast_pending = true;
        }
        index
    }

    pub(super) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.peers();
        for peer in peers {
            while self.maybe_send_append(peer, false) {}
        }
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        for peer in self.peers() {
            let matched = self.progress.get(&peer).map_or(LogIndex(0), |p| p.matched);
            let commit = self.log.commit.min(matched);
            self.send(peer, MessageBody::Heartbeat { commit });
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        let id = self.id;
        self.progress
            .keys()
            .copied()
            .filter(|peer| *peer != id)
            .collect()
    }

    /// Sends the next append to `to` if its progress allows; returns whether one was sent
    /// (with entries, or empty when `allow_empty`).
    pub(super) fn maybe_send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        if progress.is_paused(self.config.inflight_appends_max) {
            return false;
        }
        let next = progress.next;
        let prev_log_index = next.prev();
        let last_index = self.log.last_index();
        let prev_log_term = self.log.term(prev_log_index);
        let entries = self
            .log
            .entries(next, last_index.next(), self.config.append_bytes_max);
        let (prev_log_term, entries) = match (prev_log_term, entries) {
            (Ok(term), Ok(entries)) => (term, entries),
            (Err(StorageError::Compacted), _) | (_, Err(StorageError::Compacted)) => {
                return self.send_snapshot(to);
            }
            _ => return false,
        };
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last_sent = entries.last().map(|entry| entry.index);
        let commit = self.log.commit;
        self.send(
            to,
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            },
        );
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.on_sent(last_sent);
        }
        last_sent.is_some()
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let Ok(snapshot) = self.log.store.snapshot() else {
            return false;
        };
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.become_snapshot(snapshot.meta.index);
        }
        self.send(to, MessageBody::Snapshot { snapshot });
        false
    }

    /// Append, Heartbeat or Snapshot from the leader of our current term.
    pub(super) fn handle_leader_message(&mut self, message: Message) {
        if self.role == Role::Leader {
            return;
        }
        if matches!(self.role, Role::PreCandidate | Role::Candidate) {
            let term = self.term;
            self.become_follower(term, Some(message.from));
        }
        self.election_elapsed = 0;
        self.leader = Some(message.from);
        self.leader_unreachable = false;
        match message.body {
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => self.handle_append(message.from, prev_log_index, prev_log_term, entries, commit),
            MessageBody::Heartbeat { commit } => {
                let commit = commit.min(self.log.last_index());
                self.log.commit_to(commit);
                self.send(message.from, MessageBody::HeartbeatResponse);
            }
            MessageBody::Snapshot { snapshot } => self.handle_snapshot(message.from, snapshot),
            MessageBody::Quiesce { commit } => self.handle_quiesce(commit),
            _ => {}
        }
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_log_index: LogIndex,
        mut prev_log_term: Term,
        mut entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) {
        if !entries_follow(prev_log_index, prev_log_term, &entries) {
            // Not a log any leader has: drop it rather than let it break the log's invariants.
            return;
        }
        let commit = self.log.commit;
        let truncate_everything = self.canary(Canary::TruncateCommitted);
        if prev_log_index < commit && !truncate_everything {
            // The committed prefix matches by Log Matching; skip it rather than compare.
            entries.retain(|entry| entry.index > commit);
            prev_log_index = commit;
            prev_log_term = self.log.term(commit).unwrap_or_default();
        }
        if self.is_uninitialized() || !self.log.matches(prev_log_index, prev_log_term) {
            self.reject_append(from, prev_log_index, prev_log_term);
            return;
        }
        let last_new = LogIndex(prev_log_index.0 + entries.len() as u64);
        if truncate_everything {
            self.log.truncate_after(prev_log_index);
            self.truncate_conf_history(prev_log_index.next());
            self.append_entries(&entries);
        } else if let Some(position) = self.log.find_conflict(&entries) {
            let conflict = entries[position].index;
            assert!(
                conflict > commit,
                "node {:?}: conflict at {conflict:?} is at or below commit {commit:?}",
                self.id
            );
            self.truncate_conf_history(conflict);
            self.append_entries(&entries[position..]);
        }
        self.log.commit_to(leader_commit.min(last_new));
        self.send(
            from,
            MessageBody::AppendResponse {
                reject: false,
                index: last_new,
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        );
    }

    /// Fast backtracking: reply with our last entry at or below the rejected index whose term
    /// is not greater than the leader's, so the leader skips whole terms.
    fn reject_append(&mut self, from: NodeId, prev_log_index: LogIndex, prev_log_term: Term) {
        let floor = self.log.first_index().prev();
        let mut hint_index = prev_log_index.min(self.log.last_index());
        let mut hint_term = Term(0);
        while let Ok(term) = self.log.term(hint_index) {
            hint_term = term;
            if term <= prev_log_term || hint_index <= floor {
                break;
            }
            hint_index = hint_index.prev();
        }
        self.send(
            from,
            MessageBody::AppendResponse {
                reject: true,
                index: prev_log_index,
                hint_index,
                hint_term,
            },
        );
    }

    fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        let uninitialized = self.is_uninitialized();
        let reply_index = if index <= self.log.commit && !uninitialized {
            self.log.commit
        } else if self.log.matches(index, snapshot.meta.term) && !uninitialized {
            self.log.commit_to(index);
            index
        } else {
            self.conf_history = vec![(index, snapshot.meta.conf_state.clone())];
            self.log.restore(snapshot);
            self.refresh_role();
            index
        };
        self.send(
            from,
            MessageBody::AppendResponse {
                reject: false,
                index: reply_index,
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        );
    }

    /// AppendResponse or HeartbeatResponse, on the leader.
    pub(super) fn handle_follower_reply(&mut self, message: Message) {
        if self.role != Role::Leader {
            return;
        }
        let from = message.from;
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        match message.body {
            MessageBody::AppendResponse {
                reject: true,
                index,
                hint_index,
                hint_term,
            } => self.handle_append_rejection(from, index, hint_index, hint_term),
            MessageBody::AppendResponse { index, .. } => self.handle_append_success(from, index),
            MessageBody::HeartbeatResponse => {
                match progress.state {
                    ProgressState::Probe => progress.probe_sent = false,
                    ProgressState::Snapshot { .. } => progress.become_probe(),
                    ProgressState::Replicate => {
                        if progress.inflights.len() >= self.config.inflight_appends_max {
                            progress.inflights.pop_front();
                        }
                    }
                }
                if progress.matched < self.log.last_index() {
                    self.maybe_send_append(from, true);
                }
            }
            _ => {}
        }
    }

    fn handle_append_rejection(
        &mut self,
        from: NodeId,
        rejected: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    ) {
        let mut next_probe = hint_index.min(self.log.last_index());
        while hint_term > Term(0) && next_probe > LogIndex(0) {
            match self.log.term(next_probe) {
                Ok(term) if term > hint_term => next_probe = next_probe.prev(),
                _ => break,
            }
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        if progress.maybe_decrease(rejected, next_probe) {
            if progress.state == ProgressState::Replicate {
                progress.become_probe();
            }
            if rejected < self.log.first_index() {
                // Even our snapshot point does not match: only a snapshot can help (a new
                // replica that does not know the group's membership yet).
                self.send_snapshot(from);
            } else {
                self.maybe_send_append(from, true);
            }
        }
    }

    fn handle_append_success(&mut self, from: NodeId, index: LogIndex) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        let updated = progress.maybe_update(index);
        match progress.state {
            ProgressState::Snapshot { pending } if index >= pending => {
                progress.become_probe();
                progress.become_replicate();
            }
            _ if !updated => return,
            ProgressState::Probe => progress.become_replicate(),
            ProgressState::Replicate => progress.free_inflights_to(index),
            ProgressState::Snapshot { .. } => {}
        }
        self.maybe_commit();
        if self.role != Role::Leader {
            return;
        }
        while self.maybe_send_append(from, false) {}
        self.maybe_send_timeout_now(from);
    }

    /// Raft paper 5.4.2: commit the highest index a majority holds, but only by counting
    /// entries of the current term. Returns whether the commit index moved.
    pub(super) fn maybe_commit(&mut self) -> bool {
        let id = self.id;
        let optimistic = self.canary(Canary::CommitBeforeQuorumPersist);
        let matched_of = |member: &NodeId| {
            self.progress.get(member).map_or(LogIndex(0), |progress| {
                if optimistic && *member != id {
                    progress.matched.max(progress.next.prev())
                } else {
                    progress.matched
                }
            })
        };
        let mut matches: Vec<LogIndex> = self.conf().voters.iter().map(matched_of).collect();
        if self.canary(Canary::CountLearnersInQuorum) {
            matches.extend(self.conf().learners.iter().map(matched_of));
        }
        let candidate = quorum_index(matches, self.quorum());
        if candidate <= self.log.commit {
            return false;
        }
        let own_term = self.log.term(candidate) == Ok(self.term);
        if !own_term && !self.canary(Canary::CommitPreviousTermByCounting) {
            return false;
        }
        self.log.commit_to(candidate);
        self.maybe_step_down_after_removal();
        true
    }
}

/// Whether `entries` could follow (`prev_log_index`, `prev_log_term`) in a Raft log: consecutive
/// indexes, terms that never fall.
fn entries_follow(prev_log_index: LogIndex, prev_log_term: Term, entries: &[Entry]) -> bool {
    let mut index = prev_log_index;
    let mut term = prev_log_term;
    entries.iter().all(|entry| {
        let follows = entry.index == index.next() && entry.term >= term;
        index = entry.index;
        term = entry.term;
        follows
    })
}
