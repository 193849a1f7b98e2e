//! Configuration of one Raft replica, and the planted bugs tests use to prove the simulator.

use super::types::{GroupId, LogIndex, NodeId};

/// Settings of one replica. Times are in ticks; the caller decides how long a tick is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: NodeId,
    pub group: GroupId,
    /// Base election timeout; each election waits a random number of ticks in `[t, 2t)`.
    pub election_timeout_ticks: u32,
    pub heartbeat_interval_ticks: u32,
    /// Appends in flight per follower while replicating (the pipelining window).
    pub inflight_appends_max: usize,
    /// Byte budget of one Append message (at least one entry is always sent).
    pub append_bytes_max: u64,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// An idle group stops ticking (`quiesce`); the caller must then report unreachable members'
    /// brokers with `wake`.
    pub quiesce: bool,
    /// Last index the caller has applied, from its durable state.
    pub applied: LogIndex,
    /// Seeds the election-timeout RNG.
    pub seed: u64,
    /// Ticks before this replica's first election after it starts, instead of
    /// `election_timeout_ticks`: a new group's preferred replica keeps the base and the others
    /// wait longer, so the preferred one is elected first and leaders start where placement put
    /// them.
    pub first_election_timeout_ticks: Option<u32>,
    /// A planted bug; only tests set it, and only builds with the `test-hooks` feature have it.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub canary: Option<Canary>,
}

impl Config {
    /// Defaults: election 10 ticks, heartbeat 2, 64 appends in flight, 1 MiB per append,
    /// PreVote and CheckQuorum on, quiescence off.
    pub fn new(id: NodeId, group: GroupId) -> Config {
        Config {
            id,
            group,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 2,
            inflight_appends_max: 64,
            append_bytes_max: 1024 * 1024,
            pre_vote: true,
            check_quorum: true,
            quiesce: false,
            applied: LogIndex(0),
            seed: id.0,
            first_election_timeout_ticks: None,
            #[cfg(feature = "test-hooks")]
            canary: None,
        }
    }
}

/// Deliberate safety bugs. Each one is a mistake that has broken real Raft implementations;
/// the simulator must catch every one of them. Without the `test-hooks` feature no replica can
/// be given one (`RawNode::canary` is constantly false).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Canary {
    /// Commit an entry of an earlier term once a majority holds it (Raft paper, figure 8).
    CommitPreviousTermByCounting,
    /// Let a vote (and the term it was cast in) go out without asking for an fsync.
    VoteBeforePersist,
    /// Count learners' acknowledgements towards the commit quorum.
    CountLearnersInQuorum,
    /// Treat entries sent to a follower as if the follower had persisted them.
    CommitBeforeQuorumPersist,
    /// Replace a follower's log after `prev_log_index` on every append, even below its commit.
    TruncateCommitted,
}
