//! The core's view of the log: the caller's persisted log (`LogStore`) overlaid with entries
//! and a snapshot that are not yet persisted.
//!
//! Owns the commit and applied indexes and what has been handed out in a Ready. Must not write
//! to the store: the caller persists what a Ready hands out and reports it through `advance`.

use super::error::StorageError;
use super::storage::LogStore;
use super::types::{Entry, LogIndex, Snapshot, Term};

/// Byte budget of the committed entries handed out in one Ready.
pub(super) const COMMITTED_BYTES_MAX: u64 = 16 * 1024 * 1024;

pub(super) struct RaftLog<S> {
    pub(super) store: S,
    /// Entries from `offset` on that are not known to be persisted. The store agrees with this
    /// view for every index below `offset` (it may hold a stale suffix above it).
    unstable: Vec<Entry>,
    offset: LogIndex,
    /// Last unstable index already handed out in a Ready.
    handed: LogIndex,
    /// An incoming snapshot not yet persisted, and whether a Ready carried it already.
    snapshot: Option<Snapshot>,
    snapshot_handed: bool,
    pub(super) commit: LogIndex,
    pub(super) applied: LogIndex,
    /// Last committed index already handed out for applying.
    applied_handed: LogIndex,
}

impl<S: LogStore> RaftLog<S> {
    pub(super) fn new(store: S, commit: LogIndex, applied: LogIndex) -> RaftLog<S> {
        let offset = store.last_index().next();
        RaftLog {
            store,
            unstable: Vec::new(),
            offset,
            handed: offset.prev(),
            snapshot: None,
            snapshot_handed: false,
            commit,
            applied,
            applied_handed: applied,
        }
    }

    pub(super) fn first_index(&self) -> LogIndex {
        match &self.snapshot {
            Some(snapshot) => snapshot.meta.index.next(),
            None => self.store.first_index(),
        }
    }

    pub(super) fn last_index(&self) -> LogIndex {
        LogIndex(self.offset.0 - 1 + self.unstable.len() as u64)
    }

    /// The last index known to be persisted (meaningless while a snapshot is pending).
    pub(super) fn persisted_index(&self) -> LogIndex {
        self.offset.prev()
    }

