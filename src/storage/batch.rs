//! What a caller asks the writer to persist for one group, and the checks that need no disk.
//!
//! Owns the shape of a write request and its self-consistency rules (asserted at submit, on
//! the caller's thread, so a bug points at its caller). Must not: touch redb.

use crate::raft::{Entry, GroupId, HardState, LogIndex, Snapshot, SnapshotMeta};

/// Drop a compacted log prefix and record the snapshot that replaces it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    /// The state as of `snapshot.meta.index`, the last compacted entry. Must not be beyond the
    /// applied index nor the last log index.
    pub snapshot: Snapshot,
    /// Offset rows with a base offset below this are deleted (records before the new log
    /// start).
    pub offset_below: u64,
}

/// Everything to persist for one group in one step; the writer applies the parts in the
/// order of the fields below, all in the same transaction.
#[derive(Debug)]
pub struct WriteBatch {
    pub group: GroupId,
    /// Create the group with this membership at snapshot index 0. The batch fails with
    /// `GroupExists`, writing nothing, if the group already has state on disk.
    pub create: Option<SnapshotMeta>,
    /// Install a snapshot: drop every entry and offset row, store its metadata and data, and
    /// set the applied index and state to the snapshot's.
    pub snapshot: Option<Snapshot>,
    pub hard_state: Option<HardState>,
    /// Entries with contiguous indexes. Stored entries at or above `entries[0].index` (and the
    /// offset rows pointing at them) are deleted first: a conflicting suffix is replaced.
    pub entries: Vec<Entry>,
    /// `(base offset of a record batch, log index of its entry)`, increasing in both.
    pub offset_rows: Vec<(u64, LogIndex)>,
    /// The applied index and the state derived from entries up to it, written in one row.
    pub applied: Option<(LogIndex, Vec<u8>)>,
    pub compact: Option<Compaction>,
    /// Remove every row of the group. Must be the only thing the batch does.
    pub delete_group: bool,
}

impl Default for WriteBatch {
    /// An empty batch for group 0 (the controller); set `group` for anything else.
    fn default() -> Self {
        WriteBatch {
            group: GroupId(0),
            create: None,
            snapshot: None,
            hard_state: None,
            entries: Vec::new(),
            offset_rows: Vec::new(),
            applied: None,
            compact: None,
            delete_group: false,
        }
    }
}

impl WriteBatch {
    /// An empty batch for `group`.
    pub fn new(group: GroupId) -> WriteBatch {
        WriteBatch {
            group,
            ..WriteBatch::default()
        }
    }

    /// Rough number of bytes the batch will write, for statistics.
    pub fn size_bytes(&self) -> u64 {
        let entries: u64 = self.entries.iter().map(Entry::size_bytes).sum();
        let snapshot = self.snapshot.as_ref().map_or(0, |s| s.data.len() as u64);
        let applied = self.applied.as_ref().map_or(0, |(_, s)| s.len() as u64);
        let compact = self
            .compact
            .as_ref()
            .map_or(0, |c| c.snapshot.data.len() as u64);
        entries + snapshot + applied + compact + 16 * self.offset_rows.len() as u64
    }

    /// Asserts the rules that need no stored state. A violation is a caller bug.
    pub(crate) fn assert_valid(&self) {
        let group = self.group;
        if self.delete_group {
            assert!(
                self.create.is_none()
                    && self.snapshot.is_none()
                    && self.hard_state.is_none()
                    && self.entries.is_empty()
                    && self.offset_rows.is_empty()
                    && self.applied.is_none()
                    && self.compact.is_none(),
                "group {group:?}: delete_group must be the only operation of its batch"
            );
        }
        for pair in self.entries.windows(2) {
            assert_eq!(
                pair[1].index,
                pair[0].index.next(),
                "group {group:?}: entries not contiguous"
            );
            assert!(
                pair[1].term >= pair[0].term,
                "group {group:?}: entry terms decrease at index {:?}",
                pair[1].index
            );
        }
        if let Some(first) = self.entries.first() {
            assert!(
                first.index >= LogIndex(1),
                "group {group:?}: entry at index 0"
            );
        }
        for pair in self.offset_rows.windows(2) {
            assert!(
                pair[1].0 > pair[0].0 && pair[1].1 >= pair[0].1,
                "group {group:?}: offset rows not increasing: {pair:?}"
            );
        }
        if let (Some(snapshot), Some((applied, _))) = (&self.snapshot, &self.applied) {
            assert!(
                *applied >= snapshot.meta.index,
                "group {group:?}: applied {applied:?} below installed snapshot {:?}",
                snapshot.meta.index
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{EntryPayload, Term};

    fn entry(index: u64) -> Entry {
        Entry {
            term: Term(1),
            index: LogIndex(index),
            payload: EntryPayload::Noop,
        }
    }

    #[test]
    fn contiguous_entries_pass() {
        let mut batch = WriteBatch::new(GroupId(1));
        batch.entries = vec![entry(4), entry(5), entry(6)];
        batch.offset_rows = vec![(0, LogIndex(4)), (10, LogIndex(6))];
        batch.assert_valid();
    }

    #[test]
    #[should_panic(expected = "entries not contiguous")]
    fn a_gap_in_entries_is_a_bug() {
        let mut batch = WriteBatch::new(GroupId(1));
        batch.entries = vec![entry(4), entry(6)];
        batch.assert_valid();
    }

    #[test]
    #[should_panic(expected = "offset rows not increasing")]
    fn decreasing_offset_rows_are_a_bug() {
        let mut batch = WriteBatch::new(GroupId(1));
        batch.offset_rows = vec![(10, LogIndex(4)), (5, LogIndex(5))];
        batch.assert_valid();
    }

    #[test]
    #[should_panic(expected = "delete_group must be the only operation")]
    fn delete_with_entries_is_a_bug() {
        let mut batch = WriteBatch::new(GroupId(1));
        batch.delete_group = true;
        batch.entries = vec![entry(1)];
        batch.assert_valid();
    }
}
