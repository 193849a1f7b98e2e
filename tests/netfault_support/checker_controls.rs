//! Positive controls of the checker on hand-made histories: a correct one passes, and each kind
//! of broken history is reported as what it is.

use std::collections::BTreeMap;

use palisade::raft::{Entry, EntryPayload, LogIndex, Term};

use super::checker::{check, Ack, Records, Replica, Violation};

/// Two partitions of four records each, acknowledged through broker 1 and 2, and three
/// replicas holding them in identical entries (one per record), all committed.
fn history() -> (Vec<Ack>, Records, Vec<Replica>) {
    let mut acks = Vec::new();
    let mut api = Records::new();
    for partition in 0..2u32 {
        for offset in 0..4u64 {
            let value = format!("p{partition}-{offset}");
            api.entry(partition)
                .or_default()
                .insert(offset, value.clone());
            acks.push(Ack {
                via: 1 + offset % 2,
                partition,
                offset,
                value,
            });
        }
    }
    let entries = |partition: u32| -> Vec<Entry> {
        (1..=4u64)
            .map(|index| Entry {
                term: Term(1),
                index: LogIndex(index),
                payload: EntryPayload::Normal(format!("{partition}/{index}").into_bytes().into()),
            })
            .collect()
    };
    let replicas = (1..=3u64)
        .map(|broker| Replica {
            broker,
            entries: (0..2u32)
                .map(|p| (p, (4, entries(p))))
                .collect::<BTreeMap<_, _>>(),
            records: api.clone(),
        })
        .collect();
    (acks, api, replicas)
}

/// Applies `edit` to the log on the API and on every replica alike.
fn edit_everywhere(
    api: &mut Records,
    replicas: &mut [Replica],
    edit: impl Fn(&mut BTreeMap<u64, String>),
) {
    edit(api.get_mut(&0).expect("partition 0"));
    for replica in replicas {
        edit(replica.records.get_mut(&0).expect("partition 0"));
    }
}

#[test]
fn a_correct_history_passes() {
    let (acks, api, replicas) = history();
    assert_eq!(check(&acks, &api, &replicas), Vec::new());
}

#[test]
fn a_lost_acknowledged_record_is_reported() {
    let (acks, mut api, mut replicas) = history();
    edit_everywhere(&mut api, &mut replicas, |log| {
        log.remove(&3);
    });
    let found = check(&acks, &api, &replicas);
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::Lost(ack) if ack.value == "p0-3")),
        "{found:?}"
    );
}

#[test]
fn a_record_stored_twice_is_reported() {
    let (acks, mut api, mut replicas) = history();
    edit_everywhere(&mut api, &mut replicas, |log| {
        log.insert(4, "p0-1".into());
    });
    let found = check(&acks, &api, &replicas);
    assert!(
        found.iter().any(|v| matches!(
            v,
            Violation::Duplicated { ack, offsets } if ack.value == "p0-1" && offsets == &[1, 4]
        )),
        "{found:?}"
    );
}

#[test]
fn a_record_at_another_offset_is_reported() {
    let (acks, mut api, mut replicas) = history();
    edit_everywhere(&mut api, &mut replicas, |log| {
        log.insert(1, "p0-2".into());
        log.insert(2, "p0-1".into());
    });
    let found = check(&acks, &api, &replicas);
    assert!(
        found.iter().any(|v| matches!(
            v,
            Violation::Moved { ack, stored_at: 2 } if ack.value == "p0-1"
        )),
        "{found:?}"
    );
}

#[test]
fn two_values_acknowledged_at_one_offset_are_reported() {
    let (mut acks, api, replicas) = history();
    acks.push(Ack {
        via: 3,
        partition: 1,
        offset: 2,
        value: "from-a-second-leader".into(),
    });
    let found = check(&acks, &api, &replicas);
    assert!(
        found.contains(&Violation::ConflictingAcks {
            partition: 1,
            offset: 2,
            values: vec!["p1-2".into(), "from-a-second-leader".into()],
        }),
        "{found:?}"
    );
}

#[test]
fn a_gap_in_the_offsets_is_reported() {
    let (acks, mut api, replicas) = history();
    api.get_mut(&1).expect("partition 1").remove(&1);
    api.get_mut(&1)
        .expect("partition 1")
        .insert(7, "extra".into());
    let found = check(&acks, &api, &replicas);
    assert!(
        found.contains(&Violation::Gap {
            partition: 1,
            missing: 1
        }),
        "{found:?}"
    );
}

#[test]
fn a_replica_with_other_records_is_reported() {
    let (acks, api, mut replicas) = history();
    replicas[2]
        .records
        .get_mut(&1)
        .expect("partition 1")
        .insert(2, "changed".into());
    let found = check(&acks, &api, &replicas);
    assert!(
        found.iter().any(|v| matches!(
            v,
            Violation::Diverged {
                broker: 3,
                partition: 1,
                ..
            }
        )),
        "{found:?}"
    );
}

#[test]
fn a_replica_with_another_committed_entry_is_reported_an_uncommitted_one_is_not() {
    let (acks, api, mut replicas) = history();
    let partition = replicas[1].entries.get_mut(&0).expect("partition 0");
    partition.1[3].term = Term(2);
    // Entry 4 is past broker 2's commit: replicas may differ there until it is committed.
    partition.0 = 3;
    assert_eq!(check(&acks, &api, &replicas), Vec::new());
    replicas[1].entries.get_mut(&0).expect("partition 0").0 = 4;
    let found = check(&acks, &api, &replicas);
    assert!(
        found.iter().any(|v| matches!(
            v,
            Violation::Diverged {
                broker: 2,
                partition: 0,
                ..
            }
        )),
        "{found:?}"
    );
}
