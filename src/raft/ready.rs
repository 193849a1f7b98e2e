//! Building a `Ready` and taking it back through `advance`.
//!
//! Owns the hand-out bookkeeping: what was handed out is not handed out again, and nothing is
//! treated as persisted or applied before `advance` says so.

use super::config::Canary;
use super::message::Ready;
use super::node::{RawNode, Role};
use super::storage::LogStore;

impl<S: LogStore> RawNode<S> {
    pub fn has_ready(&self) -> bool {
        self.broadcast_pending
            || !self.messages.is_empty()
            || self.hard_state() != self.hard_state_handed
            || self.log.has_ready_entries()
            || self.log.has_committed_for_ready()
    }

    /// Hands out everything that is ready. Call `advance` with it before the next `ready`.
    pub fn ready(&mut self) -> Ready {
        if self.broadcast_pending {
            self.broadcast_pending = false;
            self.broadcast_append();
        }
        let snapshot = self.log.snapshot_for_ready();
        let entries = self.log.entries_for_ready();
        let hard_state = self.hard_state();
        let previous = self.hard_state_handed;
        let vote_changed = hard_state.term != previous.term || hard_state.vote != previous.vote;
        let vote_needs_sync = vote_changed && !self.canary(Canary::VoteBeforePersist);
        let must_sync = snapshot.is_some() || !entries.is_empty() || vote_needs_sync;
        self.hard_state_handed = hard_state;
        let committed_entries = if snapshot.is_some() {
            Vec::new()
        } else {
            self.log.committed_for_ready()
        };
        Ready {
            hard_state: (hard_state != previous).then_some(hard_state),
            snapshot,
            entries,
            must_sync,
            messages: std::mem::take(&mut self.messages),
            committed_entries,
        }
    }

    /// The caller has persisted, sent and applied `ready` and updated its store.
    pub fn advance(&mut self, ready: Ready) {
        if let Some(snapshot) = &ready.snapshot {
            self.log.on_snapshot_persisted(snapshot);
        }
        self.log.on_entries_persisted(&ready.entries);
        if let Some(last) = ready.committed_entries.last() {
            self.log.on_applied(last.index);
        }
        if self.role == Role::Leader {
            let persisted = self.log.persisted_index();
            let id = self.id;
            if let Some(progress) = self.progress.get_mut(&id) {
                progress.maybe_update(persisted);
            }
            self.maybe_commit();
        }
    }
}
