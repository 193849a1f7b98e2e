//! Batching of one peer's outbound queue into frames within the count and byte bounds.
//!
//! Owns what a link queues (`Outbound`), the queue itself (bounded by items and by envelope
//! bytes), how many queued items one batch takes, and how a batch becomes frames no larger
//! than `frame_bytes_max`. It must not decide where items go
//! or wait on anything but the writer: the link owns the connection and its deadline.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::raft::{Message, NodeId};
use crate::transport::frame::{self, Envelope, Frame, FrameError};
use crate::transport::limits::PeerLimits;
use crate::transport::rpc::CallError;
use crate::transport::shared::Shared;
use crate::transport::stats::{add, bump};

/// One item of a peer's outbound queue, written in queue order within its kind.
#[derive(Debug)]
pub(crate) enum Outbound {
    Message(Message),
    Request(Envelope),
    /// An answer, and what the responder keeps alive until it is written (for example the
    /// memory budget its body was read under); opaque here, dropped after the write.
    Response(Envelope, Option<Hold>),
}

/// Something a response holds until it is written, never looked into.
pub type Hold = Box<dyn std::any::Any + Send>;

impl Outbound {
    /// Bytes this item adds to a frame, counting Raft messages as empty: entries are bounded
    /// by the halving in `write`, envelopes are what may be several MiB each.
    fn body_bytes(&self) -> usize {
        match self {
            Outbound::Message(_) => 0,
            Outbound::Request(envelope) | Outbound::Response(envelope, _) => envelope.body.len(),
        }
    }

    /// Bytes this item keeps alive while it waits in the queue: envelope bodies, and the entry
    /// payloads and snapshot data a Raft message carries (shared with the leader's log, but held
    /// for as long as the message waits).
    fn queued_bytes(&self) -> usize {
        match self {
            Outbound::Message(message) => message.payload_bytes(),
            _ => self.body_bytes(),
        }
    }
}

/// Why a link did not queue an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `queue_messages_max` items or `queue_bytes_max` envelope bytes are waiting already.
    Full,
    /// The link's task has ended (the peer was removed or the network is stopping).
    Stopped,
}

/// A peer's outbound queue, bounded by items and by the bytes queued items hold (envelope bodies
/// and Raft entries: a few large produce requests, or appends to a slow follower, must not pile
/// up gigabytes).
pub(crate) fn queue(limits: &PeerLimits) -> (QueueSender, QueueReceiver) {
    let (sender, receiver) = mpsc::channel(limits.queue_messages_max.max(1));
    let bytes = Arc::new(AtomicUsize::new(0));
    // One envelope of the largest size must always fit in an empty queue.
    let bytes_max = limits.queue_bytes_max.max(limits.frame_bytes_max as usize);
    let sender = QueueSender {
        sender,
        bytes: bytes.clone(),
        bytes_max,
    };
    (sender, QueueReceiver { receiver, bytes })
}

pub(crate) struct QueueSender {
    sender: mpsc::Sender<Outbound>,
    /// Envelope body bytes queued and not yet taken by the link.
    bytes: Arc<AtomicUsize>,
    bytes_max: usize,
}

impl QueueSender {
    /// Queues `item` without waiting, or drops it and says why.
    pub(crate) fn try_send(&self, item: Outbound) -> Result<(), Refused> {
        let bytes = item.queued_bytes();
        let before = self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.bytes_max {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        self.sender.try_send(item).map_err(|error| {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
            match error {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Closed(_) => Refused::Stopped,
            }
        })
    }
}

pub(crate) struct QueueReceiver {
    receiver: mpsc::Receiver<Outbound>,
    bytes: Arc<AtomicUsize>,
}

impl QueueReceiver {
    /// The next item, waiting for one; `None` once every sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<Outbound> {
        let item = self.receiver.recv().await?;
        Some(self.taken(item))
    }

    /// Whether every sender is gone and nothing is left to take.
    pub(crate) fn is_closed(&self) -> bool {
        self.receiver.is_closed() && self.receiver.is_empty()
    }

    fn try_recv(&mut self) -> Option<Outbound> {
        let item = self.receiver.try_recv().ok()?;
        Some(self.taken(item))
    }

    fn taken(&self, item: Outbound) -> Outbound {
        self.bytes.fetch_sub(item.queued_bytes(), Ordering::Relaxed);
        item
    }
}

/// Takes `first` and whatever else is queued, up to `batch_messages_max` items or until the
/// envelope bodies reach `frame_bytes_max`, so a batch holds about one frame's worth of bytes.
pub(crate) fn drain(
    first: Outbound,
    queue: &mut QueueReceiver,
    limits: &PeerLimits,
) -> Vec<Outbound> {
    let bytes_max = limits.frame_bytes_max as usize;
    let mut bytes = first.body_bytes();
    let mut items = vec![first];
    while items.len() < limits.batch_messages_max && bytes < bytes_max {
        match queue.try_recv() {
            Some(item) => {
                bytes = bytes.saturating_add(item.body_bytes());
                items.push(item);
            }
            None => break,
        }
    }
    items
}

