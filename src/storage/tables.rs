//! Every redb table of the broker database, with its key and value layout.
//!
//! This is the one place tables are defined; `docs/storage.md` mirrors it. All integers in
//! keys are redb's native `u64` (big-endian ordering is redb's concern). Values marked
//! "sealed" are `crc32 (u32, little-endian) ++ body`, where the CRC32 covers
//! `table tag (u8) ++ group (u64 LE) ++ key index (u64 LE, 0 for per-group rows) ++ body`,
//! so a value that is damaged, or copied under another key or table, fails its check.
//!
//! Must not: be used outside `storage`; define tables anywhere else.

use redb::TableDefinition;

/// The Raft log of every group.
/// - key: `(group_id, index)`; index >= 1, contiguous per group above the snapshot index.
/// - value: sealed `postcard(Entry)`; the decoded entry's index must equal the key's.
pub const ENTRIES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("entries");

/// Snapshot metadata per group. A group exists on disk exactly when it has a row here.
/// - key: `group_id`.
/// - value: sealed `postcard(SnapshotMeta)` (index, term, membership). Index 0 with the
///   bootstrap membership until the first compaction or snapshot install.
pub const SNAPSHOT_META: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshot_meta");

/// Snapshot data per group, kept apart from the metadata so term lookups stay small.
/// - key: `group_id`.
/// - value: sealed opaque state bytes as of the snapshot index (empty at creation).
pub const SNAPSHOT_DATA: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshot_data");

/// Raft hard state per group.
/// - key: `group_id`.
/// - value: sealed `postcard(HardState)` (term, vote, commit).
pub const HARD_STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("hard_state");

/// Applied index and the state derived from the entries up to it, in one row so the two can
/// never disagree.
/// - key: `group_id`.
/// - value: sealed `postcard(AppliedRecord)` (applied index, opaque state bytes).
pub const APPLIED: TableDefinition<u64, &[u8]> = TableDefinition::new("applied");

/// Offset index: where each record batch of a partition lives in its log.
/// - key: `(group_id, base_offset)`: the first offset of a record batch.
/// - value: the log index of the entry holding that batch.
///
/// Invariant: within a group, a greater base offset maps to a greater or equal log index, so
/// truncating a log suffix removes a suffix of these rows.
pub const OFFSETS: TableDefinition<(u64, u64), u64> = TableDefinition::new("offsets");

/// Which table a sealed value belongs to; part of its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableTag {
    Entries = 1,
    SnapshotMeta = 2,
    SnapshotData = 3,
    HardState = 4,
    Applied = 5,
}
