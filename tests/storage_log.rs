//! Storage behaviour through the public API on real redb files: round trips, truncation,
//! compaction, snapshot install, applied state, deletion and recovery after reopening.

mod storage_support;

use palisade::raft::{GroupId, HardState, LogIndex, NodeId, Snapshot, SnapshotMeta, Term};
use palisade::storage::{Compaction, StorageError, Store, WriteBatch};
use storage_support::{bootstrap, create, entries, entry, open, whole_log, write};

const GROUP: GroupId = GroupId(7);

fn offset_rows(indexes: std::ops::RangeInclusive<u64>) -> Vec<(u64, LogIndex)> {
    indexes
        .map(|index| (index * 100, LogIndex(index)))
        .collect()
}

#[test]
fn entries_hard_state_and_offsets_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    create(&writer, GROUP);
    let hard_state = HardState {
        term: Term(3),
        vote: Some(NodeId(2)),
        commit: LogIndex(8),
    };
    let mut batch = WriteBatch::new(GROUP);
    batch.hard_state = Some(hard_state);
    batch.entries = entries(GROUP, 3, 1..=10);
    batch.offset_rows = offset_rows(1..=10);
    write(&writer, batch).unwrap();

    assert_eq!(store.groups().unwrap(), vec![GROUP]);
    let recovery = store.load_group(GROUP).unwrap().unwrap();
    assert_eq!(recovery.hard_state, hard_state);
    assert_eq!(recovery.snapshot.meta, bootstrap());
    assert_eq!(
        (recovery.last_index, recovery.last_term),
        (LogIndex(10), Term(3))
    );
    assert_eq!(
        (recovery.applied_index, recovery.applied_state),
        (LogIndex(0), vec![])
    );

    let all = store
        .entries(GROUP, LogIndex(1), LogIndex(11), u64::MAX)
        .unwrap();
    assert_eq!(all, entries(GROUP, 3, 1..=10));
    assert_eq!(
        store
            .entries(GROUP, LogIndex(4), LogIndex(6), u64::MAX)
            .unwrap(),
        entries(GROUP, 3, 4..=5)
    );
    // Beyond the last entry: nothing, not an error.
    assert!(store
        .entries(GROUP, LogIndex(11), LogIndex(20), u64::MAX)
        .unwrap()
        .is_empty());

    assert_eq!(store.term(GROUP, LogIndex(5)).unwrap(), Some(Term(3)));
    assert_eq!(store.term(GROUP, LogIndex(0)).unwrap(), Some(Term(0)));
    assert_eq!(store.term(GROUP, LogIndex(11)).unwrap(), None);
    assert_eq!(store.term(GroupId(99), LogIndex(1)).unwrap(), None);

    assert_eq!(
        store.offset_floor(GROUP, 250).unwrap(),
        Some((200, LogIndex(2)))
    );
    assert_eq!(
        store.offset_floor(GROUP, 300).unwrap(),
        Some((300, LogIndex(3)))
    );
    assert_eq!(store.offset_floor(GROUP, 99).unwrap(), None);
    assert_eq!(
        store.offset_floor(GROUP, u64::MAX).unwrap(),
        Some((1000, LogIndex(10)))
    );
    assert_eq!(store.offset_floor(GroupId(8), 500).unwrap(), None);
}

#[test]
fn entries_respect_bytes_max_but_return_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    create(&writer, GROUP);
    let mut batch = WriteBatch::new(GROUP);
    batch.entries = entries(GROUP, 1, 1..=10);
    write(&writer, batch).unwrap();
    let one_bytes = entry(GROUP, 1, 1).size_bytes();

    let tiny = store.entries(GROUP, LogIndex(1), LogIndex(11), 1).unwrap();
    assert_eq!(tiny, entries(GROUP, 1, 1..=1));
    let three = store
        .entries(GROUP, LogIndex(2), LogIndex(11), 3 * one_bytes)
        .unwrap();
    assert_eq!(three, entries(GROUP, 1, 2..=4));
    let almost_three = store
        .entries(GROUP, LogIndex(2), LogIndex(11), 3 * one_bytes - 1)
        .unwrap();
    assert_eq!(almost_three.len(), 2);
}

#[test]
fn creating_an_existing_group_is_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    create(&writer, GROUP);
    let mut again = WriteBatch::new(GROUP);
    again.create = Some(SnapshotMeta::default());
    again.entries = entries(GROUP, 1, 1..=2);
    assert!(matches!(
        write(&writer, again),
        Err(StorageError::GroupExists(GroupId(7)))
    ));
    let recovery = store.load_group(GROUP).unwrap().unwrap();
    assert_eq!(recovery.snapshot.meta, bootstrap());
    assert_eq!(recovery.last_index, LogIndex(0));
}

