//! `GroupLog`: the Raft core's read-only view of one group's persisted log, backed by redb.
//!
//! It caches the indices and the terms of the newest entries so the hot path (proposing and committing
//! on a leader) does not open a read transaction for every term lookup, and it keeps the entries the
//! replica persisted and has not applied yet (shared buffers, no copy), so committed entries are
//! applied from memory instead of being read back from redb. The actor updates it after the
//! storage writer reports a Ready durable, before it calls `advance`, and releases entries once
//! applied.
//!
//! A stored row that does not read back (checksum, decode, I/O) stops the process: the replica
//! cannot make progress without it, and retrying would hold the arbiter thread, and with it every
//! partition on that thread, forever.

use std::collections::VecDeque;

use crate::raft::GroupId;
use crate::raft::{
    Entry, HardState, LogIndex, LogStore, Snapshot, SnapshotMeta, StorageError, Term,
};
use crate::storage::{GroupRecovery, Store};

/// How many of the newest (index, term) pairs are kept in memory.
const CACHED_TERMS_MAX: usize = 4096;
/// Bytes of persisted, not yet applied entries kept in memory per group; older ones are read
/// from storage (a group without a quorum, a follower far behind on applying). In steady state
/// the entries between persist and apply are a few batches; the bound keeps a thousand stalled
/// groups to a few GiB at worst.
const CACHED_ENTRY_BYTES_MAX: u64 = 4 << 20;
/// Exit status of a broker stopped by a storage read error (EX_IOERR).
pub const STORAGE_READ_FAILED_EXIT: i32 = 74;

pub struct GroupLog {
    store: Store,
    group: GroupId,
    hard_state: HardState,
    snapshot: Snapshot,
    last_index: LogIndex,
    /// Terms of the newest entries, contiguous and ending at `last_index`.
    recent_terms: VecDeque<(LogIndex, Term)>,
    /// Persisted entries not yet released by the apply: empty, or contiguous and ending at
    /// `last_index`.
    unapplied: VecDeque<Entry>,
    unapplied_bytes: u64,
}

