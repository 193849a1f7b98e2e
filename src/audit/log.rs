//! `AuditLog`: the actor that seals events into the hash chain and appends them to the replicated
//! `__audit` partition, in order.
//!
//! Events queue while a batch is being written; each batch is one produce (one Raft entry). A caller
//! is answered only once its event is committed, so a change that cannot be audited can fail closed.
//! Only the leader of the audit partition seals events (other brokers forward theirs to it), so
//! there is one chain. A new leader term first reads the last stored event and continues from it;
//! a failed batch drops the chain, which is read back from the log before the next batch, so the
//! stored chain never refers to an event that is not stored.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{AuditChain, AuditEvent, UnsealedEvent};
use crate::clock::SharedClock;
use crate::partition::batch::Record;
use crate::partition::machine::{Describe, FetchWindow};
use crate::partition::read::{read_records, FetchLimits};
use crate::partition::{PartitionHandle, Produce, Registry, ReplicaError};
use crate::raft::{GroupId, Term};
use crate::storage::Store;

/// Events waiting at once; past this, events are refused and the request fails closed.
pub const AUDIT_QUEUE_MAX: usize = 10_000;
/// Events written per batch.
pub const AUDIT_BATCH_MAX: usize = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log is overloaded")]
    Overloaded,
    #[error("the audit log could not be written: {0}")]
    Write(#[from] ReplicaError),
    #[error("the audit log has stopped")]
    Stopped,
    #[error("the audit chain cannot be continued: {0}")]
    Recovery(String),
}

/// Append one event; `reply` (if any) is answered once it is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Append {
    pub event: UnsealedEvent,
    pub reply: Option<oneshot::Sender<Result<(), AuditError>>>,
}

type Waiting = (
    UnsealedEvent,
    Option<oneshot::Sender<Result<(), AuditError>>>,
);

/// How long a new leader may take to apply its log before it continues the chain.
const RECOVERY_WAIT: Duration = Duration::from_secs(30);

pub struct AuditLog {
    store: Store,
    registry: Arc<Registry>,
    group: GroupId,
    /// Stamps each batch of events written.
    clock: SharedClock,
    /// The chain continued from the last stored event, valid for one leader term.
    chain: Option<(Term, AuditChain)>,
    queue: Vec<Waiting>,
    writing: bool,
    recovering: bool,
}

impl AuditLog {
    /// Writes through this broker's replica of `group` (the audit partition) while it leads.
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        group: GroupId,
        clock: SharedClock,
    ) -> AuditLog {
        AuditLog {
            store,
            registry,
            group,
            clock,
            chain: None,
            queue: Vec::new(),
            writing: false,
            recovering: false,
        }
    }

    fn fail_queued(&mut self, error: AuditError) {
        for (_, reply) in self.queue.drain(..) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.recovering || self.queue.is_empty() {
            return;
        }
        let Some(partition) = self.registry.get(self.group) else {
            return self.fail_queued(AuditError::Write(ReplicaError::NotLeader { leader: None }));
        };
        let status = partition.status.borrow().clone();
        if !status.is_leader {
            let leader = status.leader;
            return self.fail_queued(AuditError::Write(ReplicaError::NotLeader { leader }));
        }
        match &self.chain {
            Some((term, _)) if *term == status.term => self.write_batch(partition, ctx),
            _ => self.recover(partition, status.term, ctx),
        }
    }

    /// A new leader term: continue the chain from the last event the log holds.
    fn recover(&mut self, partition: PartitionHandle, term: Term, ctx: &mut Context<Self>) {
        self.recovering = true;
        let store = self.store.clone();
        let recovery = async move { recover_chain(&store, &partition).await };
        ctx.spawn(recovery.into_actor(self).map(move |result, actor, ctx| {
            actor.recovering = false;
            match result {
                Ok(chain) => {
                    actor.chain = Some((term, chain));
                    actor.flush(ctx);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot continue the audit chain");
                    actor.fail_queued(AuditError::Recovery(error.to_string()));
                }
            }
        }));
    }

    fn write_batch(&mut self, partition: PartitionHandle, ctx: &mut Context<Self>) {
        let Some((_, chain)) = self.chain.as_mut() else {
            return;
        };
        let take = self.queue.len().min(AUDIT_BATCH_MAX);
        let batch: Vec<Waiting> = self.queue.drain(..take).collect();
        let records = batch
            .iter()
            .map(|(event, _)| {
                let sealed: AuditEvent = chain.seal(event.clone());
                Record {
                    key: Some(sealed.action.clone()),
                    value: serde_json::to_vec(&sealed).expect("audit events are plain data"),
                    value_is_text: true,
                    headers: Vec::new(),
                }
            })
            .collect();
        let (reply, wait) = oneshot::channel();
        partition.addr.do_send(Produce {
            records,
            timestamp_ms: self.clock.now_ms(),
            expected_base: None,
            reply,
        });
        self.writing = true;
        let done = async move { wait.await.unwrap_or(Err(ReplicaError::Stopped)) };
        ctx.spawn(done.into_actor(self).map(move |result, actor, ctx| {
            actor.writing = false;
            let outcome = match result {
                Ok(_) => Ok(()),
                Err(error) => {
                    // The chain may now name an event that was never stored: recover it
                    // from the log before the next batch.
                    tracing::warn!(%error, "audit batch not written; the chain is recovered");
                    actor.chain = None;
                    Err(AuditError::Write(error))
                }
            };
            for (_, reply) in batch {
                if let Some(reply) = reply {
                    let _ = reply.send(outcome.clone());
                }
            }
            actor.flush(ctx);
        }));
    }
}

