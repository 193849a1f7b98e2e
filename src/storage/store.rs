//! The broker's database handle and every read: recovery, log reads, term and offset lookups.
//!
//! Owns the redb `Database`. Reads run in their own read transactions (MVCC) and never wait
//! for the writer thread. Must not: write outside the writer thread (except creating the
//! tables when the file is opened).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable};

use super::codec;
use super::rows;
use super::tables::{APPLIED, ENTRIES, HARD_STATE, OFFSETS, SNAPSHOT_DATA, SNAPSHOT_META};
use super::{GroupRecovery, StorageError};
use crate::raft::{Entry, GroupId, LogIndex, Snapshot, Term};

/// The page cache of `Store::open`: the default of `storage.cache_bytes_max`.
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

#[cfg(not(feature = "test-hooks"))]
fn create(builder: &redb::Builder, path: &Path) -> Result<Database, StorageError> {
    Ok(builder.create(path)?)
}

/// Test builds: the faults `storage::fault` reads from the environment, if any are asked for.
#[cfg(feature = "test-hooks")]
fn create(builder: &redb::Builder, path: &Path) -> Result<Database, StorageError> {
    use super::fault::{FaultBackend, Faults};
    let faults = match Faults::from_env() {
        Ok(Some(faults)) => faults,
        Ok(None) => return Ok(builder.create(path)?),
        Err(message) => return Err(StorageError::Db(message)),
    };
    tracing::warn!(?faults, "storage faults injected (test-only)");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|error| StorageError::Db(error.to_string()))?;
    let backend =
        FaultBackend::new(file, faults).map_err(|error| StorageError::Db(error.to_string()))?;
    Ok(builder.create_with_backend(backend)?)
}

/// A shared handle to the broker database. Cheap to clone; all clones share one file.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    database: Database,
    writer_started: AtomicBool,
}

