//! Single-server membership changes and leadership transfer.
//!
//! Owns the membership history (a change takes effect when appended and is undone when its
//! entry is truncated) and the leader-side checks before a change is proposed. Must not allow
//! two uncommitted changes, or a change before the leader committed an entry of its term.

use super::error::{ConfChangeRefusal, ProposeError};
use super::message::MessageBody;
use super::node::{RawNode, Role};
use super::progress::Progress;
use super::storage::LogStore;
use super::types::{ConfChange, Entry, EntryPayload, LogIndex, NodeId};

impl<S: LogStore> RawNode<S> {
    /// Appends entries to our log (after any truncation) and makes their conf changes effective.
    pub(super) fn append_entries(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        self.truncate_conf_history(first.index);
        self.log.append(entries);
        for entry in entries {
            if let EntryPayload::ConfChange(change) = entry.payload {
                let mut conf = self.conf().clone();
                conf.apply_change(change);
                self.conf_history.push((entry.index, conf));
                self.on_conf_changed(change);
            }
        }
    }

    /// Forgets the conf changes at or after `index` (their entries are being replaced).
    pub(super) fn truncate_conf_history(&mut self, index: LogIndex) {
        let before = self.conf_history.len();
        while self.conf_history.len() > 1
            && self.conf_history[self.conf_history.len() - 1].0 >= index
        {
            self.conf_history.pop();
        }
        if self.conf_history.len() != before {
            self.refresh_role();
        }
    }

    fn on_conf_changed(&mut self, change: ConfChange) {
        self.refresh_role();
        if self.role != Role::Leader {
            return;
        }
        // The conf change entry itself is the first thing a new member is sent.
        let next = self.log.last_index();
        match change {
            ConfChange::AddLearner(id) => {
                self.progress
                    .entry(id)
                    .or_insert_with(|| Progress::new(next));
            }
            ConfChange::PromoteLearner(_) => {}
            ConfChange::RemoveNode(id) => {
                if id != self.id {
                    self.progress.remove(&id);
                }
                if self.transfer_target == Some(id) {
                    self.transfer_target = None;
                }
            }
        }
    }

    /// Proposes a single-server membership change; returns the index of its entry.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<LogIndex, ProposeError> {
        self.check_can_propose()?;
        if self.pending_conf_index > self.log.commit {
            return Err(ProposeError::ConfChangePending);
        }
        if self.log.term(self.log.commit) != Ok(self.term) {
            return Err(ProposeError::NoCommitInTerm);
        }
        let conf = self.conf();
        let reason = match change {
            ConfChange::AddLearner(id) if conf.contains(id) => {
                Some(ConfChangeRefusal::AlreadyMember)
            }
            ConfChange::PromoteLearner(id) if !conf.is_learner(id) => {
                Some(ConfChangeRefusal::NotLearner)
            }
            ConfChange::RemoveNode(id) if !conf.contains(id) => Some(ConfChangeRefusal::NotMember),
            ConfChange::RemoveNode(id) if conf.voters == [id] => Some(ConfChangeRefusal::LastVoter),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(ProposeError::InvalidConfChange { reason });
        }
        let index = self.append_as_leader(EntryPayload::ConfChange(change));
        self.pending_conf_index = index;
        // Removing a lagging voter can complete a quorum for entries already held.
        self.maybe_commit();
        Ok(index)
    }

    /// Hands leadership to voter `to`: once its log matches ours it is told to campaign.
    /// Proposals are refused until the transfer completes or times out (one election timeout).
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if to == self.id || !self.conf().is_voter(to) {
            return Err(ProposeError::InvalidTransferTarget { target: to });
        }
        self.wake(super::types::Wake::Activity);
        self.transfer_target = Some(to);
        self.transfer_elapsed = 0;
        if !self.maybe_send_timeout_now(to) {
            self.maybe_send_append(to, true);
        }
        Ok(())
    }

    /// Sends TimeoutNow to the transfer target if it holds our whole log.
    pub(super) fn maybe_send_timeout_now(&mut self, to: NodeId) -> bool {
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|progress| progress.matched == self.log.last_index());
        if self.transfer_target == Some(to) && caught_up {
            self.send(to, MessageBody::TimeoutNow);
            return true;
        }
        false
    }

    /// A leader that removed itself leads until the removal commits, then steps down and asks
    /// the most caught-up voter to campaign.
    pub(super) fn maybe_step_down_after_removal(&mut self) {
        if self.role != Role::Leader || self.is_promotable() {
            return;
        }
        let removal_index = self.conf_history[self.conf_history.len() - 1].0;
        if removal_index > self.log.commit {
            return;
        }
        let last_index = self.log.last_index();
        let successor = self.other_voters().into_iter().find(|voter| {
            self.progress
                .get(voter)
                .is_some_and(|p| p.matched == last_index)
        });
        if let Some(successor) = successor {
            self.send(successor, MessageBody::TimeoutNow);
        }
        let term = self.term;
        self.become_follower(term, None);
    }
}
