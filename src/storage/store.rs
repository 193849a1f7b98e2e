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
use super::writer::{self, Writer, WriterConfig};
use super::{GroupRecovery, StorageError};
use crate::raft::{Entry, GroupId, LogIndex, Snapshot, Term};

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
    /// Opens (or creates) the database file at `path` and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        let database = Database::create(path)?;
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

    /// Spawns the writer thread. There is exactly one per store: a second call is a bug.
    pub fn start_writer(&self, config: WriterConfig) -> Writer {
        let already = self.shared.writer_started.swap(true, Ordering::SeqCst);
        assert!(!already, "start_writer called twice on one store");
        writer::spawn(self.clone(), config)
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
            let expected = entries.last().map_or(low, |last| last.index.next());
            if index != expected {
                if entries.is_empty() {
                    return Err(self.missing_start(&transaction, group, low)?);
                }
                return Err(StorageError::Corrupt {
                    group,
                    index: expected,
                    reason: format!("log gap: next stored entry is {index:?}"),
                });
            }
            let entry = codec::open_entry(group, index, value.value())?;
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