impl GroupLog {
    pub fn new(store: Store, group: GroupId, recovery: &GroupRecovery) -> GroupLog {
        let mut recent_terms = VecDeque::new();
        if recovery.last_index > recovery.snapshot.meta.index {
            recent_terms.push_back((recovery.last_index, recovery.last_term));
        }
        GroupLog {
            store,
            group,
            hard_state: recovery.hard_state,
            snapshot: recovery.snapshot.clone(),
            last_index: recovery.last_index,
            recent_terms,
            unapplied: VecDeque::new(),
            unapplied_bytes: 0,
        }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records what the storage writer has made durable: a snapshot, a hard state, appended entries.
    pub fn on_persisted(
        &mut self,
        snapshot: Option<&Snapshot>,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) {
        if let Some(snapshot) = snapshot {
            self.snapshot = snapshot.clone();
            self.last_index = snapshot.meta.index;
            self.recent_terms.clear();
            self.unapplied.clear();
            self.unapplied_bytes = 0;
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state;
        }
        if let Some(first) = entries.first() {
            assert!(
                first.index > self.snapshot.meta.index && first.index <= self.last_index.next(),
                "group {:?}: appended entries start at {:?}, log is {:?}..={:?}",
                self.group,
                first.index,
                self.snapshot.meta.index,
                self.last_index
            );
            while self
                .recent_terms
                .back()
                .is_some_and(|(index, _)| *index >= first.index)
            {
                self.recent_terms.pop_back();
            }
            for entry in entries {
                self.recent_terms.push_back((entry.index, entry.term));
            }
            while self.recent_terms.len() > CACHED_TERMS_MAX {
                self.recent_terms.pop_front();
            }
            self.keep_unapplied(entries);
            self.last_index = entries[entries.len() - 1].index;
        }
    }

    /// Keeps freshly persisted `entries` (replacing any cached suffix they overwrite).
    fn keep_unapplied(&mut self, entries: &[Entry]) {
        let first = entries[0].index;
        while self.unapplied.back().is_some_and(|e| e.index >= first) {
            let dropped = self.unapplied.pop_back().expect("back exists");
            self.unapplied_bytes -= dropped.size_bytes();
        }
        if self
            .unapplied
            .back()
            .is_some_and(|e| e.index.next() != first)
        {
            // Unreachable while the cache ends at `last_index`; start over rather than keep a gap.
            self.unapplied.clear();
            self.unapplied_bytes = 0;
        }
        for entry in entries {
            self.unapplied_bytes += entry.size_bytes();
            self.unapplied.push_back(entry.clone());
        }
        while self.unapplied_bytes > CACHED_ENTRY_BYTES_MAX {
            let dropped = self
                .unapplied
                .pop_front()
                .expect("bytes counted for a held entry");
            self.unapplied_bytes -= dropped.size_bytes();
        }
    }

    /// The apply has reached `applied`: entries up to it are no longer held in memory.
    pub fn release_applied(&mut self, applied: LogIndex) {
        while self.unapplied.front().is_some_and(|e| e.index <= applied) {
            let dropped = self.unapplied.pop_front().expect("front exists");
            self.unapplied_bytes -= dropped.size_bytes();
        }
    }

    /// `[low, high_exclusive)` from the entries held in memory, if they cover `low`.
    fn held_entries(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        bytes_max: u64,
    ) -> Option<Vec<Entry>> {
        let first = self.unapplied.front()?.index;
        let last = self.unapplied.back()?.index;
        if low < first || high_exclusive > last.next() {
            return None;
        }
        let mut result = Vec::new();
        let mut bytes = 0;
        for entry in self.unapplied.range((low.0 - first.0) as usize..) {
            if entry.index >= high_exclusive {
                break;
            }
            bytes += entry.size_bytes();
            if !result.is_empty() && bytes > bytes_max {
                break;
            }
            result.push(entry.clone());
        }
        Some(result)
    }

    /// Records a compaction the writer has made durable: the log now starts after `snapshot.meta.index`.
    pub fn on_compacted(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.meta.index <= self.last_index,
            "compaction beyond the log end"
        );
        while self
            .recent_terms
            .front()
            .is_some_and(|(index, _)| *index <= snapshot.meta.index)
        {
            self.recent_terms.pop_front();
        }
        self.snapshot = snapshot;
    }

    fn cached_term(&self, index: LogIndex) -> Option<Term> {
        let (first, _) = *self.recent_terms.front()?;
        if index < first || index > self.last_index {
            return None;
        }
        let position = (index.0 - first.0) as usize;
        self.recent_terms.get(position).map(|(cached, term)| {
            debug_assert_eq!(*cached, index);
            *term
        })
    }
}

/// Maps a storage read error for the Raft core. Compaction racing a read is expected (the
/// replica learns of a durable compaction a moment after it happened); anything else means the
/// stored log cannot be trusted, and the broker stops.
fn read_error(
    group: GroupId,
    index: LogIndex,
    error: crate::storage::StorageError,
) -> StorageError {
    match error {
        crate::storage::StorageError::Compacted { .. } => StorageError::Compacted,
        error => stop_on_read_error(group, index, &error),
    }
}

/// Logs which row of which group failed to read and why, then ends the process with
/// `STORAGE_READ_FAILED_EXIT`, as a failed storage commit ends it. `index` is where the read
/// started; a corrupt row names its own.
pub fn stop_on_read_error(
    group: GroupId,
    index: LogIndex,
    error: &crate::storage::StorageError,
) -> ! {
    let index = match error {
        crate::storage::StorageError::Corrupt { index, .. } => *index,
        _ => index,
    };
    tracing::error!(
        group = group.0,
        index = index.0,
        %error,
        "storage read failed; stopping the broker"
    );
    eprintln!(
        "storage read failed for group {} at index {}: {error}; stopping the broker",
        group.0, index.0
    );
    std::process::exit(STORAGE_READ_FAILED_EXIT)
}

