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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::leader::{IdempotentProduce, Produce};
use super::machine::PartitionMachine;
use super::replica::{Replica, ReplicaError};
use crate::raft::{NodeId, Role};

/// How often parked writes look at whether leadership has settled.
const RECHECK: Duration = Duration::from_millis(2);

/// A write that arrived while leadership was changing hands.
pub(super) enum ParkedWrite {
    Plain(Produce),
    Idempotent(IdempotentProduce),
}

impl ParkedWrite {
    fn refuse(self, error: ReplicaError) {
        let _ = match self {
            ParkedWrite::Plain(write) => write.reply.send(Err(error)),
            ParkedWrite::Idempotent(write) => write.reply.send(Err(error)),
        };
    }
}

/// The writes waiting on one partition replica, oldest first.
#[derive(Default)]
pub(super) struct Parked {
    writes: VecDeque<ParkedWrite>,
    /// When the oldest waiting write arrived.
    since: Option<Instant>,
    /// The transfer's target, named to parked writes if this replica is no longer the leader and
    /// does not know the new one yet.
    target: Option<NodeId>,
    /// A recheck is scheduled.
    scheduled: bool,
}

impl Parked {
    pub(super) fn len(&self) -> usize {
        self.writes.len()
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
fn changing_hands(role: Role, transferring: bool) -> bool {
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
fn wait_max(election_timeout: Duration) -> Duration {
    election_timeout.saturating_add(election_timeout / 2)
}

/// Wakes the replica to look at its parked writes.
#[derive(Message)]
#[rtype(result = "()")]
struct Recheck;

impl Replica<PartitionMachine> {
    /// Whether a write that arrives now waits (`arrival`).
    pub(super) fn parks_writes(&self) -> bool {
        let parked = &self.machine.parked;
        let decision = arrival(
            changing_hands(self.node.role(), self.node.transferring().is_some()),
            parked.len(),
            parked.len() + self.proposals_waiting(),
            self.pending_proposals_max(),
            parked.since.map(|since| since.elapsed()),
            wait_max(self.election_timeout()),
        );
        decision == Arrival::Park
    }

    /// Parks `write` until leadership settles (called when `parks_writes`).
    pub(super) fn park(&mut self, write: ParkedWrite, ctx: &mut Context<Self>) {
        let target = self.node.transferring();
        let parked = &mut self.machine.parked;
        parked.since.get_or_insert_with(Instant::now);
        if target.is_some() {
            parked.target = target;
        }
        parked.writes.push_back(write);
        if !parked.scheduled {
            parked.scheduled = true;
            ctx.notify_later(Recheck, RECHECK);
        }
    }

    fn recheck_parked(&mut self, ctx: &mut Context<Self>) {
        self.machine.parked.scheduled = false;
        let role = self.node.role();
        let changing = changing_hands(role, self.node.transferring().is_some());
        let waited = self
            .machine
            .parked
            .since
            .map(|since| since.elapsed())
            .unwrap_or_default();
        if changing && waited < wait_max(self.election_timeout()) {
            self.machine.parked.scheduled = true;
            ctx.notify_later(Recheck, RECHECK);
            return;
        }
        let parked = std::mem::take(&mut self.machine.parked);
        let hint = self.node.leader().or(parked.target);
        for write in parked.writes {
            if changing {
                // Waited `wait_max`: the forwarder pauses and searches.
                write.refuse(ReplicaError::Busy);
                continue;
            }
            if role != Role::Leader {
                write.refuse(ReplicaError::NotLeader { leader: hint });
                continue;
            }
            match write {
                ParkedWrite::Plain(write) => self.handle(write, ctx),
                ParkedWrite::Idempotent(write) => self.handle(write, ctx),
            }
        }
    }
}

impl Handler<Recheck> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, _: Recheck, ctx: &mut Context<Self>) {
        self.recheck_parked(ctx);
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
    fn waiting_is_bounded_in_number_and_in_time() {
        assert_eq!(arrival(true, 0, 9, 10, None, MAX), Arrival::Park);
        assert_eq!(arrival(true, 0, 10, 10, None, MAX), Arrival::Handle);
        let short = Some(Duration::from_millis(999));
        assert_eq!(arrival(true, 1, 1, 10, short, MAX), Arrival::Park);
        assert_eq!(arrival(true, 1, 1, 10, Some(MAX), MAX), Arrival::Handle);
    }
}
