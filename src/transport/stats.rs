//! Counters of the peer network, and the snapshot `PeerNetwork::stats` returns.
//!
//! Owns the atomic counters every link and the acceptor increment. Counters only grow; a
//! reader compares snapshots. It must not decide anything from the counts.
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A point-in-time copy of the peer network's counters.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct PeerStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// The live counters, shared by all tasks of one network.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> PeerStats {
                PeerStats {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Mutually authenticated connections that became a peer's link (dialled or accepted).
    connections_established,
    /// Links that ended (peer closed, I/O or TLS error, invalid frame, or replaced).
    connections_closed,
    /// Dial attempts that failed before a link existed (connect, handshake, wrong identity).
    dials_failed,
    /// Inbound TLS handshakes that failed (no client certificate, unknown CA, closed early).
    handshakes_failed,
    /// Inbound connections that sent no hello within `hello_timeout_ms`, or did not finish the
    /// handshake within `handshake_timeout_ms`; each was closed.
    handshakes_timed_out,
    /// Inbound connections closed unanswered because a handshake cap was reached (in total,
    /// for their source, or for sources that are no peer's address).
    handshakes_refused,
    /// Authenticated peers refused: no broker id in the certificate, an id that is not a
    /// peer, an id that must be dialled by us instead, or a dialled peer answering with
    /// another broker id.
    peers_refused,
    /// Frames written to peers.
    frames_sent,
    /// Messages written to peers.
    messages_sent,
    /// Frames read from authenticated peers (before the sender checks).
    frames_received,
    /// Messages handed to the inbound sink.
    messages_received,
    /// Frames dropped because their `from` is not the authenticated peer's broker id.
    frames_forged_sender,
    /// Messages dropped because their `from` differs from their frame's sender.
    messages_forged_sender,
    /// Messages dropped because they are addressed to another broker than this one.
    messages_misaddressed,
    /// Inbound frames that were oversized or undecodable; each closed its connection.
    frames_invalid,
    /// Outbound messages dropped because the peer's queue was full.
    dropped_queue_full,
    /// Outbound messages dropped because their recipient is not a known peer.
    dropped_unknown_peer,
    /// Outbound items (messages, requests or responses) dropped because alone they exceed
    /// the frame bound. Requests normally fail with `TooLarge` before being queued.
    dropped_oversized,
    /// Connections dropped because a write did not finish within `write_timeout_ms`.
    writes_timed_out,
    /// Empty frames written to keep an idle link's liveness visible (`ping_interval_ms`).
    pings_sent,
    /// Connections closed because nothing arrived on them for `silence_timeout_ms`.
    links_silent,
    /// Requests written to peers.
    requests_sent,
    /// Queued requests not sent because their call had already ended (timeout, disconnect).
    requests_abandoned,
    /// Requests handed to the request sink.
    requests_received,
    /// Requests from peers dropped because the request sink is closed.
    requests_dropped,
    /// Responses written to peers.
    responses_sent,
    /// Responses that completed a pending call.
    responses_received,
    /// Responses matching no pending call of the connection's peer (late, after a timeout or
    /// disconnect, or forged); dropped.
    responses_unknown,
    /// Responses not sent: the requesting peer is gone, its queue is full, or the body alone
    /// exceeds the frame bound.
    responses_dropped,
    /// Calls that ended with `Timeout`.
    calls_timed_out,
    /// Calls that ended with `Disconnected` (connection lost, peer removed, network stopped).
    calls_disconnected,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

/// Adds `amount` to a counter.
pub(crate) fn add(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
}