impl Actor for AuditLog {
    type Context = Context<Self>;
}

impl Handler<Append> for AuditLog {
    type Result = ();
    fn handle(&mut self, message: Append, ctx: &mut Context<Self>) {
        if self.queue.len() >= AUDIT_QUEUE_MAX {
            tracing::error!(action = %message.event.action, "audit queue full; event refused");
            if let Some(reply) = message.reply {
                let _ = reply.send(Err(AuditError::Overloaded));
            }
            return;
        }
        self.queue.push((message.event, message.reply));
        self.flush(ctx);
    }
}

/// The applied state on disk may lag the log after a crash (it is persisted lazily), so right after
/// an election the high watermark can miss the last events. Waiting until the leader applied its log
/// up to its own no-op makes every stored event visible before the chain is resumed.
async fn wait_whole_log_applied(partition: &PartitionHandle) -> Result<(), RecoveryError> {
    let deadline = tokio::time::Instant::now() + RECOVERY_WAIT;
    let mut status = partition.status.clone();
    let target = status.borrow_and_update().last_index;
    while status.borrow_and_update().applied < target {
        tokio::time::timeout_at(deadline, status.changed())
            .await
            .map_err(|_| RecoveryError::NotApplied(RECOVERY_WAIT))?
            .map_err(|_| RecoveryError::Stopped)?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("the audit partition did not apply its log within {0:?}")]
    NotApplied(Duration),
    #[error("the audit partition stopped")]
    Stopped,
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("the last audit event is missing")]
    Missing,
    #[error("the last audit event does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Continues the hash chain from the last stored audit event.
pub async fn recover_chain(
    store: &Store,
    partition: &PartitionHandle,
) -> Result<AuditChain, RecoveryError> {
    wait_whole_log_applied(partition).await?;
    let state = partition
        .addr
        .send(Describe)
        .await
        .map_err(|_| RecoveryError::Stopped)?;
    if state.high_watermark == 0 {
        return Ok(AuditChain::new());
    }
    let window = FetchWindow {
        offset: state.high_watermark - 1,
        high_watermark: state.high_watermark,
        log_start_offset: state.log_start_offset,
    };
    let limits = FetchLimits {
        records_max: 1,
        bytes_max: u64::MAX,
    };
    let records = read_records(store, partition.group, window, limits)?;
    let last = records.last().ok_or(RecoveryError::Missing)?;
    let event: AuditEvent = serde_json::from_slice(&last.record.value)?;
    Ok(AuditChain::resume(&event.hash))
}
