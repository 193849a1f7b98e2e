//! Encoding of stored values: postcard bodies sealed with a CRC32 (layout in `tables.rs`).
//!
//! Owns the checksum rule and the checks made after every read (checksum, then the decoded
//! entry's index against its key). Must not: touch redb.

use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

use super::tables::TableTag;
use super::StorageError;
use crate::raft::{ConfChange, Entry, EntryPayload, GroupId, LogIndex, Term};

const CHECKSUM_BYTES: usize = 4;

/// The applied index and the state derived from it, stored as one value.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppliedRecord {
    pub index: LogIndex,
    #[serde(with = "bytes_field")]
    pub state: Vec<u8>,
}

/// Serde adapter for a `Vec<u8>` field, encoded as bytes (see `BytesRef`).
mod bytes_field {
    use super::{ByteBuf, BytesRef};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        BytesRef(bytes).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        Ok(ByteBuf::deserialize(deserializer)?.0)
    }
}

/// The leading fields of an encoded `Entry`; postcard writes struct fields in order, so a
/// prefix decode reads the term without copying the payload.
#[derive(Deserialize)]
struct EntryHead {
    term: Term,
    index: LogIndex,
}

/// Mirrors of `Entry` and `EntryPayload` with the same postcard encoding, but whose payload
/// bytes go through `serialize_bytes` / `deserialize_byte_buf` (one copy) instead of serde's
/// element-by-element sequence of `u8`, which dominated the write path for 100 KiB entries.
/// Variant order must match `EntryPayload`; a unit test checks the bytes are identical.
#[derive(Serialize)]
struct EntryRef<'a> {
    term: Term,
    index: LogIndex,
    payload: PayloadRef<'a>,
}

#[derive(Serialize)]
enum PayloadRef<'a> {
    Noop,
    Normal(BytesRef<'a>),
    ConfChange(ConfChange),
}

#[derive(Deserialize)]
struct EntryOwned {
    term: Term,
    index: LogIndex,
    payload: PayloadOwned,
}

#[derive(Deserialize)]
enum PayloadOwned {
    Noop,
    Normal(ByteBuf),
    ConfChange(ConfChange),
}

/// `EntryOwned` borrowing its payload from the stored value, for readers that decode records out
/// of the payload and need no copy of it.
#[derive(Deserialize)]
struct EntryBorrowed<'a> {
    term: Term,
    index: LogIndex,
    #[serde(borrow)]
    payload: PayloadBorrowed<'a>,
}

#[derive(Deserialize)]
enum PayloadBorrowed<'a> {
    Noop,
    Normal(&'a [u8]),
    // Decoded to keep the encoding's variant numbers; a reader of records skips it.
    #[allow(dead_code)]
    ConfChange(ConfChange),
}

/// Opaque bytes, serialized in one piece (postcard: length varint, then the bytes).
pub struct BytesRef<'a>(pub &'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Owned opaque bytes, decoded in one copy.
pub struct ByteBuf(pub Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("bytes")
            }
            fn visit_bytes<E>(self, bytes: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(bytes.to_vec()))
            }
            fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

impl<'a> EntryRef<'a> {
    fn new(entry: &'a Entry) -> EntryRef<'a> {
        let payload = match &entry.payload {
            EntryPayload::Noop => PayloadRef::Noop,
            EntryPayload::Normal(data) => PayloadRef::Normal(BytesRef(data)),
            EntryPayload::ConfChange(change) => PayloadRef::ConfChange(*change),
        };
        EntryRef {
            term: entry.term,
            index: entry.index,
            payload,
        }
    }
}

impl From<EntryOwned> for Entry {
    fn from(stored: EntryOwned) -> Entry {
        let payload = match stored.payload {
            PayloadOwned::Noop => EntryPayload::Noop,
            PayloadOwned::Normal(ByteBuf(data)) => EntryPayload::Normal(data.into()),
            PayloadOwned::ConfChange(change) => EntryPayload::ConfChange(change),
        };
        Entry {
            term: stored.term,
            index: stored.index,
            payload,
        }
    }
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
    seal_into(tag, group, index, value, 64)
}

/// `seal` with room reserved for a body of about `body_bytes`.
fn seal_into<T: Serialize>(
    tag: TableTag,
    group: GroupId,
    index: LogIndex,
    value: &T,
    body_bytes: usize,
) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(CHECKSUM_BYTES + body_bytes);
    buffer.extend_from_slice(&[0u8; CHECKSUM_BYTES]);
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
    let body_bytes = entry.size_bytes() as usize + 16;
    seal_into(
        TableTag::Entries,
        group,
        entry.index,
        &EntryRef::new(entry),
        body_bytes,
    )
}

/// Checks and decodes the entry stored under `(group, index)`.
pub fn open_entry(group: GroupId, index: LogIndex, sealed: &[u8]) -> Result<Entry, StorageError> {
    let entry: Entry = open::<EntryOwned>(TableTag::Entries, group, index, sealed)?.into();
    claims_its_key(group, index, entry.index)?;
    Ok(entry)
}

/// An entry stored under `(group, index)` must claim that index; else it was copied there.
fn claims_its_key(group: GroupId, index: LogIndex, claimed: LogIndex) -> Result<(), StorageError> {
    if claimed == index {
        return Ok(());
    }
    Err(corrupt(
        group,
        index,
        format!("entry claims index {claimed:?}"),
    ))
}

/// Checks the entry stored under `(group, index)` and returns its term and, for a `Normal`
/// entry, its payload borrowed from `sealed` (no copy).
pub fn open_entry_payload(
    group: GroupId,
    index: LogIndex,
    sealed: &[u8],
) -> Result<(Term, Option<&[u8]>), StorageError> {
    let body = unseal(TableTag::Entries, group, index, sealed)?;
    let entry: EntryBorrowed<'_> = postcard::from_bytes(body)
        .map_err(|error| corrupt(group, index, format!("Entries undecodable: {error}")))?;
    claims_its_key(group, index, entry.index)?;
    let payload = match entry.payload {
        PayloadBorrowed::Normal(data) => Some(data),
        PayloadBorrowed::Noop | PayloadBorrowed::ConfChange(_) => None,
    };
    Ok((entry.term, payload))
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
    claims_its_key(group, index, head.index)?;
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
            payload: EntryPayload::Normal(b"record batch".to_vec().into()),
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
    fn the_fast_encoding_is_plain_postcard_of_entry() {
        let entries = [
            sample(),
            Entry {
                term: Term(1),
                index: LogIndex(300),
                payload: EntryPayload::Normal(vec![7; 100 * 1024].into()),
            },
            Entry {
                term: Term(2),
                index: LogIndex(1),
                payload: EntryPayload::Noop,
            },
            Entry {
                term: Term(2),
                index: LogIndex(2),
                payload: EntryPayload::ConfChange(ConfChange::AddLearner(crate::raft::NodeId(4))),
            },
        ];
        for entry in entries {
            let fast = postcard::to_stdvec(&EntryRef::new(&entry)).unwrap();
            assert_eq!(fast, postcard::to_stdvec(&entry).unwrap());
            let decoded: Entry = postcard::from_bytes::<EntryOwned>(&fast).unwrap().into();
            assert_eq!(decoded, entry);
            let sealed = seal_entry(GroupId(1), &entry);
            assert_eq!(open_entry(GroupId(1), entry.index, &sealed).unwrap(), entry);
        }
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
