//! Durable storage for every Raft group of a broker: the only module that imports redb.
//!
//! Owns one redb database file per broker, holding the Raft log of every group in one table,
//! each group's hard state, snapshot, applied state and offset index (layouts in `tables.rs`
//! and `docs/storage.md`). Writes go through exactly one [`Writer`] thread that group-commits:
//! it gathers the queued [`WriteBatch`]es of all groups, applies them in one write transaction
//! with `Durability::Immediate` and only then runs their completion callbacks. Reads
//! ([`Store::entries`], [`Store::term`], [`Store::offset_floor`], recovery) use read
//! transactions and never wait for the writer.
//!
//! Every stored value carries a CRC32 over its table, key and bytes; a mismatch on read is
//! [`StorageError::Corrupt`], never silently returned.
//!
//! Must not: know about Raft roles or decide anything about consensus; it stores what the
//! partition actor hands it and asserts only storage invariants (contiguous log, no gaps,
//! no overwrite of compacted entries).

mod batch;
mod codec;
#[cfg(feature = "test-hooks")]
pub mod fault;
mod rows;
mod space;
mod store;
mod tables;
mod write;
mod writer;

pub use batch::{Compaction, WriteBatch};
pub use space::{free_bytes, DiskFull, DiskGuard};
pub use store::Store;
pub use writer::{Done, Writer, WriterConfig, WriterStats, QUEUE_REQUESTS_MAX};

use crate::raft::{GroupId, HardState, LogIndex, Snapshot, Term};

/// What the storage layer reports to its callers.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A stored value failed its checksum or could not be decoded. `index` is the log index
    /// for a log entry and 0 for per-group rows.
    #[error("corrupt storage for group {group:?} at index {index:?}: {reason}")]
    Corrupt {
        group: GroupId,
        index: LogIndex,
        reason: String,
    },
    /// The requested entries were removed by compaction or a snapshot install.
    #[error(
        "group {group:?}: index {index:?} is compacted; the log starts after {snapshot_index:?}"
    )]
    Compacted {
        group: GroupId,
        index: LogIndex,
        snapshot_index: LogIndex,
    },
    /// A batch asked to create a group that already has state on disk.
    #[error("group {0:?} already exists")]
    GroupExists(GroupId),
    /// The writer thread has stopped; nothing more can be written through it.
    #[error("the storage writer has stopped")]
    WriterStopped,
    /// redb reported an error (I/O, a full disk, a damaged file).
    #[error("database error: {0}")]
    Db(String),
}

macro_rules! from_redb_error {
    ($($error:ty),*) => {$(
        impl From<$error> for StorageError {
            fn from(error: $error) -> Self {
                StorageError::Db(error.to_string())
            }
        }
    )*};
}

from_redb_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Everything a partition actor needs to rebuild a group after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecovery {
    /// The last durable term, vote and commit index (default if never written).
    pub hard_state: HardState,
    /// The latest snapshot: for a never-compacted group, index 0 with the bootstrap
    /// membership given at creation and empty data.
    pub snapshot: Snapshot,
    /// Index and term of the last log entry; the snapshot's when the log is empty.
    pub last_index: LogIndex,
    pub last_term: Term,
    /// The applied index and the state derived from entries up to it. Always written in the
    /// same transaction; the snapshot's index and data when never written.
    pub applied_index: LogIndex,
    pub applied_state: Vec<u8>,
}
