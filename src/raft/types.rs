//! Types shared by the Raft core, the storage layer and the partition actor.
//!
//! Everything here is plain data: serde-serializable (postcard on disk and on the wire),
//! fixed-width integers only.

use serde::{Deserialize, Serialize};

/// A broker, and therefore a Raft node: one replica of a group lives on one broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// A Raft group. Group 0 is the controller (metadata); every partition is its own group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u64);

/// A Raft term. Terms start at 0 (no leader ever elected) and only grow.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in a group's Raft log. The first real entry has index 1; index 0 means "none".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by a new leader at the start of its term.
    Noop,
    /// Opaque application data (a record batch, a metadata command). Encoded as one byte string
    /// (length and bytes, the same bytes postcard writes for a sequence of `u8`), not element by
    /// element, which costs a function call per byte. Shared: the unstable log, a Ready, every
    /// follower's append and the storage batch hold the same buffer, never a copy of it.
    Normal(bytes::Bytes),
    /// A single-server membership change; effective on every node as soon as it is appended.
    ConfChange(ConfChange),
}

/// One Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub payload: EntryPayload,
}

impl Entry {
    /// Approximate size in bytes, used for byte limits on appends and reads.
    pub fn size_bytes(&self) -> u64 {
        let payload = match &self.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Normal(data) => data.len() as u64,
            EntryPayload::ConfChange(_) => 16,
        };
        payload + 24
    }
}

/// A single-server membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Add a non-voting member that receives the log.
    AddLearner(NodeId),
    /// Turn an existing learner into a voter.
    PromoteLearner(NodeId),
    /// Remove a voter or learner.
    RemoveNode(NodeId),
}

/// Group membership. A node is in at most one of the two lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfState {
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

/// The state that must be durable before any message that depends on it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: LogIndex,
}

/// Describes the log prefix that a snapshot replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log index covered by the snapshot.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
    /// Membership as of `index`.
    pub conf_state: ConfState,
}

/// A snapshot: metadata plus the application's opaque state bytes as of `meta.index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl ConfState {
    /// A bootstrap membership: the given voters, no learners.
    pub fn with_voters(voters: Vec<NodeId>) -> ConfState {
        ConfState {
            voters,
            learners: Vec::new(),
        }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Voters and learners, voters first.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Applies a change. Changes that do not fit the membership (adding a member twice, promoting
    /// a voter, removing a stranger) leave it unchanged: the leader validated the change against
    /// the same log prefix, so replaying it on any node yields the same result.
    pub fn apply_change(&mut self, change: ConfChange) {
        match change {
            ConfChange::AddLearner(id) => {
                if !self.contains(id) {
                    self.learners.push(id);
                }
            }
            ConfChange::PromoteLearner(id) => {
                if self.is_learner(id) {
                    self.learners.retain(|member| *member != id);
                    self.voters.push(id);
                }
            }
            ConfChange::RemoveNode(id) => {
                self.voters.retain(|member| *member != id);
                self.learners.retain(|member| *member != id);
            }
        }
    }
}

/// Why a quiesced replica woke up, which decides how its election clock restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Activity in the group (a message, a proposal): the leader is known to be alive.
    Activity,
    /// A member's broker became unreachable: on a follower whose leader it was, as if the whole
    /// election timeout had passed since the leader was last heard from.
    MemberDown,
}
