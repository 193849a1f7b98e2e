//! `PartitionMachine`: the applied state of one partition and its deterministic apply.
//!
//! Offsets are assigned by the leader when it proposes a batch (`leader`), stored in the entry, and
//! become visible to consumers when the entry is applied (`high_watermark`). Long polls wait in
//! `waiters` and are woken by the apply, never by polling. Apply reads only the entry's header
//! (the records are never decoded here) and must give the same result on every replica; the
//! leader-only fields (`tail`, `in_flight`, `advancing`) are kept here but decided in `leader`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::batch::{self, AppendHeader, CommandHeader, PartitionCommand};
use super::dedup::{AppendResult, DedupKind, DedupState, LastBatch, ProducerStamp};
use super::handover::Parked;
use super::replica::{Replica, ReplicaError};
use super::retention::{BatchInfo, Retention};
use crate::raft::{LogIndex, Term};

/// The replicated, applied state of a partition (stored beside the applied index).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// One past the last committed offset: consumers may read below it.
    pub high_watermark: u64,
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// Consumer group name → the next offset the group consumes (committed by `CommitOffset`).
    pub consumer_offsets: BTreeMap<String, u64>,
    /// Each idempotent producer's last appended batch (bounded; see `dedup`).
    pub dedup: DedupState,
}

/// Where a fetch may read: committed offsets in `[offset, high_watermark)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchWindow {
    pub offset: u64,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error(
        "offset {offset} is outside the partition's range {log_start_offset}..={high_watermark}"
    )]
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        high_watermark: u64,
    },
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

pub(super) struct Waiter {
    pub(super) id: u64,
    pub(super) offset: u64,
    pub(super) reply: oneshot::Sender<Result<FetchWindow, FetchError>>,
}

/// A write waiting for leadership to settle (`handover`): called with `None` to be handled now,
/// or with the error it is answered with.
pub(super) type ParkedWrite = Box<
    dyn FnOnce(
            &mut Replica<PartitionMachine>,
            &mut Context<Replica<PartitionMachine>>,
            Option<ReplicaError>,
        ) + Send,
>;

pub struct PartitionMachine {
    pub(super) state: PartitionState,
    pub(super) waiters: Vec<Waiter>,
    pub(super) next_waiter_id: u64,
    /// Long polls parked at once; more are answered at once with an empty window.
    pub(super) waiters_max: usize,
    /// On the leader: the term and the offset after the last proposed batch.
    pub(super) tail: Option<(Term, u64)>,
    /// Committed batches at or above the log start, oldest first (for retention).
    pub(super) batches: VecDeque<BatchInfo>,
    pub(super) retention: Retention,
    /// A log-start advance is proposed and not yet applied.
    pub(super) advancing: bool,
    /// Entries up to this index lie wholly below the log start and may be compacted.
    compaction: Option<(LogIndex, u64)>,
    /// The periodic retention check runs.
    pub(super) checking_retention: bool,
    /// On the leader: per producer, the term and highest sequence proposed and not yet applied.
    pub(super) in_flight: HashMap<(DedupKind, u128), (Term, u64)>,
    /// Writes waiting for leadership to settle (`handover`).
    pub(super) parked: Parked<ParkedWrite>,
}

