//! The bounds and timings of the peer links, as configured. Imports nothing of the transport.

/// Bounds and timings of the peer links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Largest frame body accepted or sent; a larger inbound frame closes its connection.
    pub frame_bytes_max: u32,
    /// Messages, requests and responses waiting per peer; `send` drops (and counts) messages
    /// beyond it, `call` fails with `QueueFull`, `respond` drops and counts.
    pub queue_messages_max: usize,
    /// Bytes of request and response bodies waiting per peer (at least `frame_bytes_max`);
    /// beyond it as for `queue_messages_max`.
    pub queue_bytes_max: usize,
    /// Messages coalesced into one frame at most.
    pub batch_messages_max: usize,
    /// First delay before re-dialling a peer; doubles per failure up to `backoff_ms_max`.
    pub backoff_ms_min: u64,
    pub backoff_ms_max: u64,
    /// Deadline for TCP connect plus TLS handshake, each way.
    pub handshake_timeout_ms: u64,
    /// Deadline for the first bytes (the TLS hello) of an inbound connection, counted from its
    /// accept; a connection that sends nothing is closed after it. At most
    /// `handshake_timeout_ms`, which still bounds the whole inbound handshake.
    pub hello_timeout_ms: u64,
    /// Inbound handshakes in progress at once; further connections are closed unanswered.
    pub handshakes_max: usize,
    /// Inbound handshakes in progress at once from one source address (an IPv6 /64); further
    /// connections from it are closed unanswered.
    pub handshakes_per_source_max: usize,
    /// Inbound handshakes in progress at once from source addresses that are no peer's
    /// address, together; the other `handshakes_max - handshakes_unlisted_max` are kept for
    /// peers. At most `handshakes_max`.
    pub handshakes_unlisted_max: usize,
    /// Deadline for writing one batch to a peer; a peer that stops reading (stopped process,
    /// full TCP window) loses its connection after it, and the link dials again.
    pub write_timeout_ms: u64,
    /// Calls waiting for an answer per peer; `call` fails with `QueueFull` beyond it.
    pub calls_pending_max: usize,
    /// A link that wrote nothing for this long writes an empty frame, so its peer sees it live
    /// even when no Raft group between the two has anything to say.
    pub ping_interval_ms: u64,
    /// A connection on which nothing arrived for this long (not even a ping) is closed and the
    /// peer reported down (`PeerNetwork::link_downs`). Longer than `ping_interval_ms`.
    pub silence_timeout_ms: u64,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            frame_bytes_max: 16 * 1024 * 1024,
            queue_messages_max: 4096,
            queue_bytes_max: 64 * 1024 * 1024,
            batch_messages_max: 256,
            backoff_ms_min: 50,
            backoff_ms_max: 2000,
            handshake_timeout_ms: 5000,
            hello_timeout_ms: 2000,
            handshakes_max: 64,
            handshakes_per_source_max: 8,
            handshakes_unlisted_max: 32,
            write_timeout_ms: 5000,
            calls_pending_max: 4096,
            ping_interval_ms: 200,
            silence_timeout_ms: 1000,
        }
    }
}
