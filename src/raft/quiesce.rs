//! Quiescence: an idle group stops its heartbeats and its election clocks.
//!
//! A leader (with `Config::quiesce`) whose every member holds its whole log, all of it committed,
//! and was heard from in the current CheckQuorum round, sends `Quiesce` instead of its next round
//! of heartbeats and stops ticking. A follower that receives it from its leader and holds exactly
//! the log the leader named stops counting election ticks. Nothing else changes: no term, vote or
//! log state, so quiescence cannot affect safety, only when elections start.
//!
//! A quiesced replica wakes on any message other than the leader's `Quiesce` (or, on the leader, a
//! heartbeat reply), on any proposal, campaign or transfer, and on `wake`. The caller must call
//! `wake` when a member's broker stops being reachable (a follower: its leader's broker): detecting
//! a failed leader of an idle group is then the transport's job, once per broker pair rather than
//! per group. Any replica that is awake keeps ticking and eventually sends the others a message,
//! which wakes them, so a group never stays quiet while one of its members needs it.

use super::message::{Message, MessageBody};
use super::node::{RawNode, Role};
use super::storage::LogStore;
use super::types::{LogIndex, NodeId, Wake};

impl<S: LogStore> RawNode<S> {
    /// Whether this replica stopped ticking because its group is idle.
    pub fn is_quiesced(&self) -> bool {
        self.quiesced
    }

    /// Ends quiescence (no-op when awake).
    pub fn wake(&mut self, why: Wake) {
        if !self.quiesced {
            return;
        }
        self.quiesced = false;
        self.heartbeat_elapsed = 0;
        if self.role == Role::Leader {
            // The first CheckQuorum round after waking counts only members heard from since.
            let id = self.id;
            for (member, progress) in self.progress.iter_mut() {
                progress.recent_active = *member == id;
            }
            self.election_elapsed = 0;
            // Heartbeat at the next tick, so followers learn at once that the leader is awake.
            self.heartbeat_elapsed = self.config.heartbeat_interval_ticks;
        } else {
            self.election_elapsed = match why {
                Wake::Activity => 0,
                Wake::MemberDown => self.config.election_timeout_ticks,
            };
        }
    }

    /// The connection to this follower's leader closed (its broker stopped, or the link broke):
    /// campaign within a few ticks instead of after a whole election timeout, quiesced or not.
    /// The other voters go in membership order,
    /// `election_timeout_ticks / 3` ticks apart, so two followers do not split the vote; it
    /// gives up the leader's lease, so it grants the first one's PreVote. A leader that is in fact
    /// alive keeps the leases of the followers that still hear from it, and they refuse the
    /// PreVote, so a broken link alone does not depose it. Only timing changes: elections are
    /// as safe as ever.
    pub fn leader_lost(&mut self, leader: NodeId) {
        if self.leader != Some(leader) || self.role != Role::Follower || self.leader_unreachable {
            return;
        }
        // A quiesced follower wakes first; then it campaigns in its turn like an awake one.
        self.wake(Wake::MemberDown);
        let rank = (self.conf().voters.iter())
            .filter(|voter| **voter != leader)
            .position(|voter| *voter == self.id);
        let Some(rank) = rank else {
            return;
        };
        let stagger = (self.config.election_timeout_ticks / 3).max(1);
        let wait = 1 + stagger.saturating_mul(rank as u32);
        // The leader stays known (a TimeoutNow from it, on a new connection, is still its own);
        // only its lease is given up.
        self.leader_unreachable = true;
        self.election_elapsed = self.randomized_election_timeout.saturating_sub(wait);
    }

    /// Whether `leader_lost` was told of the leader this follower follows and no leader has
    /// been heard from since.
    pub fn is_leader_unreachable(&self) -> bool {
        self.leader_unreachable
    }

    /// Whether `message` leaves a quiesced replica quiet: the leader's own `Quiesce` on a
    /// follower, a heartbeat reply on the leader.
    pub(super) fn keeps_quiet(&self, message: &Message) -> bool {
        if message.term != self.term {
            return false;
        }
        match message.body {
            MessageBody::Quiesce { .. } => {
                self.role != Role::Leader && self.leader == Some(message.from)
            }
            MessageBody::HeartbeatResponse => self.role == Role::Leader,
            _ => false,
        }
    }

    /// On the leader's heartbeat tick: whether the group is idle enough to quiesce.
    pub(super) fn can_quiesce(&self) -> bool {
        let last = self.log.last_index();
        self.config.quiesce
            && self.role == Role::Leader
            && self.transfer_target.is_none()
            && !self.broadcast_pending
            && self.log.commit == last
            && self.log.persisted_index() == last
            && self.pending_conf_index <= self.log.commit
            && self.conf().members().all(|member| {
                self.progress
                    .get(&member)
                    .is_some_and(|progress| progress.matched == last && progress.recent_active)
            })
    }

    /// The leader quiesces: every member learns the commit index and that it may stop its clock.
    pub(super) fn quiesce_as_leader(&mut self) {
        let commit = self.log.commit;
        let id = self.id;
        let members: Vec<_> = self.conf().members().filter(|m| *m != id).collect();
        for member in members {
            self.send(member, MessageBody::Quiesce { commit });
        }
        self.quiesced = true;
    }

    /// A follower's handling of its leader's `Quiesce` (the leader is already recorded).
    pub(super) fn handle_quiesce(&mut self, commit: LogIndex) {
        let commit = commit.min(self.log.last_index());
        self.log.commit_to(commit);
        if self.config.quiesce && self.log.last_index() == commit && self.log.commit == commit {
            self.quiesced = true;
        }
    }
}