#[test]
fn a_conflicting_suffix_is_replaced_with_its_offset_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    create(&writer, GROUP);
    let mut batch = WriteBatch::new(GROUP);
    batch.entries = entries(GROUP, 1, 1..=5);
    batch.offset_rows = offset_rows(1..=5);
    write(&writer, batch).unwrap();

    // A new leader's log diverges from index 3 on and is shorter.
    let mut replace = WriteBatch::new(GROUP);
    replace.entries = entries(GROUP, 2, 3..=4);
    write(&writer, replace).unwrap();
    let mut expected = entries(GROUP, 1, 1..=2);
    expected.extend(entries(GROUP, 2, 3..=4));
    assert_eq!(whole_log(&store, GROUP), expected);
    assert_eq!(store.term(GROUP, LogIndex(5)).unwrap(), None);
    // Rows for indexes 3, 4 and 5 went with the suffix.
    assert_eq!(
        store.offset_floor(GROUP, 10_000).unwrap(),
        Some((200, LogIndex(2)))
    );

    // The replacement's own rows can then be written, with offsets reused from 300.
    let mut rows = WriteBatch::new(GROUP);
    rows.offset_rows = vec![(300, LogIndex(3)), (350, LogIndex(4))];
    write(&writer, rows).unwrap();
    assert_eq!(
        store.offset_floor(GROUP, 10_000).unwrap(),
        Some((350, LogIndex(4)))
    );
    assert_eq!(
        store.offset_floor(GROUP, 320).unwrap(),
        Some((300, LogIndex(3)))
    );
}

#[test]
fn compaction_drops_the_prefix_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    create(&writer, GROUP);
    let mut batch = WriteBatch::new(GROUP);
    batch.entries = entries(GROUP, 1, 1..=10);
    batch.offset_rows = offset_rows(1..=10);
    batch.applied = Some((LogIndex(8), b"state at 8".to_vec()));
    write(&writer, batch).unwrap();

    let mut meta = bootstrap();
    meta.index = LogIndex(6);
    meta.term = Term(1);
    let mut compact = WriteBatch::new(GROUP);
    compact.compact = Some(Compaction {
        snapshot: Snapshot {
            meta: meta.clone(),
            data: b"state at 6".to_vec(),
        },
        offset_below: 700,
    });
    write(&writer, compact).unwrap();

    match store.entries(GROUP, LogIndex(1), LogIndex(11), u64::MAX) {
        Err(StorageError::Compacted {
            index,
            snapshot_index,
            ..
        }) => {
            assert_eq!((index, snapshot_index), (LogIndex(1), LogIndex(6)));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(matches!(
        store.entries(GROUP, LogIndex(6), LogIndex(11), u64::MAX),
        Err(StorageError::Compacted { .. })
    ));
    assert_eq!(
        store
            .entries(GROUP, LogIndex(7), LogIndex(11), u64::MAX)
            .unwrap(),
        entries(GROUP, 1, 7..=10)
    );
    assert_eq!(store.term(GROUP, LogIndex(6)).unwrap(), Some(Term(1)));
    assert_eq!(store.term(GROUP, LogIndex(5)).unwrap(), None);
    assert_eq!(store.offset_floor(GROUP, 650).unwrap(), None);
    assert_eq!(
        store.offset_floor(GROUP, 750).unwrap(),
        Some((700, LogIndex(7)))
    );

    let recovery = store.load_group(GROUP).unwrap().unwrap();
    assert_eq!(recovery.snapshot.meta, meta);
    assert_eq!(recovery.snapshot.data, b"state at 6");
    assert_eq!(
        (recovery.last_index, recovery.last_term),
        (LogIndex(10), Term(1))
    );
    assert_eq!(
        (recovery.applied_index, recovery.applied_state),
        (LogIndex(8), b"state at 8".to_vec())
    );
}

#[test]
fn installing_a_snapshot_replaces_log_offsets_and_applied_state() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    create(&writer, GROUP);
    let mut batch = WriteBatch::new(GROUP);
    batch.entries = entries(GROUP, 1, 1..=5);
    batch.offset_rows = offset_rows(1..=5);
    batch.applied = Some((LogIndex(2), b"state at 2".to_vec()));
    write(&writer, batch).unwrap();

    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(20),
            term: Term(4),
            conf_state: bootstrap().conf_state,
        },
        data: b"state at 20".to_vec(),
    };
    let mut install = WriteBatch::new(GROUP);
    install.snapshot = Some(snapshot.clone());
    install.hard_state = Some(HardState {
        term: Term(4),
        vote: None,
        commit: LogIndex(20),
    });
    write(&writer, install).unwrap();

    let recovery = store.load_group(GROUP).unwrap().unwrap();
    assert_eq!(recovery.snapshot, snapshot);
    assert_eq!(
        (recovery.last_index, recovery.last_term),
        (LogIndex(20), Term(4))
    );
    assert_eq!(
        (recovery.applied_index, recovery.applied_state),
        (LogIndex(20), b"state at 20".to_vec())
    );
    assert_eq!(store.term(GROUP, LogIndex(3)).unwrap(), None);
    assert_eq!(store.offset_floor(GROUP, u64::MAX).unwrap(), None);
    assert!(whole_log(&store, GROUP).is_empty());

    // The log continues right after the snapshot.
    let mut next = WriteBatch::new(GROUP);
    next.entries = entries(GROUP, 4, 21..=22);
    next.offset_rows = vec![(2000, LogIndex(21))];
    write(&writer, next).unwrap();
    assert_eq!(whole_log(&store, GROUP), entries(GROUP, 4, 21..=22));
    assert_eq!(
        store.offset_floor(GROUP, 2500).unwrap(),
        Some((2000, LogIndex(21)))
    );
}

