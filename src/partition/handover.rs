//! Writes that arrive while a partition's leadership changes hands wait for the handover
//! instead of being refused.
//!
//! A leader transferring its leadership refuses proposals until the transfer ends (Raft's rule:
//! the target must catch up with a log that stops growing), and a candidate has no leader to
//! name. Answering such a write "not leader, no hint" sends its forwarder into a pause and a
//! search; during a drain or a preferred-leader transfer that search was most of the gap a
//! partition saw without an acknowledged write. Instead the replica parks the write, unencoded
//! and without an offset, and decides once leadership has settled:
//! - still (or now) the leader: the write is handled as if it had just arrived;
//! - not the leader: it is answered `NotLeader` naming the new leader (or the transfer's target
//!   while the new leader is not yet known), so the forwarder asks that broker at once, with no
//!   pause. Nothing was proposed, so the resend is safe for every kind of write.
//!
//! Bounds: at most `pending_proposals_max` writes wait (shared with proposals in flight; client
//! writes are bounded before that by the partition's write slots, `WRITES_IN_FLIGHT_MAX`), and
//! none waits longer than one and a half election timeouts (`wait_max`): a transfer is given up
//! after one election timeout of the leader's ticks, and a campaign ends within one, so the half
//! is room for late ticks. Parked writes are checked every `RECHECK`.
//!
//! This module holds the queue and the decisions, as plain values; the actor side (parking a
//! `Produce`, the recheck timer, handling a write again) is in `leader`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::replica::ReplicaError;
use crate::raft::{NodeId, Role};

/// How often parked writes look at whether leadership has settled.
pub(super) const RECHECK: Duration = Duration::from_millis(2);

/// The writes waiting on one partition replica, oldest first.
pub(super) struct Parked<W> {
    writes: VecDeque<W>,
    /// When the oldest waiting write arrived.
    since: Option<Instant>,
    /// The transfer's target, named to parked writes if this replica is no longer the leader and
    /// does not know the new one yet.
    target: Option<NodeId>,
    /// A recheck is scheduled.
    scheduled: bool,
}

impl<W> Default for Parked<W> {
    fn default() -> Self {
        Parked {
            writes: VecDeque::new(),
            since: None,
            target: None,
            scheduled: false,
        }
    }
}

impl<W> Parked<W> {
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    /// How long the oldest parked write has waited.
    pub(super) fn waited(&self) -> Option<Duration> {
        self.since.map(|since| since.elapsed())
    }

    /// Parks `write`, remembering the transfer `target` if one is under way; returns whether a
    /// recheck must be scheduled (none is yet).
    pub(super) fn push(&mut self, write: W, target: Option<NodeId>) -> bool {
        self.since.get_or_insert_with(Instant::now);
        if target.is_some() {
            self.target = target;
        }
        self.writes.push_back(write);
        !std::mem::replace(&mut self.scheduled, true)
    }

    /// The target of the transfer the writes waited for, if any.
    pub(super) fn target(&self) -> Option<NodeId> {
        self.target
    }

    /// Called when a recheck runs: no recheck is scheduled any more.
    pub(super) fn rechecking(&mut self) {
        self.scheduled = false;
    }

    /// Marks a recheck scheduled again (leadership has not settled).
    pub(super) fn again(&mut self) {
        self.scheduled = true;
    }

    /// Takes every parked write, oldest first.
    pub(super) fn take(&mut self) -> Vec<W> {
        std::mem::take(self).writes.into()
    }
}

/// What a replica does with a write that arrives now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    Handle,
    Park,
}

/// Whether leadership is changing hands: this replica leads with a transfer under way, or
/// campaigns. A pre-candidate may never win (a cut-off follower), so it names no leader at once.
pub(super) fn changing_hands(role: Role, transferring: bool) -> bool {
    (role == Role::Leader && transferring) || role == Role::Candidate
}

