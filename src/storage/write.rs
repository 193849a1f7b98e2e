//! Applying write batches inside one write transaction.
//!
//! Owns the storage invariants that need stored state: a batch targets an existing group,
//! entries follow the log without a gap and never overwrite a compacted prefix, offset rows
//! stay increasing, compaction stays within the applied log. A violation is a caller bug and
//! panics with the values. Must not: begin or commit transactions (the writer thread does).

use redb::{ReadableTable, Table, WriteTransaction};

use super::batch::{Compaction, WriteBatch};
use super::codec::{self, AppliedRecord, BytesRef};
use super::rows;
use super::tables::{
    TableTag, APPLIED, ENTRIES, HARD_STATE, OFFSETS, SNAPSHOT_DATA, SNAPSHOT_META,
};
use super::StorageError;
use crate::raft::{Entry, GroupId, LogIndex, Snapshot, SnapshotMeta};

/// Entries appended after an entry of `previous_term`: consecutive indices, terms that never
/// fall and are never 0 (term 0 has no leader, so no entry).
fn check_entries(group: GroupId, previous_term: crate::raft::Term, entries: &[Entry]) {
    let mut term = previous_term;
    for (position, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.index.0,
            entries[0].index.0 + position as u64,
            "group {group:?}: appended entries are not consecutive at position {position}"
        );
        assert!(
            entry.term.0 > 0 && entry.term >= term,
            "group {group:?}: entry {:?} has term {:?} after term {term:?}",
            entry.index,
            entry.term
        );
        term = entry.term;
    }
}

/// The tables of one write transaction, opened once per commit.
pub struct WriteTables<'txn> {
    entries: Table<'txn, (u64, u64), &'static [u8]>,
    snapshot_meta: Table<'txn, u64, &'static [u8]>,
    snapshot_data: Table<'txn, u64, &'static [u8]>,
    hard_state: Table<'txn, u64, &'static [u8]>,
    applied: Table<'txn, u64, &'static [u8]>,
    offsets: Table<'txn, (u64, u64), u64>,
}

/// How one batch ended inside the transaction.
pub enum Outcome {
    /// Written; committed with the transaction.
    Written,
    /// Refused before anything of it was written (the caller asked for something invalid
    /// given what is stored, such as creating an existing group).
    Refused(StorageError),
}

