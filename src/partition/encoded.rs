//! `EncodedRecords`: the records of one produce for one partition, encoded once by the broker
//! that received them and carried as shared bytes to the partition leader, into the Raft entry
//! and to storage without being decoded or encoded again.
//!
//! The buffer holds `PREFIX_BYTES_MAX` bytes of room, then the postcard encoding of
//! `Vec<Record>` (its length, then each record). The leader writes the command prefix (variant,
//! producer stamp, base offset, timestamp) into the room right before the records, so the entry
//! is byte for byte `batch::encode(&PartitionCommand::Append(..))` or `IdempotentAppend` (the
//! stored format does not change; a unit test checks the bytes). Must not know about offsets
//! beyond writing the prefix it is given.

use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::batch::Record;
use super::dedup::ProducerStamp;

/// Room in front of the records for the longest command prefix: a variant tag, a producer
/// stamp (kind, a 128-bit id, a 64-bit owner, a sequence) and two 64-bit varints fit in
/// 1 + 40 + 20 bytes.
pub const PREFIX_BYTES_MAX: usize = 64;

/// Records of one batch, encoded (see the module comment for the layout).
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedRecords {
    /// `PREFIX_BYTES_MAX` bytes of room, then postcard of `Vec<Record>`.
    buffer: Bytes,
    count: u64,
}

/// The leading fields of an appending `PartitionCommand`, in its variant order and field order.
/// Only `Append` and `IdempotentAppend` are ever written; the two unit variants hold the places of
/// `AdvanceLogStart` and `CommitOffset` so the variant tags match.
#[derive(Clone, Copy, Debug, Serialize)]
pub enum AppendPrefix {
    Append {
        base_offset: u64,
        timestamp_ms: u64,
    },
    #[doc(hidden)]
    AdvanceLogStartTag,
    #[doc(hidden)]
    CommitOffsetTag,
    IdempotentAppend {
        stamp: ProducerStamp,
        base_offset: u64,
        timestamp_ms: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EncodedError {
    #[error("encoded records do not decode as records: {0}")]
    Records(#[from] postcard::Error),
    #[error("encoded records are followed by {bytes} bytes that are not records")]
    Trailing { bytes: usize },
}

/// A `Record` read in place, without copying or keeping it: its fields in `Record`'s order, the
/// strings and bytes borrowed from the input (`records_are_checked_in_place` checks the layout).
type RecordInPlace<'a> = (Option<&'a str>, &'a [u8], bool, Counted<(&'a str, &'a str)>);

/// A sequence walked element by element without keeping any: how long it is.
struct Counted<T>(u64, PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Counted<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Walk<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Walk<T> {
            type Value = Counted<T>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Counted<T>, A::Error> {
                let mut count = 0u64;
                while sequence.next_element::<T>()?.is_some() {
                    count += 1;
                }
                Ok(Counted(count, PhantomData))
            }
        }
        deserializer.deserialize_seq(Walk(PhantomData))
    }
}

impl EncodedRecords {
    /// Encodes `records` behind the prefix room (the one encoding of a produce).
    pub fn encode(records: &[Record]) -> EncodedRecords {
        let estimate: u64 = records.iter().map(Record::size_bytes).sum();
        let mut buffer = Vec::with_capacity(PREFIX_BYTES_MAX + estimate as usize + 16);
        buffer.resize(PREFIX_BYTES_MAX, 0);
        let buffer = postcard::to_extend(records, buffer)
            .expect("encoding plain data into a Vec cannot fail");
        EncodedRecords {
            buffer: buffer.into(),
            count: records.len() as u64,
        }
    }

    /// Takes records encoded elsewhere (`records_bytes` of another broker's `EncodedRecords`),
    /// copying them once behind fresh prefix room. The bytes come from a peer and become the
    /// leader's entry as they are, so they must be exactly a `Vec<Record>`: each record is
    /// checked in place (not decoded into a `Record`), and the count is the records found.
    pub fn from_records_bytes(bytes: &[u8]) -> Result<EncodedRecords, EncodedError> {
        let (Counted(count, _), rest) = postcard::take_from_bytes::<Counted<RecordInPlace>>(bytes)?;
        if !rest.is_empty() {
            return Err(EncodedError::Trailing { bytes: rest.len() });
        }
        let mut buffer = Vec::with_capacity(PREFIX_BYTES_MAX + bytes.len());
        buffer.resize(PREFIX_BYTES_MAX, 0);
        buffer.extend_from_slice(bytes);
        Ok(EncodedRecords {
            buffer: buffer.into(),
            count,
        })
    }

    /// How many records the batch holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The encoded records (postcard of `Vec<Record>`), without the prefix room.
    pub fn records_bytes(&self) -> &[u8] {
        &self.buffer[PREFIX_BYTES_MAX..]
    }

    /// The entry payload: `prefix` written in front of the records. Writes into the room when
    /// this is the only handle on the buffer; otherwise (a forwarding attempt still holds a
    /// clone) copies the records once into a new buffer.
    pub fn into_command(self, prefix: AppendPrefix) -> Bytes {
        let mut head = [0u8; PREFIX_BYTES_MAX];
        let used = postcard::to_slice(&prefix, &mut head)
            .expect("an append prefix fits its room")
            .len();
        assert!(used <= PREFIX_BYTES_MAX, "prefix of {used} bytes");
        let start = PREFIX_BYTES_MAX - used;
        let command = match self.buffer.try_into_mut() {
            Ok(mut unique) => {
                unique[start..PREFIX_BYTES_MAX].copy_from_slice(&head[..used]);
                unique.freeze().slice(start..)
            }
            Err(shared) => {
                let records = &shared[PREFIX_BYTES_MAX..];
                let mut command = Vec::with_capacity(used + records.len());
                command.extend_from_slice(&head[..used]);
                command.extend_from_slice(records);
                Bytes::from(command)
            }
        };
        debug_assert!(
            super::batch::decode(&command).is_ok(),
            "an assembled command decodes"
        );
        command
    }
}

/// Counts, not contents: a request in a log line must not dump its records.
impl std::fmt::Debug for EncodedRecords {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter
            .debug_struct("EncodedRecords")
            .field("count", &self.count)
            .field("bytes", &self.records_bytes().len())
            .finish()
    }
}

impl From<Vec<Record>> for EncodedRecords {
    fn from(records: Vec<Record>) -> EncodedRecords {
        EncodedRecords::encode(&records)
    }
}

impl FromIterator<Record> for EncodedRecords {
    fn from_iter<I: IntoIterator<Item = Record>>(records: I) -> EncodedRecords {
        EncodedRecords::encode(&records.into_iter().collect::<Vec<_>>())
    }
}

/// On the peer link: the encoded records as one byte string (no prefix room).
impl Serialize for EncodedRecords {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.records_bytes())
    }
}

