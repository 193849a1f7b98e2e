//! The leader's side of one partition: every decision a leader makes before it proposes or
//! answers (offset assignment, the idempotent producer check, retention proposals, the fetch
//! window) as pure functions over plain values, and the thin actor handlers that feed them the
//! replica's state and carry out the outcome (propose, answer, park a long poll).
//!
//! Offsets are assigned when a batch is proposed (`next_base_offset`), so a duplicate must never
//! reach the log: an idempotent batch is checked (`check_idempotent`) against the applied dedup
//! state and the leader's own in-flight proposals first. Apply (in `machine`) is the same on
//! every replica and knows nothing of this module. Must not know about HTTP, brokers or the
//! cluster; the time comes in as a value (`SetRetention::clock`).

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::batch::{self, PartitionCommand};
use super::dedup::AppendResult;
use super::dedup::{decide, Decision, DedupState, ProducerStamp, PRODUCERS_PER_PARTITION_MAX};
use super::encoded::{AppendPrefix, EncodedRecords};
use super::handover::{self, Arrival, Release};
use super::machine::{
    FetchError, FetchWindow, ParkedWrite, PartitionMachine, Waiter, PARKED_FETCHES,
};
#[cfg(feature = "test-hooks")]
use super::replica::AckPolicy;
use super::replica::{Replica, ReplicaError};
use super::retention::plan_log_start;
use super::retention::Retention;
use crate::clock::SharedClock;
use crate::raft::{EntryPayload, LogStore, Role, Term};

/// Append records; answered with the batch's offsets once committed and applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Produce {
    pub records: EncodedRecords,
    pub timestamp_ms: u64,
    /// A conditional append: written only if the batch would start at this offset (nothing else
    /// was appended since the writer read the log), else refused with `TailMoved`.
    pub expected_base: Option<u64>,
    pub reply: oneshot::Sender<Result<AppendResult, ReplicaError>>,
}

/// Append records as batch `stamp.sequence` of producer `stamp.producer`; a batch already
/// appended is answered with its original offsets and not written again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IdempotentProduce {
    pub records: EncodedRecords,
    pub timestamp_ms: u64,
    pub stamp: ProducerStamp,
    pub reply: oneshot::Sender<Result<AppendResult, ReplicaError>>,
}

/// Ask where a fetch from `offset` may read; waits up to `wait_ms` for new records when at the end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fetch {
    pub offset: u64,
    pub wait_ms: u64,
    pub reply: oneshot::Sender<Result<FetchWindow, FetchError>>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct FetchTimeout(u64);

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct RetentionTick {
    pub(super) now_ms: u64,
}

/// What the leader does with a fetch.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchStep {
    Answer(Result<FetchWindow, FetchError>),
    /// At the end of the log with time to wait: park until an apply or the timeout.
    Park,
}

/// The fetch window for `offset` against the committed range, or a long poll to park.
pub fn fetch_step(
    offset: u64,
    wait_ms: u64,
    high_watermark: u64,
    log_start_offset: u64,
    parked: usize,
    parked_max: usize,
) -> FetchStep {
    if offset < log_start_offset || offset > high_watermark {
        return FetchStep::Answer(Err(FetchError::OffsetOutOfRange {
            offset,
            log_start_offset,
            high_watermark,
        }));
    }
    if offset < high_watermark || wait_ms == 0 || parked >= parked_max {
        return FetchStep::Answer(Ok(FetchWindow {
            offset,
            high_watermark,
            log_start_offset,
        }));
    }
    FetchStep::Park
}

/// The offset the next batch starts at: the leader's own tail in its current term, else the end
/// of the newest append in the log above the applied index (entries of earlier terms a new leader
/// will commit), else the high watermark.
pub fn next_base_offset(
    tail: Option<(Term, u64)>,
    term: Term,
    high_watermark: u64,
    newest_unapplied_end: impl FnOnce() -> Option<u64>,
) -> u64 {
    match tail {
        Some((tail_term, tail)) if tail_term == term => tail,
        _ => newest_unapplied_end().map_or(high_watermark, |end| end.max(high_watermark)),
    }
}