impl Store {
    /// Opens (or creates) the database file at `path` with a `DEFAULT_CACHE_BYTES` cache.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the database file at `path` and makes sure every table exists.
    /// `cache_bytes` bounds redb's page cache (its read cache and write buffer together); redb's
    /// own default is 1 GiB per database.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store, StorageError> {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(cache_bytes);
        let database = create(&builder, path)?;
        let mut transaction = database.begin_write()?;
        transaction.set_durability(Durability::Immediate)?;
        {
            transaction.open_table(ENTRIES)?;
            transaction.open_table(SNAPSHOT_META)?;
            transaction.open_table(SNAPSHOT_DATA)?;
            transaction.open_table(HARD_STATE)?;
            transaction.open_table(APPLIED)?;
            transaction.open_table(OFFSETS)?;
        }
        transaction.commit()?;
        Ok(Store {
            shared: Arc::new(Shared {
                database,
                writer_started: AtomicBool::new(false),
            }),
        })
    }

    /// Marks the store's one writer as started (`Store::start_writer`, beside the writer); a
    /// second writer is a bug.
    pub(super) fn claim_writer(&self) {
        let already = self.shared.writer_started.swap(true, Ordering::SeqCst);
        assert!(!already, "start_writer called twice on one store");
    }

    pub(crate) fn database(&self) -> &Database {
        &self.shared.database
    }

    fn read(&self) -> Result<ReadTransaction, StorageError> {
        Ok(self.shared.database.begin_read()?)
    }

    /// Every group with state on disk, in increasing id order.
    pub fn groups(&self) -> Result<Vec<GroupId>, StorageError> {
        let transaction = self.read()?;
        let table = transaction.open_table(SNAPSHOT_META)?;
        let mut groups = Vec::new();
        for row in table.iter()? {
            let (key, _) = row?;
            groups.push(GroupId(key.value()));
        }
        Ok(groups)
    }

    /// Everything needed to restart `group`, or `None` if it has no state on disk.
    pub fn load_group(&self, group: GroupId) -> Result<Option<GroupRecovery>, StorageError> {
        let transaction = self.read()?;
        let Some(meta) = rows::snapshot_meta(&transaction.open_table(SNAPSHOT_META)?, group)?
        else {
            return Ok(None);
        };
        let data = rows::snapshot_data(&transaction.open_table(SNAPSHOT_DATA)?, group)?
            .unwrap_or_default();
        let hard_state =
            rows::hard_state(&transaction.open_table(HARD_STATE)?, group)?.unwrap_or_default();
        let applied = rows::applied(&transaction.open_table(APPLIED)?, group)?;
        let (last_index, last_term) = rows::last_entry(&transaction.open_table(ENTRIES)?, group)?
            .unwrap_or((meta.index, meta.term));
        let (applied_index, applied_state) = match applied {
            Some(record) => (record.index, record.state),
            None => (meta.index, data.clone()),
        };
        Ok(Some(GroupRecovery {
            hard_state,
            snapshot: Snapshot { meta, data },
            last_index,
            last_term,
            applied_index,
            applied_state,
        }))
    }

    /// Entries in `[low, high_exclusive)`, stopping before the total size would pass
    /// `bytes_max`, but always at least one entry if any is in range. Empty when `low` is past
    /// the last entry. `Compacted` when `low` is at or below the snapshot index.
    pub fn entries(
        &self,
        group: GroupId,
        low: LogIndex,
        high_exclusive: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        assert!(
            low <= high_exclusive,
            "group {group:?}: range {low:?}..{high_exclusive:?}"
        );
        let transaction = self.read()?;
        let table = transaction.open_table(ENTRIES)?;
        let mut entries: Vec<Entry> = Vec::new();
        let mut bytes = 0u64;
        for row in table.range((group.0, low.0)..(group.0, high_exclusive.0))? {
            let (key, value) = row?;
            let index = LogIndex(key.value().1);
            let last = entries.last().map(|last| (last.index, last.term));
            self.check_follows(&transaction, group, low, last, index)?;
            let entry = codec::open_entry(group, index, value.value())?;
            check_term(group, index, last, entry.term)?;
            bytes += entry.size_bytes();
            if !entries.is_empty() && bytes > bytes_max {
                break;
            }
            entries.push(entry);
        }
        if entries.is_empty() && low < high_exclusive {
            if let Some(error) = self.compacted(&transaction, group, low)? {
                return Err(error);
            }
        }
        Ok(entries)
    }

    /// Calls `visit` with the index and the payload of every `Normal` entry of `group` from
    /// `low` on, in order, in one read transaction, each payload borrowed from the database for
    /// the call (no copy); stops when `visit` answers false or the log ends. Checks what
    /// `entries` checks: checksums, gaps, terms that never decrease, and a start that was
    /// compacted away.
    pub fn visit_payloads(
        &self,
        group: GroupId,
        low: LogIndex,
        mut visit: impl FnMut(LogIndex, &[u8]) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        let transaction = self.read()?;
        let table = transaction.open_table(ENTRIES)?;
        let mut last: Option<(LogIndex, Term)> = None;
        for row in table.range((group.0, low.0)..(group.0, u64::MAX))? {
            let (key, value) = row?;
            let index = LogIndex(key.value().1);
            self.check_follows(&transaction, group, low, last, index)?;
            let sealed = value.value();
            let (term, payload) = codec::open_entry_payload(group, index, sealed)?;
            check_term(group, index, last, term)?;
            last = Some((index, term));
            if let Some(payload) = payload {
                if !visit(index, payload)? {
                    return Ok(());
                }
            }
        }
        if last.is_none() {
            if let Some(error) = self.compacted(&transaction, group, low)? {
                return Err(error);
            }
        }
        Ok(())
    }

    /// A read from `low` finds `index` after the entry `last` (none for the first row): a hole
    /// after `last` is `Corrupt`; a first row past `low` is what `missing_start` finds.
    fn check_follows(
        &self,
        transaction: &ReadTransaction,
        group: GroupId,
        low: LogIndex,
        last: Option<(LogIndex, Term)>,
        index: LogIndex,
    ) -> Result<(), StorageError> {
        let expected = last.map_or(low, |(last, _)| last.next());
        if index == expected {
            return Ok(());
        }
        if last.is_none() {
            return Err(self.missing_start(transaction, group, low)?);
        }
        Err(StorageError::Corrupt {
            group,
            index: expected,
            reason: format!("log gap: next stored entry is {index:?}"),
        })
    }

    /// `Compacted` when `low` is covered by the snapshot.
    fn compacted(
        &self,
        transaction: &ReadTransaction,
        group: GroupId,
        low: LogIndex,
    ) -> Result<Option<StorageError>, StorageError> {
        let meta = rows::snapshot_meta(&transaction.open_table(SNAPSHOT_META)?, group)?;
        Ok(meta
            .filter(|meta| low <= meta.index)
            .map(|meta| StorageError::Compacted {
                group,
                index: low,
                snapshot_index: meta.index,
            }))
    }

    /// The error for a range whose first stored entry is past `low`.
    fn missing_start(
        &self,
        transaction: &ReadTransaction,
        group: GroupId,
        low: LogIndex,
    ) -> Result<StorageError, StorageError> {
        Ok(self
            .compacted(transaction, group, low)?
            .unwrap_or(StorageError::Corrupt {
                group,
                index: low,
                reason: "entry missing inside the log".to_string(),
            }))
    }

    /// Term of the entry at `index`: from the log, or from the snapshot metadata when `index`
    /// is the snapshot index. `None` when compacted away or past the last entry.
    pub fn term(&self, group: GroupId, index: LogIndex) -> Result<Option<Term>, StorageError> {
        let transaction = self.read()?;
        if let Some(term) = rows::entry_term(&transaction.open_table(ENTRIES)?, group, index)? {
            return Ok(Some(term));
        }
        let meta = rows::snapshot_meta(&transaction.open_table(SNAPSHOT_META)?, group)?;
        Ok(meta
            .filter(|meta| meta.index == index)
            .map(|meta| meta.term))
    }

    /// The offset row with the greatest base offset at or below `offset`:
    /// `(base offset, log index of the entry holding that batch)`.
    pub fn offset_floor(
        &self,
        group: GroupId,
        offset: u64,
    ) -> Result<Option<(u64, LogIndex)>, StorageError> {
        let transaction = self.read()?;
        let table = transaction.open_table(OFFSETS)?;
        let mut range = table.range((group.0, 0)..=(group.0, offset))?;
        match range.next_back() {
            None => Ok(None),
            Some(row) => {
                let (key, value) = row?;
                Ok(Some((key.value().1, LogIndex(value.value()))))
            }
        }
    }
}

