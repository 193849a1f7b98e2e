//! Request/response calls over the peer links: the calls waiting for an answer, and the
//! types callers and responders see.
//!
//! Owns the table of pending calls per peer (bounded by `calls_pending_max`), the id of each
//! call, and the errors a call ends with. An answer is matched by (peer, id) only, where the
//! peer is the broker id of the authenticated connection it arrived on, so a broker cannot
//! answer a call made to another broker. It must not interpret request or response bodies:
//! they are opaque bytes the broker layer encodes.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::raft::NodeId;

/// A request from a peer; answer it with `PeerNetwork::respond(request.from, request.id, body)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRequest {
    /// The broker id of the authenticated connection the request arrived on.
    pub from: NodeId,
    /// The caller's id for this call; the response must carry it back.
    pub id: u64,
    pub body: Vec<u8>,
}

/// Why a call ended without an answer.
///
/// `Timeout` and `Disconnected` leave the outcome unknown: the peer may have received and
/// executed the request.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CallError {
    #[error("broker {} is not a peer", .0 .0)]
    UnknownPeer(NodeId),
    #[error("too many calls to broker {} are pending or queued", .0 .0)]
    QueueFull(NodeId),
    #[error("broker {} did not answer before the deadline", .0 .0)]
    Timeout(NodeId),
    #[error("the link to broker {} was lost before it answered", .0 .0)]
    Disconnected(NodeId),
    #[error("a request of {bytes} bytes to broker {} does not fit in a frame of at most {bytes_max} bytes", .peer.0)]
    TooLarge {
        peer: NodeId,
        bytes: u64,
        bytes_max: u32,
    },
}

/// How a call ends: the answer's body or why there is none.
pub(crate) type Outcome = Result<Vec<u8>, CallError>;

/// Where a call's outcome goes.
type Reply = oneshot::Sender<Outcome>;

/// Where the caller waits for its call's outcome.
pub(crate) type Answer = oneshot::Receiver<Outcome>;

/// The calls of this broker waiting for an answer, per peer.
pub(crate) struct Calls {
    /// Next call id; ids are unique per network, so (peer, id) identifies a call.
    next_id: AtomicU64,
    /// Pending calls per peer; each peer's map holds at most `per_peer_max` entries.
    pending: Mutex<HashMap<NodeId, HashMap<u64, Reply>>>,
    per_peer_max: usize,
}

impl Calls {
    pub(crate) fn new(per_peer_max: usize) -> Calls {
        Calls {
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            per_peer_max,
        }
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<NodeId, HashMap<u64, Reply>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a call to `peer`, or fails with `QueueFull` when `per_peer_max` calls to it
    /// are already pending. The guard forgets the call when dropped (timeout, cancellation).
    pub(crate) fn register(&self, peer: NodeId) -> Result<(PendingCall<'_>, Answer), CallError> {
        let mut pending = self.pending();
        let calls = pending.entry(peer).or_default();
        if calls.len() >= self.per_peer_max {
            return Err(CallError::QueueFull(peer));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, receiver) = oneshot::channel();
        calls.insert(id, reply);
        let guard = PendingCall {
            calls: self,
            peer,
            id,
        };
        Ok((guard, receiver))
    }

    /// Ends call `id` to `peer` with `outcome`; returns false when no such call is pending
    /// (answered already, timed out, or never made).
    pub(crate) fn finish(&self, peer: NodeId, id: u64, outcome: Outcome) -> bool {
        let reply = self
            .pending()
            .get_mut(&peer)
            .and_then(|calls| calls.remove(&id));
        match reply {
            // The caller may have given up in the meantime; the call is finished either way.
            Some(reply) => {
                let _ = reply.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Whether call `id` to `peer` still waits for an answer.
    pub(crate) fn is_pending(&self, peer: NodeId, id: u64) -> bool {
        let pending = self.pending();
        pending
            .get(&peer)
            .is_some_and(|calls| calls.contains_key(&id))
    }

    /// Fails every call pending to `peer` with `Disconnected`.
    pub(crate) fn disconnect(&self, peer: NodeId) {
        let calls = self.pending().remove(&peer).unwrap_or_default();
        for (_, reply) in calls {
            // A caller that gave up already has nothing left to tell.
            let _ = reply.send(Err(CallError::Disconnected(peer)));
        }
    }

    /// Fails every pending call with `Disconnected`.
    pub(crate) fn disconnect_all(&self) {
        let peers: Vec<NodeId> = self.pending().keys().copied().collect();
        for peer in peers {
            self.disconnect(peer);
        }
    }

    fn forget(&self, peer: NodeId, id: u64) {
        let mut pending = self.pending();
        if let Some(calls) = pending.get_mut(&peer) {
            calls.remove(&id);
            if calls.is_empty() {
                pending.remove(&peer);
            }
        }
    }
}

/// A registered call; dropping it removes the call from the table if it is still there.
pub(crate) struct PendingCall<'a> {
    calls: &'a Calls,
    pub(crate) peer: NodeId,
    pub(crate) id: u64,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        self.calls.forget(self.peer, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_by_peer_and_id_only() {
        let calls = Calls::new(8);
        let (call, mut receiver) = calls.register(NodeId(2)).expect("register");
        assert!(
            !calls.finish(NodeId(3), call.id, Ok(vec![1])),
            "another peer"
        );
        assert!(
            !calls.finish(NodeId(2), call.id + 1, Ok(vec![1])),
            "another id"
        );
        assert!(receiver.try_recv().is_err());
        assert!(calls.finish(NodeId(2), call.id, Ok(vec![9])));
        assert_eq!(receiver.try_recv().expect("answered"), Ok(vec![9]));
        assert!(!calls.finish(NodeId(2), call.id, Ok(vec![9])), "only once");
    }

    #[test]
    fn pending_calls_are_bounded_per_peer_and_freed_by_their_guard() {
        let calls = Calls::new(2);
        let first = calls.register(NodeId(2)).expect("first");
        let _second = calls.register(NodeId(2)).expect("second");
        assert_eq!(
            calls.register(NodeId(2)).err(),
            Some(CallError::QueueFull(NodeId(2)))
        );
        assert!(
            calls.register(NodeId(3)).is_ok(),
            "other peers have their own bound"
        );
        drop(first);
        assert!(
            calls.register(NodeId(2)).is_ok(),
            "a dropped call frees its slot"
        );
    }

    #[test]
    fn disconnect_fails_only_that_peers_calls() {
        let calls = Calls::new(8);
        let (_a, mut to_2) = calls.register(NodeId(2)).expect("register");
        let (_b, mut to_3) = calls.register(NodeId(3)).expect("register");
        calls.disconnect(NodeId(2));
        assert_eq!(
            to_2.try_recv().expect("failed"),
            Err(CallError::Disconnected(NodeId(2)))
        );
        assert!(to_3.try_recv().is_err(), "still pending");
        calls.disconnect_all();
        assert_eq!(
            to_3.try_recv().expect("failed"),
            Err(CallError::Disconnected(NodeId(3)))
        );
    }
}