/// `Ok` to propose an idempotent batch of `count` records; `Err(Ok(offsets))` for a duplicate,
/// answered with the original offsets; `Err(Err(_))` to refuse.
pub fn check_idempotent(
    applied_current_term: bool,
    dedup: &DedupState,
    stamp: ProducerStamp,
    count: u64,
    in_flight: Option<u64>,
) -> Result<(), Result<AppendResult, ReplicaError>> {
    // Only once every entry of earlier terms is applied is the replicated dedup state complete.
    if !applied_current_term {
        return Err(Err(ReplicaError::Retry(
            "the new leader is still applying the entries of earlier terms".into(),
        )));
    }
    let sequence = stamp.sequence;
    match decide(dedup, stamp, count, in_flight) {
        Decision::Propose => Ok(()),
        Decision::Duplicate(original) => Err(Ok(original)),
        Decision::InFlight => Err(Err(ReplicaError::Retry(format!(
            "sequence {sequence} of this producer is being appended"
        )))),
        Decision::Gap { expected } => Err(Err(ReplicaError::Invalid(format!(
            "sequence gap: this partition expects sequence {expected} from the producer, got {sequence}"
        )))),
        Decision::Old { last } => Err(Err(ReplicaError::Invalid(format!(
            "sequence {sequence} is older than the producer's last appended sequence {last}"
        )))),
        Decision::CountMismatch { sequence, count } => Err(Err(ReplicaError::Invalid(format!(
            "sequence {sequence} was appended with {count} records on this partition; \
             a retry must send the same records"
        )))),
    }
}

impl Replica<PartitionMachine> {
    /// `next_base_offset` with the end of the newest append above the applied index, read from
    /// the log only on the first proposal of a term.
    pub(super) fn tail_offset(&mut self) -> u64 {
        let term = self.node.term();
        let node = &self.node;
        let high_watermark = self.machine.state().high_watermark;
        let tail = next_base_offset(self.machine.tail, term, high_watermark, || {
            let applied = node.status().applied;
            let log = node.store();
            let mut index = log.last_index();
            while index >= log.first_index() && index > applied {
                let entries = log.entries(index, index.next(), u64::MAX).ok()?;
                if let Some(EntryPayload::Normal(data)) = entries.first().map(|e| &e.payload) {
                    let end = batch::decode_header(data).ok().and_then(|h| h.end_offset());
                    if end.is_some() {
                        return end;
                    }
                }
                index = index.prev();
            }
            None
        });
        self.machine.tail = Some((term, tail));
        tail
    }

    /// Proposes `records` at the tail with the prefix `make_prefix(base_offset)` builds; returns
    /// the term and the batch's end if the proposal was accepted (the reply waits for the apply).
    fn propose_append(
        &mut self,
        records: EncodedRecords,
        make_prefix: impl FnOnce(u64) -> AppendPrefix,
        reply: oneshot::Sender<Result<AppendResult, ReplicaError>>,
    ) -> Option<(Term, u64)> {
        let term = self.node.term();
        let base_offset = self.tail_offset();
        let count = records.count();
        let end = base_offset + count;
        let data = records.into_command(make_prefix(base_offset));
        #[cfg(feature = "test-hooks")]
        let reply = match self.ack_policy() {
            AckPolicy::BeforeCommitUnsafe => {
                let (ignored, _) = oneshot::channel();
                let _ = reply.send(Ok(AppendResult { base_offset, count }));
                ignored
            }
            AckPolicy::AfterCommit => reply,
        };
        self.propose_with_reply(data, reply).then(|| {
            self.machine.tail = Some((term, end));
            (term, end)
        })
    }

    fn not_leader(&self) -> Option<ReplicaError> {
        (self.node.role() != Role::Leader).then(|| ReplicaError::NotLeader {
            leader: self.node.leader(),
        })
    }

    /// Forgets in-flight marks that were applied or belong to an earlier term, once the map is
    /// larger than the producers a partition remembers anyway.
    fn prune_in_flight(&mut self) {
        if self.machine.in_flight.len() <= PRODUCERS_PER_PARTITION_MAX {
            return;
        }
        let term = self.node.term();
        let machine = &mut self.machine;
        let dedup = &machine.state.dedup;
        machine
            .in_flight
            .retain(|(kind, producer), (proposed_term, sequence)| {
                *proposed_term == term
                    && dedup
                        .last(*kind, *producer)
                        .is_none_or(|last| last.sequence < *sequence)
            });
    }
}

/// Wakes the replica to look at its parked writes (`handover`).
#[derive(Message)]
#[rtype(result = "()")]
struct Recheck;