/// Terms never decrease along the log: `term` at `index` after the entry `last`.
fn check_term(
    group: GroupId,
    index: LogIndex,
    last: Option<(LogIndex, Term)>,
    term: Term,
) -> Result<(), StorageError> {
    match last {
        Some((_, previous)) if previous > term => Err(StorageError::Corrupt {
            group,
            index,
            reason: format!("term {term:?} follows term {previous:?} of the entry before"),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{ConfState, EntryPayload, HardState, NodeId, SnapshotMeta};
    use crate::storage::{StorageError, WriteBatch, WriterConfig};
    use redb::ReadableTable;
    use std::sync::mpsc;
    use std::time::Duration;

    const GROUP: GroupId = GroupId(9);

    fn entry(index: u64) -> Entry {
        Entry {
            term: Term(2),
            index: LogIndex(index),
            payload: EntryPayload::Normal(vec![index as u8; 64].into()),
        }
    }

    /// A store holding group 9 with entries 1..=3 and a hard state; the writer is stopped.
    fn store_with_log(dir: &tempfile::TempDir) -> Store {
        let store = Store::open(&dir.path().join("broker.redb")).unwrap();
        let writer = store.start_writer(WriterConfig::default());
        let mut batch = WriteBatch::new(GROUP);
        batch.create = Some(SnapshotMeta {
            conf_state: ConfState {
                voters: vec![NodeId(1)],
                learners: vec![],
            },
            ..SnapshotMeta::default()
        });
        batch.entries = (1..=3).map(entry).collect();
        batch.hard_state = Some(HardState {
            term: Term(2),
            vote: Some(NodeId(1)),
            commit: LogIndex(3),
        });
        let (sender, receiver) = mpsc::channel();
        writer
            .submit(batch, Box::new(move |result| sender.send(result).unwrap()))
            .unwrap();
        receiver
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        writer.shutdown();
        store
    }

    /// Rewrites one raw value of a table, bypassing the codec.
    fn rewrite_entry(store: &Store, key: (u64, u64), change: impl FnOnce(&mut Vec<u8>)) {
        let transaction = store.database().begin_write().unwrap();
        {
            let mut table = transaction.open_table(ENTRIES).unwrap();
            let mut value = table.get(key).unwrap().unwrap().value().to_vec();
            change(&mut value);
            table.insert(key, value.as_slice()).unwrap();
        }
        transaction.commit().unwrap();
    }

    /// Stores entry `from`'s raw value under index `to` as well.
    fn copy_entry(store: &Store, from: u64, to: u64) {
        let transaction = store.database().begin_write().unwrap();
        {
            let mut table = transaction.open_table(ENTRIES).unwrap();
            let value = table
                .get((GROUP.0, from))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            table.insert((GROUP.0, to), value.as_slice()).unwrap();
        }
        transaction.commit().unwrap();
    }

    /// Removes entry `index` from the log, leaving a hole.
    fn remove_entry(store: &Store, index: u64) {
        let transaction = store.database().begin_write().unwrap();
        transaction
            .open_table(ENTRIES)
            .unwrap()
            .remove((GROUP.0, index))
            .unwrap();
        transaction.commit().unwrap();
    }

    fn assert_corrupt_at(result: Result<impl std::fmt::Debug, StorageError>, at: LogIndex) {
        match result {
            Err(StorageError::Corrupt { group, index, .. }) => {
                assert_eq!((group, index), (GROUP, at));
            }
            other => panic!("expected Corrupt at {at:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_flipped_byte_in_a_stored_entry_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(&dir);
        assert_eq!(
            store
                .entries(GROUP, LogIndex(1), LogIndex(4), u64::MAX)
                .unwrap()
                .len(),
            3
        );
        rewrite_entry(&store, (GROUP.0, 2), |value| {
            let middle = value.len() / 2;
            value[middle] ^= 0x40;
        });
        assert_corrupt_at(
            store.entries(GROUP, LogIndex(1), LogIndex(4), u64::MAX),
            LogIndex(2),
        );
        assert_corrupt_at(store.term(GROUP, LogIndex(2)), LogIndex(2));
        // Entries around the damaged one still read.
        assert_eq!(
            store
                .entries(GROUP, LogIndex(1), LogIndex(2), u64::MAX)
                .unwrap(),
            vec![entry(1)]
        );
        assert_eq!(store.term(GROUP, LogIndex(3)).unwrap(), Some(Term(2)));
    }

    #[test]
    fn an_entry_copied_under_another_key_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(&dir);
        copy_entry(&store, 1, 3);
        assert_corrupt_at(
            store.entries(GROUP, LogIndex(3), LogIndex(4), u64::MAX),
            LogIndex(3),
        );
        assert_corrupt_at(store.load_group(GROUP), LogIndex(3));
    }

    #[test]
    fn a_hole_inside_the_log_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(&dir);
        remove_entry(&store, 2);
        assert_corrupt_at(
            store.entries(GROUP, LogIndex(1), LogIndex(4), u64::MAX),
            LogIndex(2),
        );
        assert_corrupt_at(
            store.entries(GROUP, LogIndex(2), LogIndex(4), u64::MAX),
            LogIndex(2),
        );
    }

    /// The `Normal` payloads `visit_payloads` offers from `low`, stopping after `stop_after`.
    fn visited(
        store: &Store,
        low: u64,
        stop_after: usize,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>, StorageError> {
        let mut seen = Vec::new();
        store.visit_payloads(GROUP, LogIndex(low), |index, payload| {
            seen.push((index, payload.to_vec()));
            Ok(seen.len() < stop_after)
        })?;
        Ok(seen)
    }

    #[test]
    fn payload_visits_read_what_entries_read_and_report_the_same_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(&dir);
        let expected: Vec<(LogIndex, Vec<u8>)> =
            (1..=3).map(|n| (LogIndex(n), vec![n as u8; 64])).collect();
        assert_eq!(visited(&store, 1, usize::MAX).unwrap(), expected);
        assert_eq!(visited(&store, 2, usize::MAX).unwrap(), expected[1..]);
        assert_eq!(
            visited(&store, 1, 2).unwrap(),
            expected[..2],
            "stops when told"
        );
        assert_eq!(visited(&store, 4, usize::MAX).unwrap(), vec![]);

        rewrite_entry(&store, (GROUP.0, 2), |value| {
            let middle = value.len() / 2;
            value[middle] ^= 0x40;
        });
        assert_corrupt_at(visited(&store, 1, usize::MAX), LogIndex(2));
        assert_eq!(
            visited(&store, 1, 1).unwrap(),
            expected[..1],
            "before the damage"
        );

        copy_entry(&store, 1, 3);
        assert_corrupt_at(visited(&store, 3, usize::MAX), LogIndex(3));

        remove_entry(&store, 2);
        assert_corrupt_at(visited(&store, 1, usize::MAX), LogIndex(2));
        assert_corrupt_at(visited(&store, 2, usize::MAX), LogIndex(2));
    }

    #[test]
    fn a_damaged_hard_state_fails_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(&dir);
        assert!(store.load_group(GROUP).unwrap().is_some());
        let transaction = store.database().begin_write().unwrap();
        {
            let mut table = transaction.open_table(HARD_STATE).unwrap();
            let mut value = table.get(GROUP.0).unwrap().unwrap().value().to_vec();
            let last = value.len() - 1;
            value[last] ^= 0x01;
            table.insert(GROUP.0, value.as_slice()).unwrap();
        }
        transaction.commit().unwrap();
        assert_corrupt_at(store.load_group(GROUP), LogIndex(0));
    }

    #[test]
    fn reads_proceed_while_a_write_transaction_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(&dir);
        // Holding the single write transaction on this thread: a read that waited for the
        // writer would never return.
        let transaction = store.database().begin_write().unwrap();
        transaction
            .open_table(ENTRIES)
            .unwrap()
            .remove((GROUP.0, 3))
            .unwrap();
        assert_eq!(
            store
                .entries(GROUP, LogIndex(1), LogIndex(4), u64::MAX)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            store.load_group(GROUP).unwrap().unwrap().last_index,
            LogIndex(3)
        );
        transaction.commit().unwrap();
        assert_eq!(
            store.load_group(GROUP).unwrap().unwrap().last_index,
            LogIndex(2)
        );
    }
}
