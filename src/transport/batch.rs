//! Batching of one peer's outbound queue into frames within the count and byte bounds.
//!
//! Owns what a link queues (`Outbound`), how many queued items one batch takes, and how a
//! batch becomes frames no larger than `frame_bytes_max`. It must not decide where items go
//! or wait on anything but the writer: the link owns the connection and its deadline.
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::raft::{Message, NodeId};
use crate::transport::frame::{self, Envelope, Frame, FrameError};
use crate::transport::network::{PeerLimits, Shared};
use crate::transport::rpc::CallError;
use crate::transport::stats::{add, bump};

/// One item of a peer's outbound queue, written in queue order within its kind.
#[derive(Debug)]
pub(crate) enum Outbound {
    Message(Message),
    Request(Envelope),
    Response(Envelope),
}

impl Outbound {
    /// Bytes this item adds to a frame, counting Raft messages as empty: entries are bounded
    /// by the halving in `write`, envelopes are what may be several MiB each.
    fn body_bytes(&self) -> usize {
        match self {
            Outbound::Message(_) => 0,
            Outbound::Request(envelope) | Outbound::Response(envelope) => envelope.body.len(),
        }
    }
}

/// Takes `first` and whatever else is queued, up to `batch_messages_max` items or until the
/// envelope bodies reach `frame_bytes_max`, so a batch holds about one frame's worth of bytes.
pub(crate) fn drain(
    first: Outbound,
    queue: &mut mpsc::Receiver<Outbound>,
    limits: &PeerLimits,
) -> Vec<Outbound> {
    let bytes_max = limits.frame_bytes_max as usize;
    let mut bytes = first.body_bytes();
    let mut items = vec![first];
    while items.len() < limits.batch_messages_max && bytes < bytes_max {
        match queue.try_recv() {
            Ok(item) => {
                bytes = bytes.saturating_add(item.body_bytes());
                items.push(item);
            }
            Err(_) => break,
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
            Outbound::Response(envelope) => frame.responses.push(envelope),
        }
    }
    frame
}

/// The items of `frame` again, kinds in frame order, so an oversized batch can be split
/// without copying bodies.
fn disassemble(frame: Frame) -> Vec<Outbound> {
    let messages = frame.messages.into_iter().map(Outbound::Message);
    let requests = frame.requests.into_iter().map(Outbound::Request);
    let responses = frame.responses.into_iter().map(Outbound::Response);
    messages.chain(requests).chain(responses).collect()
}
