//! Sans-IO Raft.
mod types;
pub use types::{
    ConfChange, ConfState, Entry, EntryPayload, GroupId, HardState, LogIndex, NodeId, Snapshot,
    SnapshotMeta, Term,
};