    pub(super) fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index >= self.offset {
            return self
                .unstable
                .get((index.0 - self.offset.0) as usize)
                .map(|entry| entry.term)
                .ok_or(StorageError::Unavailable);
        }
        if let Some(snapshot) = &self.snapshot {
            if index == snapshot.meta.index {
                return Ok(snapshot.meta.term);
            }
            return Err(StorageError::Compacted);
        }
        self.store.term(index)
    }

    pub(super) fn last_term(&self) -> Term {
        self.term(self.last_index()).unwrap_or_default()
    }

    pub(super) fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index).map(|found| found == term).unwrap_or(false)
    }

    /// Whether a candidate's log (`last_index`, `last_term`) is at least as up to date as ours:
    /// by last term first, then by last index (Raft paper 5.4.1).
    pub(super) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    pub(super) fn entries(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low < self.first_index() {
            return Err(StorageError::Compacted);
        }
        let high_exclusive = high_exclusive.min(self.last_index().next());
        let mut result = Vec::new();
        if low >= high_exclusive {
            return Ok(result);
        }
        let mut bytes = 0;
        if low < self.offset {
            let stored_high = high_exclusive.min(self.offset);
            result = self.store.entries(low, stored_high, bytes_max)?;
            bytes = result.iter().map(Entry::size_bytes).sum();
            let stored_last = result.last().map(|entry| entry.index);
            if stored_last != Some(stored_high.prev()) || bytes >= bytes_max {
                return Ok(result);
            }
        }
        let start = low.max(self.offset);
        for index in start.0..high_exclusive.0 {
            let entry = &self.unstable[(index - self.offset.0) as usize];
            bytes += entry.size_bytes();
            if !result.is_empty() && bytes > bytes_max {
                break;
            }
            result.push(entry.clone());
        }
        Ok(result)
    }

    /// The first entry that is new or conflicts with our log, if any.
    pub(super) fn find_conflict(&self, entries: &[Entry]) -> Option<usize> {
        entries
            .iter()
            .position(|entry| !self.matches(entry.index, entry.term))
    }

    /// Appends entries, replacing our log from `entries[0].index` on.
    pub(super) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        assert!(
            first.index <= self.last_index().next(),
            "append at {:?} leaves a gap after {:?}",
            first.index,
            self.last_index()
        );
        let before = self.term(first.index.prev()).unwrap_or_default();
        let mut previous = (first.index.prev(), before);
        for entry in entries {
            assert!(
                entry.index == previous.0.next() && entry.term >= previous.1,
                "append of {:?} (term {:?}) after {:?} (term {:?})",
                entry.index,
                entry.term,
                previous.0,
                previous.1
            );
            previous = (entry.index, entry.term);
        }
        if first.index >= self.offset {
            self.unstable
                .truncate((first.index.0 - self.offset.0) as usize);
        } else {
            self.unstable.clear();
            self.offset = first.index;
        }
        self.unstable.extend_from_slice(entries);
        self.handed = self.handed.min(first.index.prev());
    }

    /// Drops every entry after `index` (only the planted truncation bug uses this).
    pub(super) fn truncate_after(&mut self, index: LogIndex) {
        if index >= self.offset {
            self.unstable
                .truncate((index.0 + 1 - self.offset.0) as usize);
        } else {
            self.unstable.clear();
            self.offset = index.next();
        }
        self.handed = self.handed.min(index);
    }

    pub(super) fn commit_to(&mut self, index: LogIndex) -> bool {
        if index > self.commit {
            self.commit = index;
            return true;
        }
        false
    }

    /// Replaces the log with an incoming snapshot, to be persisted through the next Ready.
    pub(super) fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.unstable.clear();
        self.offset = index.next();
        self.handed = index;
        self.commit = index;
        self.snapshot = Some(snapshot);
        self.snapshot_handed = false;
    }

    pub(super) fn has_ready_entries(&self) -> bool {
        self.handed < self.last_index() || (self.snapshot.is_some() && !self.snapshot_handed)
    }

    /// The pending snapshot if no Ready carried it yet.
    pub(super) fn snapshot_for_ready(&mut self) -> Option<Snapshot> {
        if self.snapshot_handed {
            return None;
        }
        self.snapshot_handed = true;
        self.snapshot.clone()
    }

    pub(super) fn entries_for_ready(&mut self) -> Vec<Entry> {
        let start = self.handed.max(self.offset.prev());
        let entries: Vec<Entry> = self.unstable[(start.0 + 1 - self.offset.0) as usize..].to_vec();
        self.handed = self.last_index();
        entries
    }

    /// Highest index that may be applied: committed and persisted locally.
    fn applicable_index(&self) -> LogIndex {
        self.commit.min(self.persisted_index())
    }

    pub(super) fn has_committed_for_ready(&self) -> bool {
        self.snapshot.is_none() && self.applied_handed < self.applicable_index()
    }

    pub(super) fn committed_for_ready(&mut self) -> Vec<Entry> {
        if !self.has_committed_for_ready() {
            return Vec::new();
        }
        let low = self.applied_handed.next();
        let high = self.applicable_index().next();
        // Every index in `[low, high)` is committed, persisted and above the snapshot (only
        // applied entries are compacted), so a failed read is a broken store, never a reason
        // to wait: the store stops the process on I/O and checksum errors, and anything else
        // here is a bug.
        let entries = self
            .entries(low, high, COMMITTED_BYTES_MAX)
            .unwrap_or_else(|error| {
                panic!("committed entries {low:?}..{high:?} unreadable: {error}")
            });
        assert!(
            entries.first().is_some_and(|first| first.index == low),
            "committed entries from {low:?} start at {:?}",
            entries.first().map(|e| e.index)
        );
        for pair in entries.windows(2) {
            assert_eq!(
                pair[0].index.next(),
                pair[1].index,
                "committed entries have a gap"
            );
            assert!(
                pair[0].term <= pair[1].term,
                "terms fall in the log at {:?}",
                pair[1].index
            );
        }
        let last = entries.last().expect("checked non-empty").index;
        assert!(last < high, "committed entry {last:?} beyond {high:?}");
        self.applied_handed = last;
        entries
    }

    /// The caller persisted a Ready's entries: what still matches our view is now stable.
    pub(super) fn on_entries_persisted(&mut self, entries: &[Entry]) {
        let mut persisted = None;
        for entry in entries {
            let position = entry.index.0.wrapping_sub(self.offset.0) as usize;
            let expected = LogIndex(self.offset.0 + persisted.map_or(0, |count| count + 1) as u64);
            if entry.index != expected
                || self.unstable.get(position).map(|own| own.term) != Some(entry.term)
            {
                break;
            }
            persisted = Some(position);
        }
        if let Some(position) = persisted {
            self.unstable.drain(..=position);
            self.offset = LogIndex(self.offset.0 + position as u64 + 1);
            self.handed = self.handed.max(self.offset.prev());
        }
    }

    pub(super) fn on_snapshot_persisted(&mut self, snapshot: &Snapshot) {
        let is_current = self.snapshot.as_ref().is_some_and(|pending| {
            pending.meta.index == snapshot.meta.index && self.snapshot_handed
        });
        if is_current {
            self.snapshot = None;
            self.snapshot_handed = false;
        }
        self.applied = self.applied.max(snapshot.meta.index);
        self.applied_handed = self.applied_handed.max(snapshot.meta.index);
    }

    pub(super) fn on_applied(&mut self, index: LogIndex) {
        self.applied = self.applied.max(index);
        self.applied_handed = self.applied_handed.max(index);
    }
}
