//! Producer deduplication: the replicated record of each producer's last appended batch, and the
//! pure decision the leader takes before it proposes an idempotent batch.
//!
//! Owns `DedupState` (part of `PartitionState`, so it is in every snapshot and survives failover)
//! and `decide`. Offsets are assigned when the leader proposes, so a duplicate must be caught
//! before it is proposed: `decide` compares the batch's sequence with the applied state and with
//! what this leader has in flight. Applying updates the state the same way on every replica.
//! Must not do I/O or look at the clock: eviction is by log index, never by time.
//!
//! Fairness: every entry carries its owner (a hash of the principal that wrote it). When a table
//! is full, the owner holding the most entries gives up its least recently written one, so a
//! principal that writes with many producer ids or keys evicts its own state first, and a
//! principal holding fewer entries than another never loses one to that other's traffic.

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
    /// The principal that wrote the batch, as `owner_of` its name: whose share the entry uses.
    pub owner: u64,
    pub sequence: u64,
}

/// The owner tag of a principal: the first 8 bytes of SHA-256 of its name. The same on every
/// broker and every build, so every replica evicts alike.
pub fn owner_of(principal: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(principal.as_bytes());
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 8 bytes"),
    )
}

/// The last batch a producer appended to this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBatch {
    /// Whose share of the table the entry uses (`ProducerStamp::owner`).
    pub owner: u64,
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

    /// Records an applied batch. Deterministic: every replica evicts the same entry. Past the
    /// bound, the owner with the most entries (ties: the one whose oldest entry is oldest) loses
    /// its entry with the lowest log index (ties cannot occur: one entry, one producer).
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
            let victim = eviction_victim(table).expect("a table above its bound is not empty");
            table.remove(&victim);
        }
    }
}

/// The entry a full table gives up: the least recently written entry of the owner that holds
/// the most (see `DedupState::record`).
fn eviction_victim(table: &BTreeMap<u128, LastBatch>) -> Option<u128> {
    // Per owner: how many entries, and its least recently written one (index, producer).
    let mut owners: BTreeMap<u64, (usize, (u64, u128))> = BTreeMap::new();
    for (producer, last) in table {
        let entry = owners
            .entry(last.owner)
            .or_insert((0, (last.index, *producer)));
        entry.0 += 1;
        entry.1 = entry.1.min((last.index, *producer));
    }
    owners
        .values()
        .max_by(|(count_a, oldest_a), (count_b, oldest_b)| {
            count_a.cmp(count_b).then(oldest_b.cmp(oldest_a))
        })
        .map(|(_, (_, producer))| *producer)
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

    const OWNER: u64 = 1;

    fn stamp(producer: u128, sequence: u64) -> ProducerStamp {
        ProducerStamp {
            kind: DedupKind::Producer,
            producer,
            owner: OWNER,
            sequence,
        }
    }

    fn batch(sequence: u64, base_offset: u64, index: u64) -> LastBatch {
        LastBatch {
            owner: OWNER,
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
                owner: u64::MAX - n,
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

    #[test]
    fn a_flooding_owner_evicts_only_its_own_entries() {
        let mut state = DedupState::default();
        let (alice, mallory) = (owner_of("alice"), owner_of("mallory"));
        assert_ne!(alice, mallory);
        let write = |state: &mut DedupState, owner: u64, producer: u128, index: u64| {
            let stamp = ProducerStamp {
                kind: DedupKind::Key,
                producer,
                owner,
                sequence: 0,
            };
            state.record(
                stamp,
                LastBatch {
                    owner,
                    index,
                    ..batch(0, index, index)
                },
            );
        };
        // Alice's three keys are the oldest entries in the table.
        for producer in 0..3 {
            write(&mut state, alice, producer, producer as u64);
        }
        // Mallory writes ten times the table's bound with fresh keys.
        for n in 0..10 * KEYS_PER_PARTITION_MAX as u64 {
            write(&mut state, mallory, 1_000 + u128::from(n), 10 + n);
        }
        assert_eq!(state.keys.len(), KEYS_PER_PARTITION_MAX);
        for producer in 0..3 {
            assert!(
                state.last(DedupKind::Key, producer).is_some(),
                "alice's key {producer} survives mallory's flood"
            );
        }
        // Mallory's entries are its most recent ones.
        let newest = 1_000 + 10 * KEYS_PER_PARTITION_MAX as u128 - 1;
        assert!(state.last(DedupKind::Key, newest).is_some());
        assert!(state.last(DedupKind::Key, 1_000).is_none());
    }

    #[test]
    fn owners_with_equal_shares_give_up_the_oldest_entry() {
        let mut table = BTreeMap::new();
        for (producer, owner, index) in [(1u128, 7u64, 5u64), (2, 7, 9), (3, 8, 2), (4, 8, 20)] {
            table.insert(
                producer,
                LastBatch {
                    owner,
                    ..batch(0, 0, index)
                },
            );
        }
        assert_eq!(
            eviction_victim(&table),
            Some(3),
            "owner 8 holds the oldest entry"
        );
        table.insert(
            5,
            LastBatch {
                owner: 7,
                ..batch(0, 0, 30)
            },
        );
        assert_eq!(
            eviction_victim(&table),
            Some(1),
            "owner 7 now holds the most"
        );
    }
}