impl PartitionMachine {
    /// Restores the applied state; `batches` are the stored batches up to the applied index.
    pub fn restore(
        bytes: &[u8],
        waiters_max: usize,
        batches: VecDeque<BatchInfo>,
    ) -> Result<PartitionMachine, postcard::Error> {
        let state = if bytes.is_empty() {
            PartitionState::default()
        } else {
            postcard::from_bytes(bytes)?
        };
        let batches = batches
            .into_iter()
            .filter(|b| b.end_offset > state.log_start_offset)
            .collect();
        Ok(PartitionMachine {
            state,
            waiters: Vec::new(),
            next_waiter_id: 0,
            waiters_max,
            tail: None,
            batches,
            retention: Retention::default(),
            advancing: false,
            compaction: None,
            checking_retention: false,
            in_flight: HashMap::new(),
            parked: Parked::default(),
        })
    }

    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    fn apply_append(
        &mut self,
        index: LogIndex,
        bytes: usize,
        append: AppendHeader,
        stamp: Option<ProducerStamp>,
    ) -> AppendResult {
        let AppendHeader {
            base_offset,
            timestamp_ms,
            count,
        } = append;
        let end_offset = base_offset + count;
        assert!(
            base_offset >= self.state.high_watermark || end_offset <= self.state.high_watermark,
            "batch at {base_offset} overlaps the committed log ending at {}",
            self.state.high_watermark
        );
        // Applying a batch twice (snapshot followed by replay) leaves the state unchanged.
        if end_offset > self.state.high_watermark {
            self.batches.push_back(BatchInfo {
                base_offset,
                end_offset,
                timestamp_ms,
                bytes: bytes as u64,
                index,
            });
            if let Some(stamp) = stamp {
                let last = LastBatch {
                    owner: stamp.owner,
                    sequence: stamp.sequence,
                    base_offset,
                    count,
                    timestamp_ms,
                    index: index.0,
                };
                self.state.dedup.record(stamp, last);
            }
        }
        self.state.high_watermark = self.state.high_watermark.max(end_offset);
        AppendResult { base_offset, count }
    }

    fn apply_commit_offset(&mut self, index: LogIndex, data: &[u8]) -> AppendResult {
        let command = batch::decode(data).unwrap_or_else(|error| {
            panic!("committed entry {index:?} is not a partition command: {error}")
        });
        let PartitionCommand::CommitOffset {
            consumer_group,
            offset,
        } = command
        else {
            panic!("entry {index:?}: header says CommitOffset, body is {command:?}");
        };
        self.state.consumer_offsets.insert(consumer_group, offset);
        AppendResult {
            base_offset: offset,
            count: 0,
        }
    }

    pub(super) fn window(&self, offset: u64) -> FetchWindow {
        FetchWindow {
            offset,
            high_watermark: self.state.high_watermark,
            log_start_offset: self.state.log_start_offset,
        }
    }
}

impl super::replica::StateMachine for PartitionMachine {
    type Output = AppendResult;

    fn apply(&mut self, index: LogIndex, data: &[u8]) -> AppendResult {
        let header = batch::decode_header(data).unwrap_or_else(|error| {
            panic!("committed entry {index:?} is not a partition command: {error}")
        });
        if let Some(append) = header.append() {
            let stamp = match header {
                CommandHeader::IdempotentAppend { stamp, .. } => Some(stamp),
                _ => None,
            };
            return self.apply_append(index, data.len(), append, stamp);
        }
        match header {
            CommandHeader::Append { .. } | CommandHeader::IdempotentAppend { .. } => {
                unreachable!("appends returned above")
            }
            CommandHeader::CommitOffset => self.apply_commit_offset(index, data),
            CommandHeader::AdvanceLogStart { offset } => {
                self.advancing = false;
                let offset = offset.min(self.state.high_watermark);
                if offset > self.state.log_start_offset {
                    self.state.log_start_offset = offset;
                    while self.batches.front().is_some_and(|b| b.end_offset <= offset) {
                        let dropped = self.batches.pop_front().expect("front exists");
                        self.compaction = Some((dropped.index, offset));
                    }
                }
                AppendResult {
                    base_offset: offset,
                    count: 0,
                }
            }
        }
    }

    fn encode_state(&self) -> Vec<u8> {
        postcard::to_stdvec(&self.state).expect("encoding plain data into a Vec cannot fail")
    }

    fn offset_row(&self, data: &[u8]) -> Option<u64> {
        batch::base_offset_of(data).ok().flatten()
    }

