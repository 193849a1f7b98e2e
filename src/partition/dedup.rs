//! Producer deduplication: the replicated record of each producer's last appended batch, and the
//! pure decision the leader takes before it proposes an idempotent batch.
//!
//! Owns `DedupState` (part of `PartitionState`, so it is in every snapshot and survives failover)
//! and `decide`. Offsets are assigned when the leader proposes, so a duplicate must be caught
//! before it is proposed: `decide` compares the batch's sequence with the applied state and with
//! what this leader has in flight. Applying updates the state the same way on every replica.
//! Must not do I/O or look at the clock: eviction is by log index, never by time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Offsets given to one applied batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: u64,
    pub count: u64,
}

/// Producers remembered per partition; past it the least recently written one is forgotten.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 1_000;
/// Idempotency keys remembered per partition; past it the least recently written one is forgotten.
pub const KEYS_PER_PARTITION_MAX: usize = 1_000;

/// Which table a producer lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DedupKind {
    /// A producer id from `POST /v1/producers`; sequences count up from 0.
    Producer,
    /// A producer derived from an `Idempotency-Key` header; its only sequence is 0.
    Key,
}

/// Who wrote an idempotent batch and its place in that producer's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStamp {
    pub kind: DedupKind,
    pub producer: u128,
    pub sequence: u64,
}

/// The last batch a producer appended to this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBatch {
    pub sequence: u64,
    pub base_offset: u64,
    pub count: u64,
    pub timestamp_ms: u64,
    /// Log index of the entry that wrote it: the recency used for eviction.
    pub index: u64,
}

/// Per partition: each producer's last appended batch, in two bounded tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupState {
    pub producers: BTreeMap<u128, LastBatch>,
    pub keys: BTreeMap<u128, LastBatch>,
}

impl DedupState {
    fn table(&self, kind: DedupKind) -> &BTreeMap<u128, LastBatch> {
        match kind {
            DedupKind::Producer => &self.producers,
            DedupKind::Key => &self.keys,
        }
    }

    pub fn last(&self, kind: DedupKind, producer: u128) -> Option<&LastBatch> {
        self.table(kind).get(&producer)
    }

    /// Records an applied batch. Deterministic: every replica evicts the same producer, the one
    /// whose last write has the lowest log index (ties cannot occur: one entry, one producer).
    /// Applying the same entry twice (snapshot, then replay) leaves the state unchanged.
    pub fn record(&mut self, stamp: ProducerStamp, batch: LastBatch) {
        let (table, bound) = match stamp.kind {
            DedupKind::Producer => (&mut self.producers, PRODUCERS_PER_PARTITION_MAX),
            DedupKind::Key => (&mut self.keys, KEYS_PER_PARTITION_MAX),
        };
        if let Some(current) = table.get(&stamp.producer) {
            if current.index >= batch.index {
                return;
            }
        }
        table.insert(stamp.producer, batch);
        while table.len() > bound {
            let oldest = table
                .iter()
                .min_by_key(|(producer, last)| (last.index, **producer))
                .map(|(producer, _)| *producer)
                .expect("a table above its bound is not empty");
            table.remove(&oldest);
        }
    }
}

/// What the leader does with an idempotent batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The next sequence: propose it.
    Propose,
    /// Already appended: answer the original offsets, write nothing.
    Duplicate(AppendResult),
    /// Proposed by this leader and not applied yet: the caller retries shortly.
    InFlight,
    /// A sequence was skipped.
    Gap { expected: u64 },
    /// Older than the last appended batch.
    Old { last: u64 },
    /// The sequence was used for a batch of a different size.
    CountMismatch { sequence: u64, count: u64 },
}