impl Replica<PartitionMachine> {
    /// Whether a write that arrives now waits for leadership to settle (`handover::arrival`).
    fn parks_writes(&self) -> bool {
        let parked = &self.machine.parked;
        let decision = handover::arrival(
            handover::changing_hands(self.node.role(), self.node.transferring().is_some()),
            parked.len(),
            parked.len() + self.proposals_waiting(),
            self.pending_proposals_max(),
            parked.waited(),
            handover::wait_max(self.election_timeout()),
        );
        decision == Arrival::Park
    }

    /// Parks `write` until leadership settles (called when `parks_writes`).
    fn park(&mut self, write: ParkedWrite, ctx: &mut Context<Self>) {
        let target = self.node.transferring();
        if self.machine.parked.push(write, target) {
            ctx.notify_later(Recheck, handover::RECHECK);
        }
    }

    fn recheck_parked(&mut self, ctx: &mut Context<Self>) {
        self.machine.parked.rechecking();
        let role = self.node.role();
        let decision = handover::release(
            handover::changing_hands(role, self.node.transferring().is_some()),
            self.machine.parked.waited().unwrap_or_default(),
            handover::wait_max(self.election_timeout()),
            role == Role::Leader,
            self.node.leader().or(self.machine.parked.target()),
        );
        if decision == Release::Wait {
            self.machine.parked.again();
            ctx.notify_later(Recheck, handover::RECHECK);
            return;
        }
        let refusal = match decision {
            Release::Refuse(error) => Some(error),
            Release::Handle | Release::Wait => None,
        };
        for write in self.machine.parked.take() {
            write(self, ctx, refusal.clone());
        }
    }
}

impl Handler<Recheck> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, _: Recheck, ctx: &mut Context<Self>) {
        self.recheck_parked(ctx);
    }
}

impl Handler<Produce> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: Produce, ctx: &mut Context<Self>) {
        if self.parks_writes() {
            let write: ParkedWrite = Box::new(move |replica, ctx, refusal| match refusal {
                Some(error) => drop(message.reply.send(Err(error))),
                None => replica.handle(message, ctx),
            });
            self.park(write, ctx);
            return;
        }
        if let Some(error) = self.not_leader() {
            let _ = message.reply.send(Err(error));
            return;
        }
        if let Some(expected) = message.expected_base {
            let tail = self.tail_offset();
            if tail != expected {
                let _ = message
                    .reply
                    .send(Err(ReplicaError::TailMoved { expected, tail }));
                return;
            }
        }
        let timestamp_ms = message.timestamp_ms;
        self.propose_append(
            message.records,
            |base_offset| AppendPrefix::Append {
                base_offset,
                timestamp_ms,
            },
            message.reply,
        );
        self.drive(ctx);
    }
}

impl Handler<IdempotentProduce> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: IdempotentProduce, ctx: &mut Context<Self>) {
        if self.parks_writes() {
            let write: ParkedWrite = Box::new(move |replica, ctx, refusal| match refusal {
                Some(error) => drop(message.reply.send(Err(error))),
                None => replica.handle(message, ctx),
            });
            self.park(write, ctx);
            return;
        }
        if let Some(error) = self.not_leader() {
            let _ = message.reply.send(Err(error));
            return;
        }
        self.prune_in_flight();
        let term = self.node.term();
        let stamp = message.stamp;
        let in_flight = self
            .machine
            .in_flight
            .get(&(stamp.kind, stamp.producer))
            .filter(|(proposed_term, _)| *proposed_term == term)
            .map(|(_, sequence)| *sequence);
        let checked = check_idempotent(
            self.applied_current_term(),
            &self.machine.state().dedup,
            stamp,
            message.records.count(),
            in_flight,
        );
        match checked {
            Ok(()) => {
                let timestamp_ms = message.timestamp_ms;
                let prefix = |base_offset| AppendPrefix::IdempotentAppend {
                    stamp,
                    base_offset,
                    timestamp_ms,
                };
                if let Some((term, _)) = self.propose_append(message.records, prefix, message.reply)
                {
                    let key = (stamp.kind, stamp.producer);
                    self.machine.in_flight.insert(key, (term, stamp.sequence));
                }
            }
            Err(answer) => {
                let _ = message.reply.send(answer);
            }
        }
        self.drive(ctx);
    }
}

impl Handler<Fetch> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: Fetch, ctx: &mut Context<Self>) {
        let machine = &mut self.machine;
        let state = machine.state();
        let step = fetch_step(
            message.offset,
            message.wait_ms,
            state.high_watermark,
            state.log_start_offset,
            machine.waiters.len(),
            machine.waiters_max,
        );
        if let FetchStep::Answer(answer) = step {
            let _ = message.reply.send(answer);
            return;
        }
        let id = machine.next_waiter_id;
        machine.next_waiter_id += 1;
        PARKED_FETCHES.inc();
        machine.waiters.push(Waiter {
            id,
            offset: message.offset,
            reply: message.reply,
        });
        ctx.notify_later(FetchTimeout(id), Duration::from_millis(message.wait_ms));
    }
}

