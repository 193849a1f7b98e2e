//! Encoding of stored values: postcard bodies sealed with a CRC32 (layout in `tables.rs`).
//!
//! Owns the checksum rule and the checks made after every read (checksum, then the decoded
//! entry's index against its key). Must not: touch redb.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::tables::TableTag;
use super::StorageError;
use crate::raft::{Entry, GroupId, LogIndex, Term};

const CHECKSUM_BYTES: usize = 4;

/// The applied index and the state derived from it, stored as one value.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppliedRecord {
    pub index: LogIndex,
    pub state: Vec<u8>,
}

/// The leading fields of an encoded `Entry`; postcard writes struct fields in order, so a
/// prefix decode reads the term without copying the payload.
#[derive(Deserialize)]
struct EntryHead {
    term: Term,
    index: LogIndex,
}

fn checksum(tag: TableTag, group: GroupId, index: LogIndex, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[tag as u8]);
    hasher.update(&group.0.to_le_bytes());
    hasher.update(&index.0.to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

fn corrupt(group: GroupId, index: LogIndex, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        group,
        index,
        reason: reason.into(),
    }
}

/// Serializes `value` and seals it for `(tag, group, index)`.
pub fn seal<T: Serialize>(tag: TableTag, group: GroupId, index: LogIndex, value: &T) -> Vec<u8> {
    let buffer = vec![0u8; CHECKSUM_BYTES];
    let mut sealed = postcard::to_extend(value, buffer)
        .expect("postcard serialization into a Vec cannot fail for plain data types");
    let sum = checksum(tag, group, index, &sealed[CHECKSUM_BYTES..]);
    sealed[..CHECKSUM_BYTES].copy_from_slice(&sum.to_le_bytes());
    sealed
}

/// Checks the seal of a stored value and returns its body.
pub fn unseal(
    tag: TableTag,
    group: GroupId,
    index: LogIndex,
    sealed: &[u8],
) -> Result<&[u8], StorageError> {
    if sealed.len() < CHECKSUM_BYTES {
        return Err(corrupt(group, index, format!("{tag:?} value too short")));
    }
    let (stored, body) = sealed.split_at(CHECKSUM_BYTES);
    let stored = u32::from_le_bytes(stored.try_into().expect("split at CHECKSUM_BYTES"));
    let computed = checksum(tag, group, index, body);
    if stored != computed {
        return Err(corrupt(
            group,
            index,
            format!("{tag:?} checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    Ok(body)
}

/// Checks and decodes a sealed value.
pub fn open<T: DeserializeOwned>(
    tag: TableTag,
    group: GroupId,
    index: LogIndex,
    sealed: &[u8],
) -> Result<T, StorageError> {
    let body = unseal(tag, group, index, sealed)?;
    postcard::from_bytes(body)
        .map_err(|error| corrupt(group, index, format!("{tag:?} undecodable: {error}")))
}

/// Seals a log entry of `group` (keyed by its own index).
pub fn seal_entry(group: GroupId, entry: &Entry) -> Vec<u8> {
    seal(TableTag::Entries, group, entry.index, entry)
}

/// Checks and decodes the entry stored under `(group, index)`.
pub fn open_entry(group: GroupId, index: LogIndex, sealed: &[u8]) -> Result<Entry, StorageError> {
    let entry: Entry = open(TableTag::Entries, group, index, sealed)?;
    if entry.index != index {
        return Err(corrupt(
            group,
            index,
            format!("entry claims index {:?}", entry.index),
        ));
    }
    Ok(entry)
}

/// Checks the entry stored under `(group, index)` and returns only its term.
pub fn open_entry_term(
    group: GroupId,
    index: LogIndex,
    sealed: &[u8],
) -> Result<Term, StorageError> {
    let body = unseal(TableTag::Entries, group, index, sealed)?;
    let (head, _) = postcard::take_from_bytes::<EntryHead>(body)
        .map_err(|error| corrupt(group, index, format!("entry head undecodable: {error}")))?;
    if head.index != index {
        return Err(corrupt(
            group,
            index,
            format!("entry claims index {:?}", head.index),
        ));
    }
    Ok(head.term)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryPayload;

    fn sample() -> Entry {
        Entry {
            term: Term(7),
            index: LogIndex(42),
            payload: EntryPayload::Normal(b"record batch".to_vec()),
        }
    }

    #[test]
    fn entry_round_trips_and_term_reads_from_the_head() {
        let sealed = seal_entry(GroupId(3), &sample());
        assert_eq!(
            open_entry(GroupId(3), LogIndex(42), &sealed).unwrap(),
            sample()
        );
        assert_eq!(
            open_entry_term(GroupId(3), LogIndex(42), &sealed).unwrap(),
            Term(7)
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let sealed = seal_entry(GroupId(3), &sample());
        for position in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[position] ^= 0x01;
            let result = open_entry(GroupId(3), LogIndex(42), &damaged);
            assert!(
                matches!(result, Err(StorageError::Corrupt { .. })),
                "flip at byte {position} not detected"
            );
        }
    }

    #[test]
    fn a_value_under_the_wrong_key_or_table_is_detected() {
        let sealed = seal_entry(GroupId(3), &sample());
        assert!(open_entry(GroupId(4), LogIndex(42), &sealed).is_err());
        assert!(open_entry(GroupId(3), LogIndex(43), &sealed).is_err());
        assert!(open_entry_term(GroupId(3), LogIndex(41), &sealed).is_err());
        let as_hard_state: Result<crate::raft::HardState, _> =
            open(TableTag::HardState, GroupId(3), LogIndex(42), &sealed);
        assert!(as_hard_state.is_err());
        assert!(unseal(TableTag::Entries, GroupId(3), LogIndex(42), &[1, 2]).is_err());
    }

    #[test]
    fn a_well_sealed_entry_with_a_lying_index_is_detected() {
        // Sealed for key 42 but the body says 41: only the index check can catch this.
        let mut entry = sample();
        entry.index = LogIndex(41);
        let sealed = seal(TableTag::Entries, GroupId(3), LogIndex(42), &entry);
        let error = open_entry(GroupId(3), LogIndex(42), &sealed).unwrap_err();
        assert!(error.to_string().contains("claims index"), "{error}");
        assert!(open_entry_term(GroupId(3), LogIndex(42), &sealed).is_err());
    }
}
