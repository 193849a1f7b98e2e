//! The leader's side of idempotent produce: `IdempotentProduce`, decided before anything is proposed.
//!
//! Offsets are assigned at proposal, so a duplicate must never reach the log. The leader first
//! requires that it applied every entry of earlier terms (only then is the replicated dedup state
//! complete), then asks the pure `dedup::decide` with the applied state and its own in-flight
//! proposals. Apply (in `machine`) records the batch on every replica. Must not know about HTTP.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::batch::{self, PartitionCommand, Record, RecordBatch};
use super::dedup::{decide, Decision, ProducerStamp, PRODUCERS_PER_PARTITION_MAX};
use super::machine::{AppendResult, PartitionMachine};
use super::replica::{Replica, ReplicaError};
use crate::raft::Role;

/// Append records as batch `stamp.sequence` of producer `stamp.producer`; a batch already
/// appended is answered with its original offsets and not written again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IdempotentProduce {
    pub records: Vec<Record>,
    pub timestamp_ms: u64,
    pub stamp: ProducerStamp,
    pub reply: oneshot::Sender<Result<AppendResult, ReplicaError>>,
}

impl Handler<IdempotentProduce> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: IdempotentProduce, ctx: &mut Context<Self>) {
        let decided = self.decide_idempotent(&message);
        match decided {
            Ok(()) => self.propose_idempotent(message),
            Err(Ok(original)) => {
                let _ = message.reply.send(Ok(original));
            }
            Err(Err(error)) => {
                let _ = message.reply.send(Err(error));
            }
        }
        self.drive(ctx);
    }
}

impl Replica<PartitionMachine> {
    /// `Ok` to propose; `Err(Ok(offsets))` for a duplicate; `Err(Err(_))` to refuse.
    fn decide_idempotent(
        &mut self,
        message: &IdempotentProduce,
    ) -> Result<(), Result<AppendResult, ReplicaError>> {
        if self.node.role() != Role::Leader {
            let leader = self.node.leader();
            return Err(Err(ReplicaError::NotLeader { leader }));
        }
        if !self.applied_current_term() {
            return Err(Err(ReplicaError::Retry(
                "the new leader is still applying the entries of earlier terms".into(),
            )));
        }
        let term = self.node.term();
        self.prune_in_flight();
        let stamp = message.stamp;
        let in_flight = self
            .machine
            .in_flight
            .get(&(stamp.kind, stamp.producer))
            .filter(|(proposed_term, _)| *proposed_term == term)
            .map(|(_, sequence)| *sequence);
        let count = message.records.len() as u64;
        let sequence = stamp.sequence;
        match decide(&self.machine.state().dedup, stamp, count, in_flight) {
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
            Decision::CountMismatch { sequence, count } => {
                Err(Err(ReplicaError::Invalid(format!(
                    "sequence {sequence} was appended with {count} records on this partition; \
                     a retry must send the same records"
                ))))
            }
        }
    }

    fn propose_idempotent(&mut self, message: IdempotentProduce) {
        let term = self.node.term();
        let base_offset = self.tail_offset();
        let stamp = message.stamp;
        let batch = RecordBatch {
            base_offset,
            timestamp_ms: message.timestamp_ms,
            records: message.records,
        };
        let end = batch.end_offset();
        let data = batch::encode(&PartitionCommand::IdempotentAppend { stamp, batch });
        if self.propose_with_reply(data, message.reply) {
            self.machine.tail = Some((term, end));
            self.machine
                .in_flight
                .insert((stamp.kind, stamp.producer), (term, stamp.sequence));
        }
    }

    /// Forgets in-flight marks that were applied or belong to an earlier term, once the map is
    /// larger than the producers a partition remembers anyway.
    fn prune_in_flight(&mut self) {
        if self.machine.in_flight.len() <= PRODUCERS_PER_PARTITION_MAX {
            return;
        }
        let term = self.node.term();
        let dedup = self.machine.state().dedup.clone();
        self.machine
            .in_flight
            .retain(|(kind, producer), (proposed_term, sequence)| {
                *proposed_term == term
                    && dedup
                        .last(*kind, *producer)
                        .is_none_or(|last| last.sequence < *sequence)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::super::dedup::{DedupKind, ProducerStamp};
    use super::super::machine::{AppendResult, PartitionMachine};
    use super::super::replica::StateMachine;
    use super::*;
    use crate::raft::LogIndex;

    fn records(count: usize) -> Vec<Record> {
        (0..count)
            .map(|i| Record {
                key: None,
                value: format!("v{i}").into_bytes(),
                value_is_text: true,
                headers: vec![],
            })
            .collect()
    }

    fn idempotent(producer: u128, sequence: u64, base_offset: u64, count: usize) -> Vec<u8> {
        batch::encode(&PartitionCommand::IdempotentAppend {
            stamp: ProducerStamp {
                kind: DedupKind::Producer,
                producer,
                sequence,
            },
            batch: RecordBatch {
                base_offset,
                timestamp_ms: 1_000 + sequence,
                records: records(count),
            },
        })
    }

    fn machine() -> PartitionMachine {
        PartitionMachine::restore(&[], 10, Default::default()).expect("empty state")
    }

    #[test]
    fn applying_an_idempotent_batch_records_the_producer_and_survives_a_snapshot() {
        let mut machine = machine();
        let plain = batch::encode(&PartitionCommand::Append(RecordBatch {
            base_offset: 0,
            timestamp_ms: 5,
            records: records(2),
        }));
        machine.apply(LogIndex(1), &plain);
        let first = machine.apply(LogIndex(2), &idempotent(9, 0, 2, 3));
        assert_eq!(
            first,
            AppendResult {
                base_offset: 2,
                count: 3
            }
        );
        machine.apply(LogIndex(3), &idempotent(9, 1, 5, 1));
        let state = machine.state();
        assert_eq!(state.high_watermark, 6);
        let last = state.dedup.last(DedupKind::Producer, 9).expect("recorded");
        assert_eq!(
            (last.sequence, last.base_offset, last.count, last.index),
            (1, 5, 1, 3)
        );
        assert!(state.dedup.last(DedupKind::Key, 9).is_none());

        // The state goes into snapshots: a replica restored from it knows the producer.
        let mut follower = super::super::machine::PartitionMachine::restore(
            &machine.encode_state(),
            10,
            Default::default(),
        )
        .expect("restores");
        assert_eq!(follower.state(), machine.state());
        // Replaying an entry the state already covers changes nothing.
        follower.apply(LogIndex(3), &idempotent(9, 1, 5, 1));
        assert_eq!(follower.state(), machine.state());
    }
}