#[test]
fn applied_index_and_state_move_together() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    create(&writer, GROUP);
    let mut batch = WriteBatch::new(GROUP);
    batch.entries = entries(GROUP, 1, 1..=5);
    batch.applied = Some((LogIndex(3), b"state at 3".to_vec()));
    write(&writer, batch).unwrap();
    let mut later = WriteBatch::new(GROUP);
    later.applied = Some((LogIndex(5), b"state at 5".to_vec()));
    write(&writer, later).unwrap();
    let recovery = store.load_group(GROUP).unwrap().unwrap();
    assert_eq!(
        (recovery.applied_index, recovery.applied_state),
        (LogIndex(5), b"state at 5".to_vec())
    );
}

#[test]
fn deleting_a_group_removes_only_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    for group in [GroupId(1), GroupId(2), GroupId(3)] {
        create(&writer, group);
        let mut batch = WriteBatch::new(group);
        batch.entries = entries(group, 1, 1..=4);
        batch.offset_rows = offset_rows(1..=4);
        batch.applied = Some((LogIndex(1), vec![1]));
        batch.hard_state = Some(HardState::default());
        write(&writer, batch).unwrap();
    }
    let mut delete = WriteBatch::new(GroupId(2));
    delete.delete_group = true;
    write(&writer, delete).unwrap();

    assert_eq!(store.groups().unwrap(), vec![GroupId(1), GroupId(3)]);
    assert_eq!(store.load_group(GroupId(2)).unwrap(), None);
    assert!(store
        .entries(GroupId(2), LogIndex(1), LogIndex(5), u64::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(store.offset_floor(GroupId(2), u64::MAX).unwrap(), None);
    for group in [GroupId(1), GroupId(3)] {
        assert_eq!(whole_log(&store, group), entries(group, 1, 1..=4));
        assert_eq!(
            store.offset_floor(group, u64::MAX).unwrap(),
            Some((400, LogIndex(4)))
        );
    }
    // A deleted group can be created again from scratch.
    create(&writer, GroupId(2));
    assert_eq!(
        store.load_group(GroupId(2)).unwrap().unwrap().last_index,
        LogIndex(0)
    );
}

#[test]
fn reopening_recovers_everything_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let (store, writer) = open(dir.path());
        for group in (10..15).map(GroupId) {
            create(&writer, group);
            let mut batch = WriteBatch::new(group);
            batch.entries = entries(group, 2, 1..=(group.0 - 5));
            batch.offset_rows = offset_rows(1..=3);
            batch.hard_state = Some(HardState {
                term: Term(2),
                vote: Some(NodeId(3)),
                commit: LogIndex(4),
            });
            batch.applied = Some((LogIndex(4), format!("state of {group:?}").into_bytes()));
            write(&writer, batch).unwrap();
            expected.push((
                group,
                store.load_group(group).unwrap().unwrap(),
                whole_log(&store, group),
            ));
        }
        writer.shutdown();
        assert!(matches!(
            writer.submit(WriteBatch::new(GroupId(10)), Box::new(|_| {})),
            Err(StorageError::WriterStopped)
        ));
    }
    let store = Store::open(&dir.path().join("broker.redb")).unwrap();
    assert_eq!(
        store.groups().unwrap(),
        (10..15).map(GroupId).collect::<Vec<_>>()
    );
    for (group, recovery, log) in expected {
        assert_eq!(store.load_group(group).unwrap().unwrap(), recovery);
        assert_eq!(recovery.hard_state.vote, Some(NodeId(3)));
        assert_eq!(whole_log(&store, group), log);
        assert_eq!(log.len() as u64, group.0 - 5);
        assert_eq!(
            store.offset_floor(group, u64::MAX).unwrap(),
            Some((300, LogIndex(3)))
        );
    }
}