    fn take_compaction(&mut self) -> Option<(LogIndex, u64)> {
        self.compaction.take()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.state = if data.is_empty() {
            PartitionState::default()
        } else {
            postcard::from_bytes(data).map_err(|error| error.to_string())?
        };
        // Every entry up to the snapshot lies below the log start (only retention compacts a
        // partition), so no stored batch remains to track.
        self.batches.clear();
        self.tail = None;
        self.advancing = false;
        self.compaction = None;
        self.in_flight.clear();
        Ok(())
    }

    fn after_apply(&mut self) {
        let high_watermark = self.state.high_watermark;
        let (ready, waiting): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.offset < high_watermark);
        self.waiters = waiting;
        PARKED_FETCHES.dec_by(ready.len() as i64);
        for waiter in ready {
            let _ = waiter.reply.send(Ok(self.window(waiter.offset)));
        }
    }
}

/// Long polls parked on this broker right now (exported as a metric).
pub static PARKED_FETCHES: std::sync::LazyLock<prometheus_client::metrics::gauge::Gauge> =
    std::sync::LazyLock::new(Default::default);

/// The partition's applied state, for describing a topic.
#[derive(Message)]
#[rtype(result = "PartitionState")]
pub struct Describe;

impl Handler<Describe> for Replica<PartitionMachine> {
    type Result = MessageResult<Describe>;
    fn handle(&mut self, _: Describe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.machine.state.clone())
    }
}

impl Drop for PartitionMachine {
    fn drop(&mut self) {
        PARKED_FETCHES.dec_by(self.waiters.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::{Record, RecordBatch};
    use super::super::replica::StateMachine;
    use super::*;
    use crate::raft::LogIndex;

    fn records(count: usize) -> Vec<Record> {
        (0..count)
            .map(|i| Record {
                key: None,
                value: format!("v{i}").into_bytes(),
                value_is_text: true,
                headers: vec![],
            })
            .collect()
    }

    fn idempotent(producer: u128, sequence: u64, base_offset: u64, count: usize) -> Vec<u8> {
        batch::encode(&PartitionCommand::IdempotentAppend {
            stamp: ProducerStamp {
                kind: DedupKind::Producer,
                producer,
                owner: 1,
                sequence,
            },
            batch: RecordBatch {
                base_offset,
                timestamp_ms: 1_000 + sequence,
                records: records(count),
            },
        })
    }

    fn machine() -> PartitionMachine {
        PartitionMachine::restore(&[], 10, Default::default()).expect("empty state")
    }

    #[test]
    fn applying_an_idempotent_batch_records_the_producer_and_survives_a_snapshot() {
        let mut machine = machine();
        let plain = batch::encode(&PartitionCommand::Append(RecordBatch {
            base_offset: 0,
            timestamp_ms: 5,
            records: records(2),
        }));
        machine.apply(LogIndex(1), &plain);
        let first = machine.apply(LogIndex(2), &idempotent(9, 0, 2, 3));
        assert_eq!(
            first,
            AppendResult {
                base_offset: 2,
                count: 3
            }
        );
        machine.apply(LogIndex(3), &idempotent(9, 1, 5, 1));
        let state = machine.state();
        assert_eq!(state.high_watermark, 6);
        let last = state.dedup.last(DedupKind::Producer, 9).expect("recorded");
        assert_eq!(
            (last.sequence, last.base_offset, last.count, last.index),
            (1, 5, 1, 3)
        );
        assert!(state.dedup.last(DedupKind::Key, 9).is_none());

        // The state goes into snapshots: a replica restored from it knows the producer.
        let mut follower =
            PartitionMachine::restore(&machine.encode_state(), 10, Default::default())
                .expect("restores");
        assert_eq!(follower.state(), machine.state());
        // Replaying an entry the state already covers changes nothing.
        follower.apply(LogIndex(3), &idempotent(9, 1, 5, 1));
        assert_eq!(follower.state(), machine.state());
    }
}
