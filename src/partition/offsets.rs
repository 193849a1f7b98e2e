//! Committed consumer offsets: `CommitOffset`, the replicated "next offset to consume" per
//! consumer group, kept in `PartitionState::consumer_offsets` (so in every snapshot).
//!
//! The leader refuses an offset beyond the high watermark (`ReplicaError::OffsetBeyondEnd`, a 409
//! through `BrokerError`), proposes anything else and answers once the entry is applied.
//! Committing the same offset again is harmless; a lower offset rewinds the group. Group names
//! are validated by the caller; this module must not know about groups' membership or HTTP.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::batch::{self, PartitionCommand};
use super::machine::PartitionMachine;
use super::replica::{Replica, ReplicaError};
use crate::raft::Role;

/// Store `offset` as the next offset `consumer_group` consumes from this partition; answered
/// after the commit is applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitOffset {
    pub consumer_group: String,
    pub offset: u64,
    pub reply: oneshot::Sender<Result<(), ReplicaError>>,
}

impl Handler<CommitOffset> for Replica<PartitionMachine> {
    type Result = ();
    fn handle(&mut self, message: CommitOffset, ctx: &mut Context<Self>) {
        if self.node.role() != Role::Leader {
            let leader = self.node.leader();
            let _ = message.reply.send(Err(ReplicaError::NotLeader { leader }));
            return;
        }
        let high_watermark = self.machine.state().high_watermark;
        if message.offset > high_watermark {
            let _ = message.reply.send(Err(ReplicaError::OffsetBeyondEnd {
                offset: message.offset,
                high_watermark,
            }));
            return;
        }
        let data = batch::encode(&PartitionCommand::CommitOffset {
            consumer_group: message.consumer_group,
            offset: message.offset,
        });
        let (applied, wait) = oneshot::channel();
        self.propose_with_reply(data, applied);
        let reply = message.reply;
        ctx.spawn(actix::fut::wrap_future(async move {
            let result = match wait.await {
                Ok(result) => result.map(drop),
                Err(_) => Err(ReplicaError::Stopped),
            };
            let _ = reply.send(result);
        }));
        self.drive(ctx);
    }
}

/// Where a consumer group stands in this partition, read without copying the partition's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupPosition {
    pub committed: Option<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// Reads `consumer_group`'s committed offset and the partition's bounds (on any replica; callers
/// that need the latest commit ask the leader).
#[derive(Message)]
#[rtype(result = "GroupPosition")]
pub struct ReadGroupPosition {
    pub consumer_group: String,
}

impl Handler<ReadGroupPosition> for Replica<PartitionMachine> {
    type Result = MessageResult<ReadGroupPosition>;
    fn handle(&mut self, message: ReadGroupPosition, _: &mut Context<Self>) -> Self::Result {
        let state = self.machine.state();
        MessageResult(GroupPosition {
            committed: state.consumer_offsets.get(&message.consumer_group).copied(),
            high_watermark: state.high_watermark,
            log_start_offset: state.log_start_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::batch::{Record, RecordBatch};
    use crate::partition::replica::StateMachine;
    use crate::raft::LogIndex;

    fn commit(group: &str, offset: u64) -> Vec<u8> {
        batch::encode(&PartitionCommand::CommitOffset {
            consumer_group: group.into(),
            offset,
        })
    }

    #[test]
    fn commits_are_stored_per_group_repeatable_and_may_rewind() {
        let mut machine =
            PartitionMachine::restore(&[], 10, Default::default()).expect("empty state");
        let append = batch::encode(&PartitionCommand::Append(RecordBatch {
            base_offset: 0,
            timestamp_ms: 1,
            records: vec![
                Record {
                    key: None,
                    value: b"x".to_vec(),
                    value_is_text: true,
                    headers: vec![],
                };
                10
            ],
        }));
        machine.apply(LogIndex(1), &append);
        machine.apply(LogIndex(2), &commit("billing", 7));
        machine.apply(LogIndex(3), &commit("audit-readers", 10));
        machine.apply(LogIndex(4), &commit("billing", 7));
        let offsets = &machine.state().consumer_offsets;
        assert_eq!(offsets.get("billing"), Some(&7));
        assert_eq!(offsets.get("audit-readers"), Some(&10));
        machine.apply(LogIndex(5), &commit("billing", 2));
        assert_eq!(machine.state().consumer_offsets.get("billing"), Some(&2));
        assert_eq!(machine.state().high_watermark, 10, "commits append nothing");

        let restored = PartitionMachine::restore(&machine.encode_state(), 10, Default::default())
            .expect("restores");
        assert_eq!(restored.state().consumer_offsets.len(), 2);
        assert_eq!(restored.state(), machine.state());
        let mut replaced = PartitionMachine::restore(&[], 10, Default::default()).expect("empty");
        StateMachine::restore(&mut replaced, &machine.encode_state()).expect("snapshot");
        assert_eq!(replaced.state().consumer_offsets.get("billing"), Some(&2));
    }
}
