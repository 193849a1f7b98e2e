//! `GroupLog`: the Raft core's read-only view of one group's persisted log, backed by redb.
//!
//! It caches the indices and the terms of the newest entries so the hot path (proposing and committing
//! on a leader) does not open a read transaction for every term lookup. The actor updates it after the
//! storage writer reports a Ready durable, before it calls `advance`.

use std::collections::VecDeque;

use crate::raft::GroupId;
use crate::raft::{
    Entry, HardState, LogIndex, LogStore, Snapshot, SnapshotMeta, StorageError, Term,
};
use crate::storage::{GroupRecovery, Store};

/// How many of the newest (index, term) pairs are kept in memory.
const CACHED_TERMS_MAX: usize = 4096;

pub struct GroupLog {
    store: Store,
    group: GroupId,
    hard_state: HardState,
    snapshot: Snapshot,
    last_index: LogIndex,
    /// Terms of the newest entries, contiguous and ending at `last_index`.
    recent_terms: VecDeque<(LogIndex, Term)>,
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
            self.last_index = entries[entries.len() - 1].index;
        }
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

fn io(error: crate::storage::StorageError) -> StorageError {
    StorageError::Io(error.to_string())
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
        match self.store.term(self.group, index).map_err(io)? {
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
        self.store
            .entries(self.group, low, high_exclusive, bytes_max)
            .map_err(io)
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}
