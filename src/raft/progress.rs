//! The leader's view of each member's log: how far it matches, what to send next, and the
//! window of appends in flight.
//!
//! Owns the probe / replicate / snapshot state machine of one follower. Must not decide
//! commit or send messages itself: the leader asks it and acts.

use std::collections::VecDeque;

use super::types::LogIndex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProgressState {
    /// Next index unknown: one append at a time until the follower accepts one.
    Probe,
    /// The follower accepts appends: send optimistically up to the in-flight window.
    Replicate,
    /// A snapshot ending at `pending` was sent; wait for the follower to install it.
    Snapshot { pending: LogIndex },
}

#[derive(Clone, Debug)]
pub(super) struct Progress {
    /// Highest index known to be persisted on the member and equal to the leader's entry.
    pub(super) matched: LogIndex,
    /// Next index to send.
    pub(super) next: LogIndex,
    pub(super) state: ProgressState,
    /// In probe state: an append was sent and no answer or heartbeat reply came back yet.
    pub(super) probe_sent: bool,
    /// Last index of each append in flight, oldest first (replicate state only).
    pub(super) inflights: VecDeque<LogIndex>,
    /// Heard from since the last CheckQuorum round.
    pub(super) recent_active: bool,
}

impl Progress {
    pub(super) fn new(next: LogIndex) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: VecDeque::new(),
            recent_active: true,
        }
    }

    pub(super) fn become_probe(&mut self) {
        self.next = match self.state {
            ProgressState::Snapshot { pending } => pending.max(self.matched).next(),
            _ => self.matched.next(),
        };
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.clear();
    }

    pub(super) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.inflights.clear();
    }

    pub(super) fn become_snapshot(&mut self, pending: LogIndex) {
        self.state = ProgressState::Snapshot { pending };
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// A success reply for `index`; returns whether `matched` moved.
    pub(super) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        updated
    }

    /// A rejection of `rejected` with the leader-side hint `hint_index`; returns false for
    /// stale rejections.
    pub(super) fn maybe_decrease(&mut self, rejected: LogIndex, hint_index: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched.next();
            return true;
        }
        if self.next.prev() != rejected {
            return false;
        }
        self.next = rejected.min(hint_index.next()).max(self.matched.next());
        self.probe_sent = false;
        true
    }

    pub(super) fn is_paused(&self, inflight_appends_max: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.len() >= inflight_appends_max,
            ProgressState::Snapshot { .. } => true,
        }
    }

    /// Records an append just sent whose last entry is `last_index` (`None` when empty).
    pub(super) fn on_sent(&mut self, last_index: Option<LogIndex>) {
        match self.state {
            ProgressState::Replicate => {
                if let Some(last) = last_index {
                    self.next = last.next();
                    self.inflights.push_back(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot { .. } => {}
        }
    }

    pub(super) fn free_inflights_to(&mut self, index: LogIndex) {
        while self.inflights.front().is_some_and(|last| *last <= index) {
            self.inflights.pop_front();
        }
    }
}

/// The highest index held by a majority of `voter_matches` (each voter's matched index).
pub(super) fn quorum_index(mut voter_matches: Vec<LogIndex>, quorum: usize) -> LogIndex {
    if voter_matches.is_empty() || quorum == 0 {
        return LogIndex(0);
    }
    voter_matches.sort_unstable_by(|left, right| right.cmp(left));
    voter_matches[quorum.min(voter_matches.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_index_is_the_majority_minimum() {
        let matches = vec![LogIndex(5), LogIndex(3), LogIndex(9)];
        assert_eq!(quorum_index(matches, 2), LogIndex(5));
        let five = vec![
            LogIndex(1),
            LogIndex(7),
            LogIndex(7),
            LogIndex(2),
            LogIndex(9),
        ];
        assert_eq!(quorum_index(five, 3), LogIndex(7));
    }

    #[test]
    fn stale_rejection_is_ignored_in_probe_and_replicate() {
        let mut progress = Progress::new(LogIndex(10));
        assert!(!progress.maybe_decrease(LogIndex(5), LogIndex(2)));
        assert!(progress.maybe_decrease(LogIndex(9), LogIndex(3)));
        assert_eq!(progress.next, LogIndex(4));
        progress.maybe_update(LogIndex(6));
        progress.become_replicate();
        assert!(!progress.maybe_decrease(LogIndex(6), LogIndex(0)));
    }

    #[test]
    fn replicate_window_pauses_when_full() {
        let mut progress = Progress::new(LogIndex(1));
        progress.become_replicate();
        progress.on_sent(Some(LogIndex(3)));
        progress.on_sent(Some(LogIndex(5)));
        assert!(progress.is_paused(2));
        progress.free_inflights_to(LogIndex(3));
        assert!(!progress.is_paused(2));
        assert_eq!(progress.next, LogIndex(6));
    }
}
