//! The payload of a partition's Raft entries: record batches and their encoding.
//!
//! One Raft entry carries one whole batch (one redb value), with offsets assigned by the leader when it
//! proposes the batch, so a fetch by offset is a range lookup plus a decode.

use serde::{Deserialize, Serialize};

use super::dedup::ProducerStamp;

/// One record as stored. `value_is_text` remembers whether the producer sent UTF-8 text (`value`) or
/// bytes (`value_b64`), so it is returned the way it came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: Option<String>,
    /// Encoded as one byte string (length + bytes), not element by element.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub value_is_text: bool,
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// Bytes counted against fetch and retention limits.
    pub fn size_bytes(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        (self.key.as_ref().map_or(0, String::len) + self.value.len() + headers + 16) as u64
    }
}

/// A batch of records with consecutive offsets starting at `base_offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBatch {
    pub base_offset: u64,
    pub timestamp_ms: u64,
    pub records: Vec<Record>,
}

impl RecordBatch {
    /// The offset after the last record of this batch.
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.records.len() as u64
    }
}

/// Commands replicated through a partition's Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionCommand {
    Append(RecordBatch),
    /// Retention: records below `offset` are no longer served and their entries may be compacted.
    AdvanceLogStart {
        offset: u64,
    },
    /// A consumer group's next offset to consume (stored in the applied state).
    CommitOffset {
        consumer_group: String,
        offset: u64,
    },
    /// A batch from an idempotent producer: appended like `Append`, and the producer's last
    /// batch is remembered so a retry is answered without a second append.
    IdempotentAppend {
        stamp: ProducerStamp,
        batch: RecordBatch,
    },
}

/// The leading fields of an encoded `PartitionCommand`. Postcard writes fields in order and a
/// `Vec`'s length as its first field, so this decodes a command's prefix without touching the
/// records. Variant order and field order must match `PartitionCommand` (a unit test checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum CommandHeader {
    Append {
        base_offset: u64,
        timestamp_ms: u64,
        count: u64,
    },
    AdvanceLogStart {
        offset: u64,
    },
    /// Only the variant: the group name is read by a full decode.
    CommitOffset,
    IdempotentAppend {
        stamp: ProducerStamp,
        base_offset: u64,
        timestamp_ms: u64,
        count: u64,
    },
}

/// The offsets of a command that appends records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendHeader {
    pub base_offset: u64,
    pub timestamp_ms: u64,
    pub count: u64,
}

impl CommandHeader {
    /// Where the records of an `Append` or `IdempotentAppend` go; `None` for other commands.
    pub fn append(&self) -> Option<AppendHeader> {
        match *self {
            CommandHeader::Append {
                base_offset,
                timestamp_ms,
                count,
            }
            | CommandHeader::IdempotentAppend {
                base_offset,
                timestamp_ms,
                count,
                ..
            } => Some(AppendHeader {
                base_offset,
                timestamp_ms,
                count,
            }),
            CommandHeader::AdvanceLogStart { .. } | CommandHeader::CommitOffset => None,
        }
    }

    /// The offset after the last record of an append.
    pub fn end_offset(&self) -> Option<u64> {
        self.append().map(|a| a.base_offset + a.count)
    }
}

/// Decodes only the header of an encoded command.
pub fn decode_header(bytes: &[u8]) -> Result<CommandHeader, BatchError> {
    Ok(postcard::take_from_bytes::<CommandHeader>(bytes)?.0)
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("entry payload does not decode as a partition command: {0}")]
    Decode(#[from] postcard::Error),
}

pub fn encode(command: &PartitionCommand) -> Vec<u8> {
    postcard::to_stdvec(command).expect("encoding plain data into a Vec cannot fail")
}

pub fn decode(bytes: &[u8]) -> Result<PartitionCommand, BatchError> {
    Ok(postcard::from_bytes(bytes)?)
}

/// Reads only the base offset of an encoded command, for the offset index written beside each entry.
pub fn base_offset_of(bytes: &[u8]) -> Result<Option<u64>, BatchError> {
    Ok(decode_header(bytes)?.append().map(|a| a.base_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let batch = RecordBatch {
            base_offset: 17,
            timestamp_ms: 1_764_422_400_000,
            records: vec![
                Record {
                    key: Some("k1".into()),
                    value: b"text".to_vec(),
                    value_is_text: true,
                    headers: vec![("h".into(), "v".into())],
                },
                Record {
                    key: None,
                    value: vec![0, 1, 2],
                    value_is_text: false,
                    headers: vec![],
                },
            ],
        };
        let command = PartitionCommand::Append(batch.clone());
        let bytes = encode(&command);
        assert_eq!(decode(&bytes).expect("decodes"), command);
        assert_eq!(base_offset_of(&bytes).expect("decodes"), Some(17));
        assert_eq!(batch.end_offset(), 19);
        assert_eq!(
            decode_header(&bytes).expect("header decodes"),
            CommandHeader::Append {
                base_offset: 17,
                timestamp_ms: 1_764_422_400_000,
                count: 2
            }
        );
        let advance = encode(&PartitionCommand::AdvanceLogStart { offset: 9 });
        assert_eq!(
            decode_header(&advance).expect("decodes"),
            CommandHeader::AdvanceLogStart { offset: 9 }
        );
    }

    #[test]
    fn headers_of_the_newer_commands_decode_without_the_records() {
        let stamp = ProducerStamp {
            kind: crate::partition::dedup::DedupKind::Producer,
            producer: u128::MAX - 5,
            owner: 3,
            sequence: 41,
        };
        let batch = RecordBatch {
            base_offset: 30,
            timestamp_ms: 99,
            records: vec![
                Record {
                    key: None,
                    value: b"a".to_vec(),
                    value_is_text: true,
                    headers: vec![],
                };
                3
            ],
        };
        let command = PartitionCommand::IdempotentAppend {
            stamp,
            batch: batch.clone(),
        };
        let bytes = encode(&command);
        assert_eq!(decode(&bytes).expect("decodes"), command);
        let header = decode_header(&bytes).expect("header decodes");
        assert_eq!(
            header,
            CommandHeader::IdempotentAppend {
                stamp,
                base_offset: 30,
                timestamp_ms: 99,
                count: 3
            }
        );
        assert_eq!(header.end_offset(), Some(33));
        assert_eq!(base_offset_of(&bytes).expect("decodes"), Some(30));
        let commit = encode(&PartitionCommand::CommitOffset {
            consumer_group: "billing".into(),
            offset: 12,
        });
        assert_eq!(
            decode_header(&commit).expect("decodes"),
            CommandHeader::CommitOffset
        );
        assert_eq!(base_offset_of(&commit).expect("decodes"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