/// A write waits while leadership is changing hands, or while earlier writes wait (so writes
/// are handled in the order they came), as long as room is left (`waiting` counts parked writes
/// and proposals in flight) and the oldest parked write has not waited `wait_max`.
pub(super) fn arrival(
    changing: bool,
    parked: usize,
    waiting: usize,
    waiting_max: usize,
    waited: Option<Duration>,
    wait_max: Duration,
) -> Arrival {
    let room = waiting < waiting_max;
    let patient = waited.is_none_or(|waited| waited < wait_max);
    if (changing || parked > 0) && room && patient {
        Arrival::Park
    } else {
        Arrival::Handle
    }
}

/// The longest a write waits for leadership to settle: one and a half election timeouts.
pub(super) fn wait_max(election_timeout: Duration) -> Duration {
    election_timeout.saturating_add(election_timeout / 2)
}

/// What becomes of the parked writes at a recheck.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Release {
    /// Leadership is still changing hands: keep waiting.
    Wait,
    /// This replica leads: handle each write as if it had just arrived.
    Handle,
    /// Answer each write with this error (the new leader, or busy after `wait_max`).
    Refuse(ReplicaError),
}

/// The decision at a recheck: `hint` is the leader this replica knows of, else the transfer's
/// target.
pub(super) fn release(
    changing: bool,
    waited: Duration,
    wait_max: Duration,
    is_leader: bool,
    hint: Option<NodeId>,
) -> Release {
    match (changing, is_leader) {
        (true, _) if waited < wait_max => Release::Wait,
        // Waited `wait_max`: the forwarder pauses and searches.
        (true, _) => Release::Refuse(ReplicaError::Busy),
        (false, true) => Release::Handle,
        (false, false) => Release::Refuse(ReplicaError::NotLeader { leader: hint }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(1);

    #[test]
    fn leadership_changes_hands_during_a_transfer_and_a_campaign() {
        assert!(changing_hands(Role::Leader, true));
        assert!(changing_hands(Role::Candidate, false));
        assert!(!changing_hands(Role::Leader, false));
        assert!(!changing_hands(Role::Follower, false));
        assert!(!changing_hands(Role::PreCandidate, false));
    }

    #[test]
    fn writes_wait_while_hands_change_or_earlier_writes_wait() {
        assert_eq!(arrival(true, 0, 0, 10, None, MAX), Arrival::Park);
        assert_eq!(arrival(false, 0, 0, 10, None, MAX), Arrival::Handle);
        let short = Some(Duration::from_millis(1));
        // Settled, but earlier writes are still parked: this one queues behind them.
        assert_eq!(arrival(false, 1, 1, 10, short, MAX), Arrival::Park);
    }

    #[test]
    fn a_recheck_waits_handles_or_names_the_new_leader() {
        let short = Duration::from_millis(10);
        let hint = Some(NodeId(2));
        assert_eq!(release(true, short, MAX, true, hint), Release::Wait);
        assert_eq!(
            release(true, MAX, MAX, true, hint),
            Release::Refuse(ReplicaError::Busy)
        );
        assert_eq!(release(false, short, MAX, true, hint), Release::Handle);
        assert_eq!(
            release(false, short, MAX, false, hint),
            Release::Refuse(ReplicaError::NotLeader { leader: hint })
        );
    }

    #[test]
    fn parked_writes_come_out_in_order_with_the_target() {
        let mut parked = Parked::default();
        assert!(
            parked.push(1, Some(NodeId(3))),
            "the first write schedules a recheck"
        );
        assert!(!parked.push(2, None), "one recheck at a time");
        assert_eq!((parked.len(), parked.target()), (2, Some(NodeId(3))));
        assert_eq!(parked.take(), vec![1, 2]);
        assert_eq!(parked.len(), 0);
        assert!(
            parked.push(3, None),
            "taken: the next write schedules again"
        );
    }

    #[test]
    fn waiting_is_bounded_in_number_and_in_time() {
        assert_eq!(arrival(true, 0, 9, 10, None, MAX), Arrival::Park);
        assert_eq!(arrival(true, 0, 10, 10, None, MAX), Arrival::Handle);
        let short = Some(Duration::from_millis(999));
        assert_eq!(arrival(true, 1, 1, 10, short, MAX), Arrival::Park);
        assert_eq!(arrival(true, 1, 1, 10, Some(MAX), MAX), Arrival::Handle);
    }
}
