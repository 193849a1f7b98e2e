//! Typed, checked reads of single rows, shared by read transactions and the writer.
//!
//! Every function takes any readable table (of a read or a write transaction), so the
//! writer sees its own uncommitted changes and readers see a committed snapshot. Must not:
//! write.

use redb::{ReadableTable, ReadableTableMetadata};

use super::codec::{self, AppliedRecord, ByteBuf};
use super::tables::TableTag;
use super::StorageError;
use crate::raft::{GroupId, HardState, LogIndex, SnapshotMeta, Term};

/// A per-group table (snapshot metadata, snapshot data, hard state, applied).
pub trait GroupTable: ReadableTable<u64, &'static [u8]> + ReadableTableMetadata {}
impl<T: ReadableTable<u64, &'static [u8]> + ReadableTableMetadata> GroupTable for T {}

/// The Raft log table.
pub trait EntryTable: ReadableTable<(u64, u64), &'static [u8]> + ReadableTableMetadata {}
impl<T: ReadableTable<(u64, u64), &'static [u8]> + ReadableTableMetadata> EntryTable for T {}

fn group_row<T: serde::de::DeserializeOwned>(
    table: &impl GroupTable,
    tag: TableTag,
    group: GroupId,
) -> Result<Option<T>, StorageError> {
    match table.get(group.0)? {
        None => Ok(None),
        Some(guard) => codec::open(tag, group, LogIndex(0), guard.value()).map(Some),
    }
}

pub fn snapshot_meta(
    table: &impl GroupTable,
    group: GroupId,
) -> Result<Option<SnapshotMeta>, StorageError> {
    group_row(table, TableTag::SnapshotMeta, group)
}

pub fn snapshot_data(
    table: &impl GroupTable,
    group: GroupId,
) -> Result<Option<Vec<u8>>, StorageError> {
    let data: Option<ByteBuf> = group_row(table, TableTag::SnapshotData, group)?;
    Ok(data.map(|ByteBuf(bytes)| bytes))
}

pub fn hard_state(
    table: &impl GroupTable,
    group: GroupId,
) -> Result<Option<HardState>, StorageError> {
    group_row(table, TableTag::HardState, group)
}

pub fn applied(
    table: &impl GroupTable,
    group: GroupId,
) -> Result<Option<AppliedRecord>, StorageError> {
    group_row(table, TableTag::Applied, group)
}

/// Index and term of the group's last log entry, if it has any.
pub fn last_entry(
    table: &impl EntryTable,
    group: GroupId,
) -> Result<Option<(LogIndex, Term)>, StorageError> {
    let mut range = table.range((group.0, 0)..=(group.0, u64::MAX))?;
    match range.next_back() {
        None => Ok(None),
        Some(row) => {
            let (key, value) = row?;
            let index = LogIndex(key.value().1);
            let term = codec::open_entry_term(group, index, value.value())?;
            Ok(Some((index, term)))
        }
    }
}

/// Index of the group's last log entry, read from the key alone (no value check).
pub fn last_index(
    table: &impl EntryTable,
    group: GroupId,
) -> Result<Option<LogIndex>, StorageError> {
    let mut range = table.range((group.0, 0)..=(group.0, u64::MAX))?;
    match range.next_back() {
        None => Ok(None),
        Some(row) => Ok(Some(LogIndex(row?.0.value().1))),
    }
}

/// Term of the entry stored at `index`, if there is one.
pub fn entry_term(
    table: &impl EntryTable,
    group: GroupId,
    index: LogIndex,
) -> Result<Option<Term>, StorageError> {
    match table.get((group.0, index.0))? {
        None => Ok(None),
        Some(guard) => codec::open_entry_term(group, index, guard.value()).map(Some),
    }
}
