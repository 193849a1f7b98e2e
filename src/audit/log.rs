//! `AuditLog`: the actor that seals events into the hash chain and appends them to the replicated
//! `__audit` partition, in order.
//!
//! Events queue while a batch is being written; each batch is one produce (one Raft entry). A caller
//! is answered only once its event is committed, so a change that cannot be audited can fail closed.
//! If a batch fails, the chain is rewound to the last written event, so the stored chain never refers
//! to an event that is not stored.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{AuditChain, AuditEvent, UnsealedEvent};
use crate::partition::batch::Record;
use crate::partition::{PartitionHandle, Produce, ReplicaError};

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

pub struct AuditLog {
    chain: AuditChain,
    partition: PartitionHandle,
    queue: Vec<Waiting>,
    writing: bool,
}

impl AuditLog {
    /// `chain` must continue from the last event stored in `partition`.
    pub fn new(chain: AuditChain, partition: PartitionHandle) -> AuditLog {
        AuditLog {
            chain,
            partition,
            queue: Vec::new(),
            writing: false,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queue.is_empty() {
            return;
        }
        let take = self.queue.len().min(AUDIT_BATCH_MAX);
        let batch: Vec<Waiting> = self.queue.drain(..take).collect();
        let rewind_to = self.chain.last_hash().to_string();
        let records = batch
            .iter()
            .map(|(event, _)| {
                let sealed: AuditEvent = self.chain.seal(event.clone());
                Record {
                    key: Some(sealed.action.clone()),
                    value: serde_json::to_vec(&sealed).expect("audit events are plain data"),
                    value_is_text: true,
                    headers: Vec::new(),
                }
            })
            .collect();
        let (reply, wait) = oneshot::channel();
        self.partition.addr.do_send(Produce {
            records,
            timestamp_ms: crate::cluster::now_ms(),
            reply,
        });
        self.writing = true;
        let done = async move { wait.await.unwrap_or(Err(ReplicaError::Stopped)) };
        ctx.spawn(done.into_actor(self).map(move |result, actor, ctx| {
            actor.writing = false;
            let outcome = match result {
                Ok(_) => Ok(()),
                Err(error) => {
                    tracing::error!(%error, "audit batch not written; rewinding the chain");
                    actor.chain = AuditChain::resume(&rewind_to);
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
