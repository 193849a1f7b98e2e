//! Reading committed records for a fetch, straight from storage read transactions (never through the
//! writer and never through the partition actor, so fetches do not queue behind produces).

use super::batch::{self, PartitionCommand, Record};
use super::machine::FetchWindow;
use crate::raft::GroupId;
use crate::storage::{StorageError, Store};

/// A record as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchedRecord {
    pub offset: u64,
    pub timestamp_ms: u64,
    pub record: Record,
}

/// Limits of one fetch.
#[derive(Clone, Copy, Debug)]
pub struct FetchLimits {
    pub records_max: u64,
    pub bytes_max: u64,
}

/// Reads records in `[window.offset, window.high_watermark)` up to the limits. At least one record is
/// returned when any is available, even if it alone exceeds `bytes_max`, so a consumer never stalls.
pub fn read_records(
    store: &Store,
    group: GroupId,
    window: FetchWindow,
    limits: FetchLimits,
) -> Result<Vec<FetchedRecord>, StorageError> {
    let mut records = Vec::new();
    if window.offset >= window.high_watermark || limits.records_max == 0 {
        return Ok(records);
    }
    let Some((_, index)) = store.offset_floor(group, window.offset)? else {
        return Ok(records);
    };
    let mut bytes = 0u64;
    store.visit_payloads(group, index, |index, data| {
        let command = batch::decode(data).map_err(|error| StorageError::Corrupt {
            group,
            index,
            reason: error.to_string(),
        })?;
        let batch =
            match command {
                PartitionCommand::Append(batch)
                | PartitionCommand::IdempotentAppend { batch, .. } => batch,
                PartitionCommand::AdvanceLogStart { .. }
                | PartitionCommand::CommitOffset { .. } => return Ok(true),
            };
        for (position, record) in batch.records.into_iter().enumerate() {
            let offset = batch.base_offset + position as u64;
            if offset < window.offset {
                continue;
            }
            let size = record.size_bytes();
            let full = records.len() as u64 >= limits.records_max
                || (!records.is_empty() && bytes + size > limits.bytes_max);
            if offset >= window.high_watermark || full {
                return Ok(false);
            }
            bytes += size;
            records.push(FetchedRecord {
                offset,
                timestamp_ms: batch.timestamp_ms,
                record,
            });
        }
        Ok(true)
    })?;
    Ok(records)
}
