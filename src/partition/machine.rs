//! `PartitionMachine`: the applied state of one partition and the produce/fetch handlers of its replica.
//!
//! Offsets are assigned by the leader when it proposes a batch (`tail_offset`), stored in the entry, and
//! become visible to consumers when the entry is applied (`high_watermark`). Long polls wait in
//! `waiters` and are woken by the apply, never by polling.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::batch::{self, AppendHeader, CommandHeader, PartitionCommand, Record, RecordBatch};
use super::dedup::{DedupKind, DedupState, LastBatch, ProducerStamp};
#[cfg(feature = "test-hooks")]
use super::replica::AckPolicy;
use super::replica::{Replica, ReplicaError};
use super::retention::{plan_log_start, BatchInfo, Retention};
use crate::raft::{EntryPayload, LogIndex, LogStore, Role, Term};

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

/// Offsets given to one applied batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: u64,
    pub count: u64,
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

struct Waiter {
    id: u64,
    offset: u64,
    reply: oneshot::Sender<Result<FetchWindow, FetchError>>,
}

pub struct PartitionMachine {
    state: PartitionState,
    waiters: Vec<Waiter>,
    next_waiter_id: u64,
    /// Long polls parked at once; more are answered at once with an empty window.
    waiters_max: usize,
    /// On the leader: the term and the offset after the last proposed batch.
    pub(super) tail: Option<(Term, u64)>,
    /// Committed batches at or above the log start, oldest first (for retention).
    batches: VecDeque<BatchInfo>,
    retention: Retention,
    /// A log-start advance is proposed and not yet applied.
    advancing: bool,
    /// Entries up to this index lie wholly below the log start and may be compacted.
    compaction: Option<(LogIndex, u64)>,
    /// The periodic retention check runs.
    checking_retention: bool,
    /// On the leader: per producer, the term and highest sequence proposed and not yet applied.
    pub(super) in_flight: HashMap<(DedupKind, u128), (Term, u64)>,
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

    fn window(&self, offset: u64) -> FetchWindow {
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

/// Append records; answered with the batch's offsets once committed and applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Produce {
    pub records: Vec<Record>,
    pub timestamp_ms: u64,
    pub reply: oneshot::Sender<Result<AppendResult, ReplicaError>>,
}

/// Ask where a fetch from `offset` may read; waits up to `wait_ms` for new records when at the end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fetch {
    pub offset: u64,
    pub wait_ms: u64,
    pub reply: oneshot::Sender<Result<FetchWindow, FetchError>>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct FetchTimeout(u64);

impl Replica<PartitionMachine> {
    /// The offset the next proposed batch starts at: the end of the last batch in the log, which on a
    /// new leader may be above the commit index (entries of earlier terms it will commit).
    pub(super) fn tail_offset(&mut self) -> u64 {
        if let Some((term, tail)) = self.machine.tail {
            if term == self.node.term() {
                return tail;
            }
        }
        let status = self.node.status();
        let mut tail = self.machine.state.high_watermark;
        let log = self.node.store();
        let mut index = log.last_index();
        while index >= log.first_index() && index > status.applied {
            let Some(entry) = log
                .entries(index, index.next(), u64::MAX)
                .ok()
                .and_then(|mut e| e.pop())
            else {
                break;
            };
            if let EntryPayload::Normal(data) = entry.payload {
                if let Some(end_offset) = batch::decode_header(&data)
                    .ok()
                    .and_then(|h| h.end_offset())
                {
                    tail = tail.max(end_offset);
                    break;
                }
            }
            index = index.prev();
        }
        self.machine.tail = Some((status.term, tail));
        tail
    }
}

impl Handler<Produce> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: Produce, ctx: &mut Context<Self>) {
        if self.node.role() != Role::Leader {
            let leader = self.node.leader();
            let _ = message.reply.send(Err(ReplicaError::NotLeader { leader }));
            return;
        }
        let term = self.node.term();
        let base_offset = self.tail_offset();
        let batch = RecordBatch {
            base_offset,
            timestamp_ms: message.timestamp_ms,
            records: message.records,
        };
        let end = batch.end_offset();
        let data = batch::encode(&PartitionCommand::Append(batch));
        #[cfg(feature = "test-hooks")]
        if self.ack_policy() == AckPolicy::BeforeCommitUnsafe {
            let (ignored, _) = oneshot::channel();
            let result = if self.propose_with_reply(data, ignored) {
                self.machine.tail = Some((term, end));
                Ok(AppendResult {
                    base_offset,
                    count: end - base_offset,
                })
            } else {
                Err(ReplicaError::ProposalDropped)
            };
            let _ = message.reply.send(result);
            self.drive(ctx);
            return;
        }
        if self.propose_with_reply(data, message.reply) {
            self.machine.tail = Some((term, end));
        }
        self.drive(ctx);
    }
}