impl Handler<FetchTimeout> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: FetchTimeout, _: &mut Context<Self>) {
        let machine = &mut self.machine;
        if let Some(position) = machine.waiters.iter().position(|w| w.id == message.0) {
            let waiter = machine.waiters.swap_remove(position);
            PARKED_FETCHES.dec();
            let _ = waiter.reply.send(Ok(machine.window(waiter.offset)));
        }
    }
}

impl Handler<RetentionTick> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, tick: RetentionTick, ctx: &mut Context<Self>) {
        if self.machine.advancing || self.node.role() != Role::Leader {
            return;
        }
        let machine = &self.machine;
        let Some(offset) = plan_log_start(
            &machine.batches,
            machine.state().log_start_offset,
            tick.now_ms,
            machine.retention,
        ) else {
            return;
        };
        let (ignored, _) = oneshot::channel();
        let data = batch::encode(&PartitionCommand::AdvanceLogStart { offset });
        if self.propose_with_reply(data, ignored) {
            self.machine.advancing = true;
        }
        self.drive(ctx);
    }
}

/// Sets the topic's retention limits; the first one also starts the periodic retention check.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRetention {
    pub retention: Retention,
    pub check_ms: u64,
    /// Read at each check (batches carry Unix-millisecond timestamps).
    pub clock: SharedClock,
}

impl Handler<SetRetention> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: SetRetention, ctx: &mut Context<Self>) {
        let first =
            self.machine.retention == Retention::default() && !self.machine.checking_retention;
        self.machine.retention = message.retention;
        if first || !self.machine.checking_retention {
            self.machine.checking_retention = true;
            let clock = message.clock;
            ctx.run_interval(
                Duration::from_millis(message.check_ms.max(1)),
                move |_, ctx| {
                    ctx.notify(RetentionTick {
                        now_ms: clock.now_ms(),
                    })
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_window_is_the_committed_range() {
        let window = |offset| {
            FetchStep::Answer(Ok(FetchWindow {
                offset,
                high_watermark: 10,
                log_start_offset: 4,
            }))
        };
        assert_eq!(fetch_step(4, 500, 10, 4, 0, 8), window(4));
        assert_eq!(fetch_step(9, 500, 10, 4, 0, 8), window(9));
        assert_eq!(fetch_step(10, 0, 10, 4, 0, 8), window(10));
        assert_eq!(fetch_step(10, 500, 10, 4, 0, 8), FetchStep::Park);
        assert_eq!(
            fetch_step(10, 500, 10, 4, 8, 8),
            window(10),
            "full: answer now"
        );
        for outside in [3, 11] {
            assert!(matches!(
                fetch_step(outside, 0, 10, 4, 0, 8),
                FetchStep::Answer(Err(FetchError::OffsetOutOfRange { .. }))
            ));
        }
    }

    #[test]
    fn offsets_continue_from_the_tail_of_the_current_term() {
        let never = || -> Option<u64> { panic!("the log is not read while the tail is known") };
        assert_eq!(
            next_base_offset(Some((Term(3), 40)), Term(3), 12, never),
            40
        );
        assert_eq!(
            next_base_offset(Some((Term(2), 40)), Term(3), 12, || None),
            12
        );
        assert_eq!(next_base_offset(None, Term(3), 12, || Some(30)), 30);
        assert_eq!(next_base_offset(None, Term(3), 12, || Some(5)), 12);
    }

    #[test]
    fn a_new_leader_checks_no_producer_before_applying_earlier_terms() {
        let stamp = ProducerStamp {
            kind: super::super::dedup::DedupKind::Producer,
            producer: 1,
            owner: 1,
            sequence: 0,
        };
        let dedup = DedupState::default();
        assert!(matches!(
            check_idempotent(false, &dedup, stamp, 1, None),
            Err(Err(ReplicaError::Retry(_)))
        ));
        assert_eq!(check_idempotent(true, &dedup, stamp, 1, None), Ok(()));
        assert!(matches!(
            check_idempotent(true, &dedup, stamp, 1, Some(0)),
            Err(Err(ReplicaError::Retry(_)))
        ));
    }
}
