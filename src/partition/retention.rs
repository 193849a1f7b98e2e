//! Retention by time and by size.
//!
//! The leader decides a new log start (`plan_log_start`, pure) and proposes it through the log
//! (`PartitionCommand::AdvanceLogStart`), so every replica agrees on it; once applied, each replica
//! compacts the entries wholly below it, which frees their space in the store.

use std::collections::VecDeque;

use crate::raft::LogIndex;

/// What retention needs to know about one stored batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: u64,
    pub end_offset: u64,
    pub timestamp_ms: u64,
    pub bytes: u64,
    pub index: LogIndex,
}

/// A topic's retention limits; `None` keeps records forever on that axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

/// The new log start: the end of the newest batch that is older than `retention_ms`, or that must
/// go for the rest to fit in `retention_bytes`. `None` when nothing expires. Only committed
/// batches (`batches`, oldest first) are considered.
pub fn plan_log_start(
    batches: &VecDeque<BatchInfo>,
    log_start: u64,
    now_ms: u64,
    retention: Retention,
) -> Option<u64> {
    let mut new_start = log_start;
    if let Some(retention_ms) = retention.retention_ms {
        let cutoff = now_ms.saturating_sub(retention_ms);
        for batch in batches.iter().take_while(|b| b.timestamp_ms < cutoff) {
            new_start = new_start.max(batch.end_offset);
        }
    }
    if let Some(retention_bytes) = retention.retention_bytes {
        let kept_from = new_start;
        let mut total: u64 = batches
            .iter()
            .filter(|b| b.base_offset >= kept_from)
            .map(|b| b.bytes)
            .sum();
        for batch in batches.iter().filter(|b| b.base_offset >= kept_from) {
            if total <= retention_bytes {
                break;
            }
            total -= batch.bytes;
            new_start = batch.end_offset;
        }
    }
    (new_start > log_start).then_some(new_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches() -> VecDeque<BatchInfo> {
        (0..5u64)
            .map(|i| BatchInfo {
                base_offset: i * 10,
                end_offset: i * 10 + 10,
                timestamp_ms: 1_000 + i * 100,
                bytes: 1_000,
                index: LogIndex(i + 2),
            })
            .collect()
    }

    #[test]
    fn nothing_expires_without_limits_or_when_young() {
        assert_eq!(
            plan_log_start(&batches(), 0, 5_000, Retention::default()),
            None
        );
        let young = Retention {
            retention_ms: Some(10_000),
            retention_bytes: Some(10_000),
        };
        assert_eq!(plan_log_start(&batches(), 0, 5_000, young), None);
    }

    #[test]
    fn time_retention_drops_batches_older_than_the_cutoff() {
        // now 1_250, keep 100 ms: batches stamped 1_000 and 1_100 are older than 1_150.
        let by_time = Retention {
            retention_ms: Some(100),
            retention_bytes: None,
        };
        assert_eq!(plan_log_start(&batches(), 0, 1_250, by_time), Some(20));
        assert_eq!(
            plan_log_start(&batches(), 20, 1_250, by_time),
            None,
            "already advanced"
        );
    }

    #[test]
    fn size_retention_keeps_the_newest_batches_that_fit() {
        let by_size = Retention {
            retention_ms: None,
            retention_bytes: Some(2_500),
        };
        assert_eq!(
            plan_log_start(&batches(), 0, 0, by_size),
            Some(30),
            "keep the 2 newest batches"
        );
        let tiny = Retention {
            retention_ms: None,
            retention_bytes: Some(0),
        };
        assert_eq!(plan_log_start(&batches(), 0, 0, tiny), Some(50));
    }
}