impl Handler<Fetch> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: Fetch, ctx: &mut Context<Self>) {
        let state = self.machine.state.clone();
        if message.offset < state.log_start_offset || message.offset > state.high_watermark {
            let _ = message.reply.send(Err(FetchError::OffsetOutOfRange {
                offset: message.offset,
                log_start_offset: state.log_start_offset,
                high_watermark: state.high_watermark,
            }));
            return;
        }
        let machine = &mut self.machine;
        if message.offset < state.high_watermark
            || message.wait_ms == 0
            || machine.waiters.len() >= machine.waiters_max
        {
            let window = machine.window(message.offset);
            let _ = message.reply.send(Ok(window));
            return;
        }
        let id = machine.next_waiter_id;
        machine.next_waiter_id += 1;
        PARKED_FETCHES.inc();
        machine.waiters.push(Waiter {
            id,
            offset: message.offset,
            reply: message.reply,
        });
        ctx.notify_later(FetchTimeout(id), Duration::from_millis(message.wait_ms));
    }
}

impl Handler<FetchTimeout> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: FetchTimeout, _: &mut Context<Self>) {
        let machine = &mut self.machine;
        if let Some(position) = machine.waiters.iter().position(|w| w.id == message.0) {
            let waiter = machine.waiters.swap_remove(position);
            PARKED_FETCHES.dec();
            let _ = waiter.reply.send(Ok(machine.window(waiter.offset)));
        }
    }
}

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

/// Sets the topic's retention limits; the first one also starts the periodic retention check.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRetention {
    pub retention: Retention,
    pub check_ms: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
struct RetentionTick;

impl Handler<SetRetention> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: SetRetention, ctx: &mut Context<Self>) {
        let first =
            self.machine.retention == Retention::default() && !self.machine.checking_retention;
        self.machine.retention = message.retention;
        if first || !self.machine.checking_retention {
            self.machine.checking_retention = true;
            ctx.run_interval(Duration::from_millis(message.check_ms.max(1)), |_, ctx| {
                ctx.notify(RetentionTick)
            });
        }
    }
}

impl Handler<RetentionTick> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, _: RetentionTick, ctx: &mut Context<Self>) {
        if self.machine.advancing || self.node.role() != Role::Leader {
            return;
        }
        let machine = &self.machine;
        let now_ms = crate::cluster::now_ms();
        let Some(offset) = plan_log_start(
            &machine.batches,
            machine.state.log_start_offset,
            now_ms,
            machine.retention,
        ) else {
            return;
        };
        let (ignored, _) = oneshot::channel();
        let data = batch::encode(&PartitionCommand::AdvanceLogStart { offset });
        if self.propose_with_reply(data, ignored) {
            self.machine.advancing = true;
        }
        self.drive(ctx);
    }
}

impl Drop for PartitionMachine {
    fn drop(&mut self) {
        PARKED_FETCHES.dec_by(self.waiters.len() as i64);
    }
}