/// Writes `items` as as few frames as the frame bound allows, halving a batch that is too
/// large. A single item above the bound is dropped and counted; if it is a request, its call
/// fails with `TooLarge`. Requests whose call has ended are dropped and counted.
pub(crate) async fn write<W>(
    shared: &Shared,
    peer: NodeId,
    writer: &mut W,
    items: Vec<Outbound>,
) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
{
    let counters = &shared.counters;
    let frame_bytes_max = shared.limits.frame_bytes_max;
    let mut items = items;
    // A caller that has already been told `Timeout` or `Disconnected` gets no answer, so the
    // peer need not execute its request.
    let queued = items.len();
    items.retain(|item| match item {
        Outbound::Request(envelope) => shared.calls.is_pending(peer, envelope.id),
        _ => true,
    });
    add(&counters.requests_abandoned, (queued - items.len()) as u64);
    if items.is_empty() {
        return Ok(());
    }
    // Kept until the frames carrying the responses are written and flushed.
    let _holds: Vec<Hold> = items
        .iter_mut()
        .filter_map(|item| match item {
            Outbound::Response(_, hold) => hold.take(),
            _ => None,
        })
        .collect();
    let mut pending = vec![items];
    while let Some(items) = pending.pop() {
        let count = items.len();
        let frame = assemble(shared.broker, items);
        match frame::encode(&frame, frame_bytes_max) {
            Ok(bytes) => {
                writer.write_all(&bytes).await?;
                bump(&counters.frames_sent);
                add(&counters.messages_sent, frame.messages.len() as u64);
                add(&counters.requests_sent, frame.requests.len() as u64);
                add(&counters.responses_sent, frame.responses.len() as u64);
            }
            Err(FrameError::TooLarge { .. }) if count > 1 => {
                let mut first = disassemble(frame);
                let second = first.split_off(count / 2);
                pending.push(second);
                pending.push(first);
            }
            Err(FrameError::TooLarge { bytes, bytes_max }) => {
                bump(&counters.dropped_oversized);
                if let Some(request) = frame.requests.first() {
                    let error = CallError::TooLarge {
                        peer,
                        bytes,
                        bytes_max,
                    };
                    shared.calls.finish(peer, request.id, Err(error));
                }
            }
            Err(error) => return Err(error),
        }
    }
    writer.flush().await?;
    Ok(())
}

/// Moves `items` into one frame; order is kept within each kind, which is all the receiver
/// relies on (Raft messages per peer in order; calls are matched by id).
fn assemble(from: NodeId, items: Vec<Outbound>) -> Frame {
    let mut frame = Frame::with_messages(from, Vec::new());
    for item in items {
        match item {
            Outbound::Message(message) => frame.messages.push(message),
            Outbound::Request(envelope) => frame.requests.push(envelope),
            Outbound::Response(envelope, _) => frame.responses.push(envelope),
        }
    }
    frame
}

/// The items of `frame` again, kinds in frame order, so an oversized batch can be split
/// without copying bodies.
fn disassemble(frame: Frame) -> Vec<Outbound> {
    let messages = frame.messages.into_iter().map(Outbound::Message);
    let requests = frame.requests.into_iter().map(Outbound::Request);
    let responses =
        (frame.responses.into_iter()).map(|envelope| Outbound::Response(envelope, None));
    messages.chain(requests).chain(responses).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: usize) -> Outbound {
        Outbound::Request(Envelope {
            id: 1,
            body: vec![0; bytes],
        })
    }

    #[tokio::test]
    async fn the_queue_is_bounded_by_envelope_bytes_and_frees_them_when_taken() {
        let limits = PeerLimits {
            frame_bytes_max: 100,
            queue_bytes_max: 250,
            ..PeerLimits::default()
        };
        let (sender, mut receiver) = queue(&limits);
        assert_eq!(sender.try_send(request(100)), Ok(()));
        assert_eq!(sender.try_send(request(100)), Ok(()));
        assert_eq!(sender.try_send(request(100)), Err(Refused::Full));
        assert_eq!(sender.try_send(request(50)), Ok(()), "exactly at the bound");
        let first = receiver.recv().await.expect("queued");
        assert_eq!(first.body_bytes(), 100);
        assert_eq!(sender.try_send(request(100)), Ok(()), "taking frees bytes");
        drop(receiver);
        assert_eq!(sender.try_send(request(0)), Err(Refused::Stopped));
    }

    fn append(bytes: usize) -> Outbound {
        use crate::raft::{Entry, EntryPayload, GroupId, LogIndex, MessageBody, Term};
        Outbound::Message(Message {
            group: GroupId(1),
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::Append {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![Entry {
                    term: Term(1),
                    index: LogIndex(1),
                    payload: EntryPayload::Normal(vec![0; bytes].into()),
                }],
                commit: LogIndex(0),
            },
        })
    }

    #[tokio::test]
    async fn appends_count_their_entries_against_the_queue_bytes() {
        let limits = PeerLimits {
            frame_bytes_max: 100,
            queue_bytes_max: 250,
            ..PeerLimits::default()
        };
        let (sender, mut receiver) = queue(&limits);
        assert_eq!(sender.try_send(append(120)), Ok(()));
        assert_eq!(sender.try_send(append(120)), Ok(()));
        assert_eq!(
            sender.try_send(append(120)),
            Err(Refused::Full),
            "a slow follower's appends cannot pile up past queue_bytes_max"
        );
        receiver.recv().await.expect("queued");
        assert_eq!(sender.try_send(append(120)), Ok(()), "taking frees bytes");
    }

    #[tokio::test]
    async fn a_batch_stops_once_its_envelope_bytes_reach_a_frame() {
        let limits = PeerLimits {
            frame_bytes_max: 100,
            ..PeerLimits::default()
        };
        let (sender, mut receiver) = queue(&limits);
        for _ in 0..5 {
            assert_eq!(sender.try_send(request(40)), Ok(()));
        }
        let first = receiver.recv().await.expect("queued");
        assert_eq!(drain(first, &mut receiver, &limits).len(), 3);
        let next = receiver.recv().await.expect("queued");
        assert_eq!(drain(next, &mut receiver, &limits).len(), 2);
    }
}