impl LogStore for GroupLog {
    fn initial_state(&self) -> Result<(HardState, SnapshotMeta), StorageError> {
        Ok((self.hard_state, self.snapshot.meta.clone()))
    }

    fn first_index(&self) -> LogIndex {
        self.snapshot.meta.index.next()
    }

    fn last_index(&self) -> LogIndex {
        self.last_index
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index == self.snapshot.meta.index {
            return Ok(self.snapshot.meta.term);
        }
        if index < self.snapshot.meta.index {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index {
            return Err(StorageError::Unavailable);
        }
        if let Some(term) = self.cached_term(index) {
            return Ok(term);
        }
        let stored = self
            .store
            .term(self.group, index)
            .map_err(|error| read_error(self.group, index, error))?;
        match stored {
            Some(term) => Ok(term),
            None => Err(StorageError::Unavailable),
        }
    }

    fn entries(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.snapshot.meta.index {
            return Err(StorageError::Compacted);
        }
        if high_exclusive > self.last_index.next() {
            return Err(StorageError::Unavailable);
        }
        if let Some(held) = self.held_entries(low, high_exclusive, bytes_max) {
            return Ok(held);
        }
        let entries = self
            .store
            .entries(self.group, low, high_exclusive, bytes_max)
            .map_err(|error| read_error(self.group, low, error))?;
        for (offset, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index.0,
                low.0 + offset as u64,
                "group {:?}: storage returned entry {:?} at position {offset} of a read from {low:?}",
                self.group,
                entry.index
            );
        }
        Ok(entries)
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryPayload;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            payload: EntryPayload::Normal(vec![index as u8; 10].into()),
        }
    }

    /// A log over an empty store: every entry it returns below comes from memory (the store
    /// has none, and a read of a missing entry would stop the process).
    fn log(dir: &std::path::Path) -> GroupLog {
        let store = Store::open(&dir.join("log.redb")).expect("open store");
        let recovery = GroupRecovery {
            hard_state: HardState::default(),
            snapshot: Snapshot::default(),
            last_index: LogIndex(0),
            last_term: Term(0),
            applied_index: LogIndex(0),
            applied_state: Vec::new(),
        };
        GroupLog::new(store, GroupId(5), &recovery)
    }

    #[test]
    fn persisted_entries_are_served_from_memory_until_applied() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut log = log(dir.path());
        let persisted: Vec<Entry> = (1..=4).map(|i| entry(i, 1)).collect();
        log.on_persisted(None, None, &persisted);
        let read = log
            .entries(LogIndex(2), LogIndex(5), u64::MAX)
            .expect("held");
        assert_eq!(read, persisted[1..]);
        let EntryPayload::Normal(held) = &read[0].payload else {
            panic!("normal entry")
        };
        let EntryPayload::Normal(original) = &persisted[1].payload else {
            panic!("normal entry")
        };
        assert_eq!(held.as_ptr(), original.as_ptr(), "shared, not copied");
        let one = log.entries(LogIndex(1), LogIndex(5), 1).expect("held");
        assert_eq!(one.len(), 1, "the byte limit still gives one entry");

        // A new leader's entries replace the suffix from index 3 on.
        log.on_persisted(None, None, &[entry(3, 2)]);
        let read = log
            .entries(LogIndex(1), LogIndex(4), u64::MAX)
            .expect("held");
        assert_eq!(read, vec![entry(1, 1), entry(2, 1), entry(3, 2)]);
        assert_eq!(log.last_index(), LogIndex(3));

        log.release_applied(LogIndex(2));
        assert!(log
            .held_entries(LogIndex(2), LogIndex(4), u64::MAX)
            .is_none());
        assert_eq!(
            log.entries(LogIndex(3), LogIndex(4), u64::MAX)
                .expect("held"),
            vec![entry(3, 2)]
        );

        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(9),
                term: Term(2),
                ..SnapshotMeta::default()
            },
            data: Vec::new(),
        };
        log.on_persisted(Some(&snapshot), None, &[]);
        assert!(log
            .held_entries(LogIndex(3), LogIndex(4), u64::MAX)
            .is_none());
    }
}
