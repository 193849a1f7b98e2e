//! Messages exchanged between the replicas of one Raft group, and the `Ready` a node hands its
//! caller.
//!
//! Owns the wire shape (serde, postcard on the wire). Every message names its group, sender,
//! recipient and the sender's term. Must not carry anything the receiver cannot check against
//! its own log: indexes and terms only, never local state such as progress.

use serde::{Deserialize, Serialize};

use super::types::{Entry, EntryPayload, GroupId, HardState, LogIndex, NodeId, Snapshot, Term};

/// One Raft message. `term` is the sender's current term, except for pre-votes: a `PreVote`
/// carries the term the sender would campaign in, and a granting `PreVoteResponse` echoes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub group: GroupId,
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

/// What a message asks or answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Would you vote for me in `term`? Changes no state on the receiver.
    PreVote {
        last_log_index: LogIndex,
        last_log_term: Term,
    },
    PreVoteResponse {
        reject: bool,
    },
    /// Vote for me in `term`. `transfer` marks an election started by a leadership transfer,
    /// which voters honour even while they still hear from the current leader.
    Vote {
        last_log_index: LogIndex,
        last_log_term: Term,
        transfer: bool,
    },
    VoteResponse {
        reject: bool,
    },
    /// Entries following (`prev_log_index`, `prev_log_term`), plus the leader's commit index.
    Append {
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
    },
    /// On success `index` is the last index known to match the leader's log. On rejection
    /// `index` is the rejected `prev_log_index` and (`hint_index`, `hint_term`) is the last entry
    /// of the follower's log at or below it whose term is not greater than `prev_log_term`,
    /// so the leader can skip a whole conflicting term in one round trip.
    AppendResponse {
        reject: bool,
        index: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    },
    /// Small and separate from appends so it is never queued behind them. `commit` is capped at
    /// what the follower is known to hold.
    Heartbeat {
        commit: LogIndex,
    },
    HeartbeatResponse,
    /// The leader's latest snapshot, for a follower that needs compacted entries.
    Snapshot {
        snapshot: Snapshot,
    },
    /// Start an election now (leadership transfer).
    TimeoutNow,
    /// Sent by a leader instead of a heartbeat when the group is idle: every member holds the
    /// leader's whole log, committed up to `commit`. A follower holding exactly that stops its
    /// election clock until something else arrives (see `quiesce`). Never answered.
    Quiesce {
        commit: LogIndex,
    },
}

impl Message {
    /// Bytes of application data the message carries (entry payloads, snapshot data), for
    /// callers that bound what they hold by size without looking inside messages.
    pub fn payload_bytes(&self) -> usize {
        match &self.body {
            MessageBody::Append { entries, .. } => entries
                .iter()
                .map(|entry| match &entry.payload {
                    EntryPayload::Normal(data) => data.len(),
                    _ => 0,
                })
                .sum(),
            MessageBody::Snapshot { snapshot } => snapshot.data.len(),
            _ => 0,
        }
    }
}

impl MessageBody {
    /// Short name for traces and fault accounting.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse { .. } => "AppendResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse => "HeartbeatResponse",
            MessageBody::Snapshot { .. } => "Snapshot",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::Quiesce { .. } => "Quiesce",
        }
    }
}

/// Work for the caller, to be executed in order: persist `snapshot`, `hard_state` and
/// `entries` (fsync when `must_sync`), then send `messages`, then apply `committed_entries`,
/// then update the `LogStore`, then call `advance` with this Ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    /// Install before the entries; replaces the log and the application state.
    pub snapshot: Option<Snapshot>,
    /// If `entries[0].index` is at or below the persisted last index, that suffix is replaced.
    pub entries: Vec<Entry>,
    /// Entries, a snapshot, or a term or vote change: fsync before sending messages.
    pub must_sync: bool,
    pub messages: Vec<Message>,
    /// Committed and persisted locally; apply in order.
    pub committed_entries: Vec<Entry>,
}