/// Decides on a batch of `count` records stamped `stamp`. `in_flight` is the highest sequence
/// this leader proposed in its current term for the producer and has not applied yet.
pub fn decide(
    state: &DedupState,
    stamp: ProducerStamp,
    count: u64,
    in_flight: Option<u64>,
) -> Decision {
    let last = state.last(stamp.kind, stamp.producer);
    if let Some(last) = last {
        if stamp.sequence == last.sequence {
            if last.count != count {
                return Decision::CountMismatch {
                    sequence: last.sequence,
                    count: last.count,
                };
            }
            return Decision::Duplicate(AppendResult {
                base_offset: last.base_offset,
                count: last.count,
            });
        }
        if stamp.sequence < last.sequence {
            return Decision::Old {
                last: last.sequence,
            };
        }
    }
    let applied_next = last.map_or(0, |last| last.sequence + 1);
    let in_flight = in_flight.filter(|sequence| *sequence >= applied_next);
    if in_flight.is_some_and(|highest| stamp.sequence <= highest) {
        return Decision::InFlight;
    }
    let expected = in_flight.map_or(applied_next, |highest| highest + 1);
    if stamp.sequence == expected {
        Decision::Propose
    } else {
        Decision::Gap { expected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(producer: u128, sequence: u64) -> ProducerStamp {
        ProducerStamp {
            kind: DedupKind::Producer,
            producer,
            sequence,
        }
    }

    fn batch(sequence: u64, base_offset: u64, index: u64) -> LastBatch {
        LastBatch {
            sequence,
            base_offset,
            count: 2,
            timestamp_ms: 1,
            index,
        }
    }

    #[test]
    fn sequences_start_at_zero_and_count_up() {
        let mut state = DedupState::default();
        assert_eq!(decide(&state, stamp(7, 0), 2, None), Decision::Propose);
        assert_eq!(
            decide(&state, stamp(7, 1), 2, None),
            Decision::Gap { expected: 0 }
        );
        state.record(stamp(7, 0), batch(0, 10, 5));
        assert_eq!(
            decide(&state, stamp(7, 0), 2, None),
            Decision::Duplicate(AppendResult {
                base_offset: 10,
                count: 2
            })
        );
        assert_eq!(decide(&state, stamp(7, 1), 2, None), Decision::Propose);
        assert_eq!(
            decide(&state, stamp(7, 3), 2, None),
            Decision::Gap { expected: 1 }
        );
        state.record(stamp(7, 1), batch(1, 12, 6));
        assert_eq!(
            decide(&state, stamp(7, 0), 2, None),
            Decision::Old { last: 1 }
        );
        assert_eq!(
            decide(&state, stamp(7, 1), 3, None),
            Decision::CountMismatch {
                sequence: 1,
                count: 2
            }
        );
    }

    #[test]
    fn in_flight_sequences_wait_and_the_next_one_pipelines() {
        let mut state = DedupState::default();
        state.record(stamp(7, 0), batch(0, 0, 3));
        assert_eq!(decide(&state, stamp(7, 1), 2, Some(2)), Decision::InFlight);
        assert_eq!(decide(&state, stamp(7, 2), 2, Some(2)), Decision::InFlight);
        assert_eq!(decide(&state, stamp(7, 3), 2, Some(2)), Decision::Propose);
        assert_eq!(
            decide(&state, stamp(7, 5), 2, Some(2)),
            Decision::Gap { expected: 3 }
        );
        // An in-flight mark at or below the applied sequence is stale and ignored.
        assert_eq!(decide(&state, stamp(7, 1), 2, Some(0)), Decision::Propose);
    }

    #[test]
    fn tables_are_bounded_and_evict_the_least_recently_written() {
        let mut state = DedupState::default();
        for producer in 0..PRODUCERS_PER_PARTITION_MAX as u128 {
            state.record(stamp(producer, 0), batch(0, 0, 100 + producer as u64));
        }
        // Producer 0 writes again, so producer 1 is now the least recently written.
        state.record(stamp(0, 1), batch(1, 0, 5_000));
        state.record(stamp(99_999, 0), batch(0, 0, 5_001));
        assert_eq!(state.producers.len(), PRODUCERS_PER_PARTITION_MAX);
        assert!(state.last(DedupKind::Producer, 0).is_some());
        assert!(state.last(DedupKind::Producer, 1).is_none());
        assert!(state.last(DedupKind::Producer, 99_999).is_some());
        assert!(state.keys.is_empty(), "keys live in their own table");
        // The state is encoded with every applied-state write: a full table of random ids at
        // realistic offsets and times stays small.
        let mut full = DedupState::default();
        for n in 0..PRODUCERS_PER_PARTITION_MAX as u64 {
            let producer = u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            let last = LastBatch {
                sequence: 1_000_000 + n,
                base_offset: 4_000_000_000 + n,
                count: 100,
                timestamp_ms: 1_764_422_400_000,
                index: 50_000_000 + n,
            };
            full.record(stamp(producer, last.sequence), last);
        }
        let bytes = postcard::to_stdvec(&full).expect("encodes").len();
        assert!(
            bytes < 64 * 1024,
            "a full producer table encodes to {bytes} bytes"
        );
    }

    #[test]
    fn replaying_an_entry_changes_nothing() {
        let mut state = DedupState::default();
        state.record(stamp(7, 0), batch(0, 0, 3));
        state.record(stamp(7, 1), batch(1, 2, 4));
        let before = state.clone();
        state.record(stamp(7, 0), batch(0, 0, 3));
        assert_eq!(state, before);
    }
}