impl<'de> Deserialize<'de> for EncodedRecords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EncodedRecords;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("encoded records")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<EncodedRecords, E> {
                EncodedRecords::from_records_bytes(bytes).map_err(E::custom)
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::{decode, encode, PartitionCommand, RecordBatch};
    use super::super::dedup::DedupKind;
    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record {
                key: Some("k".into()),
                value: b"text".to_vec(),
                value_is_text: true,
                headers: vec![("h".into(), "v".into())],
            },
            Record {
                key: None,
                value: vec![0; 300],
                value_is_text: false,
                headers: vec![],
            },
        ]
    }

    #[test]
    fn assembled_commands_are_the_stored_encoding() {
        let stamp = ProducerStamp {
            kind: DedupKind::Producer,
            producer: u128::MAX,
            owner: u64::MAX,
            sequence: u64::MAX,
        };
        for (base_offset, timestamp_ms) in [(0, 0), (17, 1_764_422_400_000), (u64::MAX - 2, 1)] {
            let batch = RecordBatch {
                base_offset,
                timestamp_ms,
                records: records(),
            };
            let plain = EncodedRecords::encode(&records()).into_command(AppendPrefix::Append {
                base_offset,
                timestamp_ms,
            });
            assert_eq!(plain, encode(&PartitionCommand::Append(batch.clone())));
            let encoded = EncodedRecords::encode(&records());
            let held = encoded.clone();
            let idempotent = encoded.into_command(AppendPrefix::IdempotentAppend {
                stamp,
                base_offset,
                timestamp_ms,
            });
            assert_eq!(
                idempotent,
                encode(&PartitionCommand::IdempotentAppend { stamp, batch })
            );
            assert_eq!(held.count(), 2, "a shared buffer is left as it was");
        }
    }

    #[test]
    fn the_only_handle_gets_its_prefix_in_place() {
        for encoded in [
            EncodedRecords::encode(&records()),
            EncodedRecords::from_records_bytes(EncodedRecords::encode(&records()).records_bytes())
                .expect("records"),
        ] {
            let records_at = encoded.records_bytes().as_ptr();
            let records_len = encoded.records_bytes().len();
            let command = encoded.into_command(AppendPrefix::Append {
                base_offset: 1 << 40,
                timestamp_ms: 7,
            });
            let tail = &command[command.len() - records_len..];
            assert_eq!(tail.as_ptr(), records_at, "no copy of the records");
        }
    }

    #[test]
    fn records_cross_the_peer_link_as_one_byte_string() {
        let encoded = EncodedRecords::encode(&records());
        let wire = postcard::to_stdvec(&encoded).expect("encodes");
        let received: EncodedRecords = postcard::from_bytes(&wire).expect("decodes");
        assert_eq!(received, encoded);
        assert_eq!(received.count(), 2);
        assert!(EncodedRecords::from_records_bytes(&[]).is_err());
        assert!(EncodedRecords::from_records_bytes(&[0xff]).is_err());
    }

    /// Found by the `peer_frame` fuzz target: a forwarded produce whose records were a count of
    /// one and no record became a leader entry that no replica or fetch could decode.
    #[test]
    fn records_are_checked_in_place() {
        let valid = EncodedRecords::encode(&records());
        let bytes = valid.records_bytes();
        let checked = EncodedRecords::from_records_bytes(bytes).expect("records");
        assert_eq!(checked.count(), 2);
        let empty = EncodedRecords::encode(&[]);
        assert_eq!(
            EncodedRecords::from_records_bytes(empty.records_bytes())
                .expect("no records")
                .count(),
            0
        );
        let command = checked.into_command(AppendPrefix::Append {
            base_offset: 0,
            timestamp_ms: 0,
        });
        assert!(decode(&command).is_ok());

        let mut one_more = bytes.to_vec();
        one_more[0] = 3;
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        let mut not_text = bytes.to_vec();
        // The count, the key's `Some` tag, its length 1, then the key's one byte.
        not_text[3] = 0xff;
        for (bad, why) in [
            (&[0x01][..], "a count of one and no record"),
            (&one_more[..], "more records counted than sent"),
            (&trailing[..], "bytes after the records"),
            (&not_text[..], "a key that is not UTF-8"),
        ] {
            assert!(EncodedRecords::from_records_bytes(bad).is_err(), "{why}");
            let wire = postcard::to_stdvec(&serde_bytes::Bytes::new(bad)).expect("encodes");
            assert!(
                postcard::from_bytes::<EncodedRecords>(&wire).is_err(),
                "{why}"
            );
        }
    }
}