impl<'txn> WriteTables<'txn> {
    pub fn open(transaction: &'txn WriteTransaction) -> Result<WriteTables<'txn>, StorageError> {
        Ok(WriteTables {
            entries: transaction.open_table(ENTRIES)?,
            snapshot_meta: transaction.open_table(SNAPSHOT_META)?,
            snapshot_data: transaction.open_table(SNAPSHOT_DATA)?,
            hard_state: transaction.open_table(HARD_STATE)?,
            applied: transaction.open_table(APPLIED)?,
            offsets: transaction.open_table(OFFSETS)?,
        })
    }

    /// Applies one batch. `Err` means redb or the stored data failed: the caller must treat
    /// the whole transaction as lost.
    pub fn apply(&mut self, batch: WriteBatch) -> Result<Outcome, StorageError> {
        let group = batch.group;
        if batch.delete_group {
            self.delete_group(group)?;
            return Ok(Outcome::Written);
        }
        let mut meta = match batch.create {
            Some(create) => {
                if rows::snapshot_meta(&self.snapshot_meta, group)?.is_some() {
                    return Ok(Outcome::Refused(StorageError::GroupExists(group)));
                }
                self.put_snapshot(group, &create, &[])?;
                create
            }
            None => rows::snapshot_meta(&self.snapshot_meta, group)?
                .unwrap_or_else(|| panic!("write batch for group {group:?}, which does not exist")),
        };
        if let Some(snapshot) = batch.snapshot {
            self.install_snapshot(group, &meta, &snapshot)?;
            meta = snapshot.meta;
        }
        if let Some(hard_state) = batch.hard_state {
            let sealed = codec::seal(TableTag::HardState, group, LogIndex(0), &hard_state);
            self.hard_state.insert(group.0, sealed.as_slice())?;
        }
        self.append(group, &meta, &batch.entries)?;
        self.insert_offset_rows(group, &meta, &batch.offset_rows)?;
        if let Some((index, state)) = batch.applied {
            self.put_applied(group, &meta, index, state)?;
        }
        if let Some(compaction) = batch.compact {
            self.compact(group, &meta, compaction)?;
        }
        Ok(Outcome::Written)
    }

    fn put_snapshot(
        &mut self,
        group: GroupId,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let sealed_meta = codec::seal(TableTag::SnapshotMeta, group, LogIndex(0), meta);
        self.snapshot_meta.insert(group.0, sealed_meta.as_slice())?;
        let sealed_data = codec::seal(TableTag::SnapshotData, group, LogIndex(0), &BytesRef(data));
        self.snapshot_data.insert(group.0, sealed_data.as_slice())?;
        Ok(())
    }

    fn install_snapshot(
        &mut self,
        group: GroupId,
        current: &SnapshotMeta,
        snapshot: &Snapshot,
    ) -> Result<(), StorageError> {
        assert!(
            snapshot.meta.index >= current.index,
            "group {group:?}: installing snapshot {:?} older than stored snapshot {:?}",
            snapshot.meta.index,
            current.index
        );
        self.entries
            .retain_in((group.0, 0)..=(group.0, u64::MAX), |_, _| false)?;
        self.offsets
            .retain_in((group.0, 0)..=(group.0, u64::MAX), |_, _| false)?;
        self.put_snapshot(group, &snapshot.meta, &snapshot.data)?;
        let record = AppliedRecord {
            index: snapshot.meta.index,
            state: snapshot.data.clone(),
        };
        let sealed = codec::seal(TableTag::Applied, group, LogIndex(0), &record);
        self.applied.insert(group.0, sealed.as_slice())?;
        Ok(())
    }

    /// Replaces the log from `entries[0].index` on with `entries`.
    fn append(
        &mut self,
        group: GroupId,
        meta: &SnapshotMeta,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert!(
            first.index > meta.index,
            "group {group:?}: append at {:?} overwrites the snapshot at {:?}",
            first.index,
            meta.index
        );
        let last = rows::last_index(&self.entries, group)?.unwrap_or(meta.index);
        assert!(
            first.index <= last.next(),
            "group {group:?}: append at {:?} leaves a gap after last index {last:?}",
            first.index
        );
        let previous_term = if first.index.prev() == meta.index {
            meta.term
        } else {
            rows::entry_term(&self.entries, group, first.index.prev())?.unwrap_or_else(|| {
                panic!(
                    "group {group:?}: no stored entry before the append at {:?}",
                    first.index
                )
            })
        };
        check_entries(group, previous_term, entries);
        if first.index <= last {
            self.truncate_from(group, first.index)?;
        }
        for entry in entries {
            let sealed = codec::seal_entry(group, entry);
            // The row about to be written reads back as this entry of this group.
            let sealed_term = codec::open_entry_term(group, entry.index, &sealed);
            assert!(
                matches!(sealed_term, Ok(term) if term == entry.term),
                "group {group:?}: entry {:?} of term {:?} seals as {sealed_term:?}",
                entry.index,
                entry.term
            );
            self.entries
                .insert((group.0, entry.index.0), sealed.as_slice())?;
        }
        Ok(())
    }

    /// Deletes entries at and above `from`, and the offset rows pointing at them.
    fn truncate_from(&mut self, group: GroupId, from: LogIndex) -> Result<(), StorageError> {
        self.entries
            .retain_in((group.0, from.0)..=(group.0, u64::MAX), |_, _| false)?;
        // Offset rows increase with the log index, so the rows to drop are a suffix.
        let mut doomed = Vec::new();
        for row in self
            .offsets
            .range((group.0, 0)..=(group.0, u64::MAX))?
            .rev()
        {
            let (key, value) = row?;
            if value.value() < from.0 {
                break;
            }
            doomed.push(key.value());
        }
        for key in doomed {
            self.offsets.remove(key)?;
        }
        Ok(())
    }

    fn insert_offset_rows(
        &mut self,
        group: GroupId,
        meta: &SnapshotMeta,
        offset_rows: &[(u64, LogIndex)],
    ) -> Result<(), StorageError> {
        let Some(first) = offset_rows.first() else {
            return Ok(());
        };
        let last_index = rows::last_index(&self.entries, group)?.unwrap_or(meta.index);
        let previous = self
            .offsets
            .range((group.0, 0)..=(group.0, u64::MAX))?
            .next_back()
            .transpose()?
            .map(|(key, value)| (key.value().1, value.value()));
        if let Some((base, index)) = previous {
            assert!(
                first.0 > base && first.1 .0 >= index,
                "group {group:?}: offset row {first:?} does not follow ({base}, {index})"
            );
        }
        for (base_offset, index) in offset_rows {
            assert!(
                *index > meta.index && *index <= last_index,
                "group {group:?}: offset row {base_offset} points at {index:?}, outside the log \
                 ({:?}, {last_index:?}]",
                meta.index
            );
            self.offsets.insert((group.0, *base_offset), index.0)?;
        }
        Ok(())
    }

    fn put_applied(
        &mut self,
        group: GroupId,
        meta: &SnapshotMeta,
        index: LogIndex,
        state: Vec<u8>,
    ) -> Result<(), StorageError> {
        assert!(
            index >= meta.index,
            "group {group:?}: applied {index:?} below snapshot {:?}",
            meta.index
        );
        let record = AppliedRecord { index, state };
        let sealed = codec::seal(TableTag::Applied, group, LogIndex(0), &record);
        self.applied.insert(group.0, sealed.as_slice())?;
        Ok(())
    }

    fn compact(
        &mut self,
        group: GroupId,
        current: &SnapshotMeta,
        compaction: Compaction,
    ) -> Result<(), StorageError> {
        let meta = &compaction.snapshot.meta;
        let applied = rows::applied(&self.applied, group)?.map_or(current.index, |r| r.index);
        assert!(
            meta.index >= current.index && meta.index <= applied,
            "group {group:?}: compaction to {:?} outside [snapshot {:?}, applied {applied:?}]",
            meta.index,
            current.index
        );
        if let Some(term) = rows::entry_term(&self.entries, group, meta.index)? {
            assert_eq!(
                term, meta.term,
                "group {group:?}: compaction term disagrees with entry {:?}",
                meta.index
            );
        }
        self.entries
            .retain_in((group.0, 0)..=(group.0, meta.index.0), |_, _| false)?;
        if compaction.offset_below > 0 {
            self.offsets
                .retain_in((group.0, 0)..(group.0, compaction.offset_below), |_, _| {
                    false
                })?;
        }
        self.put_snapshot(group, meta, &compaction.snapshot.data)
    }

    fn delete_group(&mut self, group: GroupId) -> Result<(), StorageError> {
        self.entries
            .retain_in((group.0, 0)..=(group.0, u64::MAX), |_, _| false)?;
        self.offsets
            .retain_in((group.0, 0)..=(group.0, u64::MAX), |_, _| false)?;
        self.snapshot_meta.remove(group.0)?;
        self.snapshot_data.remove(group.0)?;
        self.hard_state.remove(group.0)?;
        self.applied.remove(group.0)?;
        Ok(())
    }
}
