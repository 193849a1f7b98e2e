//! The read-only view of the caller's persisted Raft state, and an in-memory implementation.
//!
//! `LogStore` is how the core reads what the caller has made durable; the core never writes
//! through it and never holds the whole log. `MemStore` models a persisted log in memory for
//! tests, the simulator and benches; it must not be used where durability matters.

use super::error::StorageError;
use super::message::Ready;
use super::types::{
    ConfState, Entry, EntryPayload, HardState, LogIndex, Snapshot, SnapshotMeta, Term,
};

/// Read-only view of what the caller has persisted.
pub trait LogStore {
    /// Persisted hard state and the metadata of the compacted prefix (index 0 and the bootstrap
    /// membership for a new group).
    fn initial_state(&self) -> Result<(HardState, SnapshotMeta), StorageError>;
    /// Snapshot index + 1.
    fn first_index(&self) -> LogIndex;
    /// The snapshot index when the log is empty.
    fn last_index(&self) -> LogIndex;
    /// Valid for the snapshot index ..= last index.
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;
    /// Entries in `[low, high_exclusive)`, stopping once `bytes_max` is exceeded but always at
    /// least one entry when the range is not empty.
    fn entries(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError>;
    /// The latest snapshot the caller made (metadata plus opaque state).
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
}

/// An in-memory persisted log: a snapshot, the entries after it, and the hard state.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Entries `snapshot.meta.index + 1 ..`, contiguous.
    entries: Vec<Entry>,
}

impl MemStore {
    /// A new group's store: empty log, index 0, the given bootstrap membership.
    pub fn new(conf_state: ConfState) -> MemStore {
        let mut store = MemStore::default();
        store.snapshot.meta.conf_state = conf_state;
        store
    }

    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// Appends entries, replacing any suffix from `entries[0].index` on.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let base = self.snapshot.meta.index.0;
        assert!(
            first.index.0 > base && first.index.0 <= self.last_index().0 + 1,
            "append at {:?} leaves a gap or rewrites the snapshot (snapshot {base}, last {:?})",
            first.index,
            self.last_index()
        );
        self.entries.truncate((first.index.0 - base - 1) as usize);
        self.entries.extend_from_slice(entries);
    }

    /// Replaces the log and the snapshot.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.hard_state.commit = self.hard_state.commit.max(snapshot.meta.index);
        self.snapshot = snapshot;
    }

    /// Persists a Ready in the contract order: snapshot, hard state, entries.
    pub fn persist(&mut self, ready: &Ready) {
        if let Some(snapshot) = &ready.snapshot {
            self.install_snapshot(snapshot.clone());
        }
        if let Some(hard_state) = ready.hard_state {
            self.hard_state = hard_state;
        }
        self.append(&ready.entries);
    }

    /// Drops the entries up to `index` and records a snapshot of the state at `index`.
    pub fn compact(&mut self, index: LogIndex, data: Vec<u8>) -> Result<(), StorageError> {
        let base = self.snapshot.meta.index;
        if index <= base {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        let term = self.term(index)?;
        let mut conf_state = self.snapshot.meta.conf_state.clone();
        let dropped = (index.0 - base.0) as usize;
        for entry in &self.entries[..dropped] {
            if let EntryPayload::ConfChange(change) = entry.payload {
                conf_state.apply_change(change);
            }
        }
        self.entries.drain(..dropped);
        self.snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state,
            },
            data,
        };
        Ok(())
    }
}

impl LogStore for MemStore {
    fn initial_state(&self) -> Result<(HardState, SnapshotMeta), StorageError> {
        Ok((self.hard_state, self.snapshot.meta.clone()))
    }

    fn first_index(&self) -> LogIndex {
        self.snapshot.meta.index.next()
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.meta.index.0 + self.entries.len() as u64)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let base = self.snapshot.meta.index;
        if index < base {
            return Err(StorageError::Compacted);
        }
        if index == base {
            return Ok(self.snapshot.meta.term);
        }
        self.entries
            .get((index.0 - base.0 - 1) as usize)
            .map(|entry| entry.term)
            .ok_or(StorageError::Unavailable)
    }

    fn entries(
        &self,
        low: LogIndex,
        high_exclusive: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let base = self.snapshot.meta.index.0;
        if low.0 <= base {
            return Err(StorageError::Compacted);
        }
        if high_exclusive > self.last_index().next() {
            return Err(StorageError::Unavailable);
        }
        let mut result = Vec::new();
        let mut bytes = 0;
        for index in low.0..high_exclusive.0 {
            let entry = &self.entries[(index - base - 1) as usize];
            bytes += entry.size_bytes();
            if !result.is_empty() && bytes > bytes_max {
                break;
            }
            result.push(entry.clone());
        }
        Ok(result)
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}
