//! Sans-IO Raft: one replica of one group as a pure state machine.
//!
//! Role: leader election (PreVote, CheckQuorum), log replication (probe / replicate, pipelined
//! appends in a bounded window, byte-limited batches, fast conflict backtracking), commit by
//! counting current-term entries only, learners, single-server membership changes, leadership
//! transfer and snapshots for followers behind the compacted prefix.
//!
//! Owns: term, vote, role, commit and applied indexes, the unpersisted log tail, membership and
//! the leader's per-follower progress. Must not: do I/O, use async, actix, tokio, redb, rustls,
//! read clocks or use global randomness. Time is `tick()`; randomness comes from `Config::seed`.
//!
//! # The Ready contract
//!
//! Drive a `RawNode` with `tick`, `step`, `propose`, `propose_conf_change`, `campaign` and
//! `transfer_leader`. When `has_ready()` is true, take `ready()` and, in this order:
//! 1. persist `snapshot` (replaces the log and the application state), then `hard_state`, then
//!    `entries` (a first index at or below the persisted last index replaces that suffix), and
//!    fsync if `must_sync` (a Ready with only a commit change has `must_sync == false`);
//! 2. send `messages` (never before step 1: votes and acknowledgements promise durability);
//! 3. apply `committed_entries` in order (committed and already persisted locally);
//! 4. update the `LogStore` (through `store_mut`) so it reflects what was persisted;
//! 5. call `advance(ready)`.
//!
//! A message from another node goes through `admit` first (`admission`: whether its sender may
//! send it to this replica's group); only an admitted message is stepped.
//!
//! One Ready is in flight at a time; `step`, `tick` and proposals may be called while it is.
//! Membership changes take effect when appended and are undone if their entry is truncated.
//! To compact, the caller drops a prefix of its store and makes `snapshot()` return the new
//! snapshot; followers that need a compacted entry then receive `MessageBody::Snapshot`.
//!
//! With `Config::quiesce`, an idle group stops ticking (`quiesce`); the caller then calls
//! `wake(Wake::MemberDown)` when a member's broker stops being reachable.

mod admission;
mod config;
mod election;
mod error;
mod log;
mod membership;
mod message;
mod node;
mod progress;
mod quiesce;
mod ready;
mod replication;
mod rng;
mod storage;
mod types;

pub use admission::{Assigned, Refusal};
pub use config::{Canary, Config};
pub use error::{ConfChangeRefusal, ProposeError, StepError, StorageError};
pub use message::{Message, MessageBody, Ready};
pub use node::{RawNode, Role, Status};
pub use storage::{LogStore, MemStore};
pub use types::{
    ConfChange, ConfState, Entry, EntryPayload, GroupId, HardState, LogIndex, NodeId, Snapshot,
    SnapshotMeta, Term, Wake,
};

#[cfg(test)]
mod tests;
