//! The checker of a faulted run, a pure function of what the producers were told and what the
//! cluster holds afterwards:
//! - every acknowledged record is in the log read through the API exactly once, at the offset
//!   it was acknowledged at (`Lost`, `Duplicated`, `Moved`);
//! - no two different values were acknowledged at one (partition, offset): that is what two
//!   leaders acknowledging for one partition look like from outside (`ConflictingAcks`);
//! - offsets are dense from 0 (`Gap`);
//! - every replica's records equal the log read through the API, and any two replicas hold the
//!   same entries (index, term, payload) up to the lower of their commit indexes (`Diverged`).

use std::collections::BTreeMap;

use palisade::raft::Entry;

/// One acknowledged record: the broker the produce went through, and where it was put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub via: u64,
    pub partition: u32,
    pub offset: u64,
    pub value: String,
}

/// Records by offset, per partition.
pub type Records = BTreeMap<u32, BTreeMap<u64, String>>;

/// What one broker's redb file holds for the checked topic.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    pub broker: u64,
    /// Per partition: its group's durable commit index and its entries after the snapshot.
    pub entries: BTreeMap<u32, (u64, Vec<Entry>)>,
    /// The records of those entries, by offset.
    pub records: Records,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    Lost(Ack),
    Duplicated {
        ack: Ack,
        offsets: Vec<u64>,
    },
    Moved {
        ack: Ack,
        stored_at: u64,
    },
    ConflictingAcks {
        partition: u32,
        offset: u64,
        values: Vec<String>,
    },
    Gap {
        partition: u32,
        missing: u64,
    },
    Diverged {
        broker: u64,
        partition: u32,
        detail: String,
    },
}

/// Every violation found, in a stable order; empty when the run was safe.
pub fn check(acks: &[Ack], api: &Records, replicas: &[Replica]) -> Vec<Violation> {
    let mut found = conflicting_acks(acks);
    found.extend(placement(acks, api));
    for (partition, log) in api {
        if let Some(missing) = (0..log.len() as u64).find(|offset| !log.contains_key(offset)) {
            found.push(Violation::Gap {
                partition: *partition,
                missing,
            });
        }
    }
    found.extend(replica_divergence(api, replicas));
    found
}

fn conflicting_acks(acks: &[Ack]) -> Vec<Violation> {
    let mut by_position: BTreeMap<(u32, u64), Vec<String>> = BTreeMap::new();
    for ack in acks {
        let values = by_position.entry((ack.partition, ack.offset)).or_default();
        if !values.contains(&ack.value) {
            values.push(ack.value.clone());
        }
    }
    by_position
        .into_iter()
        .filter(|(_, values)| values.len() > 1)
        .map(|((partition, offset), values)| Violation::ConflictingAcks {
            partition,
            offset,
            values,
        })
        .collect()
}

/// Each acknowledged value must be stored once, at its acknowledged offset.
fn placement(acks: &[Ack], api: &Records) -> Vec<Violation> {
    let mut offsets_of: BTreeMap<(u32, &str), Vec<u64>> = BTreeMap::new();
    for (partition, log) in api {
        for (offset, value) in log {
            offsets_of
                .entry((*partition, value.as_str()))
                .or_default()
                .push(*offset);
        }
    }
    let mut found = Vec::new();
    for ack in acks {
        match offsets_of
            .get(&(ack.partition, ack.value.as_str()))
            .map(Vec::as_slice)
        {
            None | Some([]) => found.push(Violation::Lost(ack.clone())),
            Some([only]) if *only == ack.offset => {}
            Some([only]) => found.push(Violation::Moved {
                ack: ack.clone(),
                stored_at: *only,
            }),
            Some(several) => found.push(Violation::Duplicated {
                ack: ack.clone(),
                offsets: several.to_vec(),
            }),
        }
    }
    found
}

fn replica_divergence(api: &Records, replicas: &[Replica]) -> Vec<Violation> {
    let mut found = Vec::new();
    for replica in replicas {
        for partition in api.keys().chain(replica.records.keys()) {
            let expected = api.get(partition).cloned().unwrap_or_default();
            let held = replica.records.get(partition).cloned().unwrap_or_default();
            if held != expected {
                let first = (0..)
                    .find(|offset| held.get(offset) != expected.get(offset))
                    .expect("two different logs differ at some offset");
                found.push(Violation::Diverged {
                    broker: replica.broker,
                    partition: *partition,
                    detail: format!(
                        "records differ from the API's first at offset {first}: {:?} against {:?} \
                         ({} records against {})",
                        held.get(&first),
                        expected.get(&first),
                        held.len(),
                        expected.len()
                    ),
                });
            }
        }
    }
    for (position, first) in replicas.iter().enumerate() {
        for second in &replicas[position + 1..] {
            found.extend(committed_prefix_difference(first, second));
        }
    }
    found.sort_by_key(|v| format!("{v:?}"));
    found.dedup();
    found
}

/// Entries two replicas both hold as committed must be the same entries.
fn committed_prefix_difference(first: &Replica, second: &Replica) -> Vec<Violation> {
    let mut found = Vec::new();
    for (partition, (commit_a, entries_a)) in &first.entries {
        let Some((commit_b, entries_b)) = second.entries.get(partition) else {
            continue;
        };
        let commit = (*commit_a).min(*commit_b);
        let by_index = |entries: &[Entry]| -> BTreeMap<u64, Entry> {
            entries
                .iter()
                .filter(|entry| entry.index.0 <= commit)
                .map(|entry| (entry.index.0, entry.clone()))
                .collect()
        };
        let (a, b) = (by_index(entries_a), by_index(entries_b));
        for (index, entry) in &a {
            if b.get(index).is_some_and(|other| other != entry) {
                found.push(Violation::Diverged {
                    broker: second.broker,
                    partition: *partition,
                    detail: format!(
                        "committed entry {index} differs from broker {}'s (both committed to {commit})",
                        first.broker
                    ),
                });
                break;
            }
        }
    }
    found
}
