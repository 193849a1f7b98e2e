//! `PeerNetwork`: this broker's mutual-TLS links to every peer broker.
//!
//! Owns the listener and its handshake slots, the map of peer addresses, one link task per peer
//! and the counters. An inbound connection takes a handshake slot (`admission`: capped in
//! total, per source address, and for sources that are no peer's address) before anything is
//! read from it, or is closed at once; it must send its first bytes within `hello_timeout_ms`
//! and finish the handshake within `handshake_timeout_ms`.
//! Exactly one connection serves a broker pair: the broker with the lower id dials, the
//! higher one accepts, and both directions share that connection. Every connection is TLS 1.3
//! with certificates from the cluster CA on both ends; the peer's broker id is read from its
//! certificate (never from the wire) and checked on both ends. There is no plaintext path.
//! Calls (`call`, `respond`) ride the same links; their bodies are opaque here. Every method
//! may be called from any thread or runtime: tasks are spawned on the runtime that started
//! the network, and shared state sits behind std locks and tokio channels.
//! It must not interpret Raft messages: it routes by `Message::to` and checks senders only.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::address::PeerAddress;
use crate::admission::{AdmissionMetrics, Listener, Listing, Slot, SlotLimits, Slots};
use crate::raft::{Message, NodeId};
use crate::transport::batch::{Hold, Outbound, Refused};
use crate::transport::frame::{self, Envelope};
use crate::transport::limits::PeerLimits;
use crate::transport::link::{self, LinkHandle};
use crate::transport::rpc::{CallError, Calls, PeerRequest};
use crate::transport::shared::Shared;
use crate::transport::stats::{bump, Counters, PeerStats};
use crate::transport::tls::{self, peer_broker_id, TlsError};

/// Pause after a failed `accept` (for example too many open files) before accepting again.
const ACCEPT_RETRY_MS: u64 = 100;

/// What a `PeerNetwork` needs to start.
#[derive(Clone, Debug)]
pub struct PeerNetworkConfig {
    /// This broker's id; must equal the broker id in `cert`.
    pub broker: NodeId,
    /// The cluster CA every peer certificate must chain to.
    pub ca_cert: PathBuf,
    /// This broker's certificate chain and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    pub limits: PeerLimits,
    /// Where refused inbound connections and handshakes in progress are counted.
    pub metrics: AdmissionMetrics,
}

/// Failures while starting the peer network.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("peer TLS configuration: {0}")]
    Tls(#[from] TlsError),
    #[error("certificate {path} names broker {found:?}, but this broker is {expected}")]
    OwnIdentity {
        path: PathBuf,
        expected: u64,
        found: Option<u64>,
    },
}

/// One link per peer; empty for good once `stopped` is set (checked under the lock).
#[derive(Default)]
struct Links {
    links: Mutex<HashMap<NodeId, LinkHandle>>,
    stopped: AtomicBool,
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, HashMap<NodeId, LinkHandle>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// This broker's end of the peer links. Dropping it stops every task it started.
///
/// `Send + Sync`: share it as `Arc<PeerNetwork>` and call any method from any thread.
pub struct PeerNetwork {
    shared: Arc<Shared>,
    links: Arc<Links>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl PeerNetwork {
    /// Starts accepting on `listener` and links to every peer in `peers` (this broker's own
    /// id is ignored there). Messages from peers go to `inbound`, requests from peers to
    /// `requests`; a full sink slows the peer's connection down rather than dropping. Must be
    /// called inside a tokio runtime, which then runs all of the network's tasks.
    pub fn start(
        config: PeerNetworkConfig,
        listener: TcpListener,
        peers: HashMap<NodeId, PeerAddress>,
        inbound: mpsc::Sender<Message>,
        requests: mpsc::Sender<PeerRequest>,
    ) -> Result<PeerNetwork, TransportError> {
        let own_chain = tls::load_certs(&config.cert)?;
        let found = own_chain
            .first()
            .and_then(crate::transport::certs::broker_id_of);
        if found != Some(config.broker.0) {
            return Err(TransportError::OwnIdentity {
                path: config.cert.clone(),
                expected: config.broker.0,
                found,
            });
        }
        let identity = Some((config.cert.as_path(), config.key.as_path()));
        let client = tls::client_config(&config.ca_cert, identity)?;
        let server = tls::server_config(&config.cert, &config.key, Some(&config.ca_cert))?;
        let slots = Slots::new(
            Listener::Peer,
            handshake_slot_limits(&config.limits),
            config.metrics.clone(),
        );
        let shared = Arc::new(Shared {
            broker: config.broker,
            calls: Calls::new(config.limits.calls_pending_max),
            limits: config.limits,
            connector: TlsConnector::from(Arc::new(client)),
            inbound,
            requests,
            counters: Counters::default(),
            runtime: Handle::current(),
            peers: RwLock::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            connected: Mutex::new(std::collections::HashSet::new()),
            heard: Mutex::new(HashMap::new()),
            downs: tokio::sync::watch::Sender::new(HashMap::new()),
        });
        let links = Arc::new(Links::default());
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let task = tokio::spawn(accept_loop(
            shared.clone(),
            links.clone(),
            listener,
            acceptor,
            slots,
        ));
        let network = PeerNetwork {
            shared,
            links,
            acceptor: Mutex::new(Some(task)),
        };
        network.set_peers(peers);
        Ok(network)
    }

    /// Replaces the peer map. New peers get a link, removed peers lose theirs (queued
    /// messages are dropped, pending calls fail with `Disconnected`); a changed address is
    /// used from the next dial on (a DNS name is resolved again at every dial).
    pub fn set_peers(&self, mut peers: HashMap<NodeId, PeerAddress>) {
        peers.remove(&self.shared.broker);
        let mut links = self.links.lock();
        if self.links.stopped.load(Ordering::Relaxed) {
            return;
        }
        let removed: Vec<NodeId> = (links.keys())
            .filter(|peer| !peers.contains_key(peer))
            .copied()
            .collect();
        for peer in removed {
            links.remove(&peer);
            link::mark_down(&self.shared, peer);
            self.shared.calls.disconnect(peer);
        }
        for peer in peers.keys() {
            if !links.contains_key(peer) {
                links.insert(*peer, link::spawn(self.shared.clone(), *peer));
            }
        }
        *self
            .shared
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner) = peers;
    }

    /// Queues each message for the broker named by its `to`, without waiting. Messages to an
    /// unknown broker or to a peer whose queue is full are dropped and counted.
    pub fn send(&self, messages: impl IntoIterator<Item = Message>) {
        let links = self.links.lock();
        for message in messages {
            match links.get(&message.to) {
                Some(link) => link.enqueue(message, &self.shared.counters),
                None => bump(&self.shared.counters.dropped_unknown_peer),
            }
        }
    }

    /// Sends `body` to `peer` and waits for its answer, at most `timeout`.
    ///
    /// Fails at once with `UnknownPeer`, `QueueFull` (too many calls pending to `peer`, or
    /// its queue full) or `TooLarge` (the body cannot fit in a frame); with `Disconnected` as
    /// soon as the connection carrying it is lost or the peer is removed; with `Timeout` at
    /// the deadline. After `Timeout` or `Disconnected` the peer may still have executed it.
    pub async fn call(
        &self,
        peer: NodeId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let bytes_max = self.shared.limits.frame_bytes_max;
        if !frame::envelope_fits(body.len(), bytes_max) {
            return Err(CallError::TooLarge {
                peer,
                bytes: body.len() as u64,
                bytes_max,
            });
        }
        let (pending, answer) = self.shared.calls.register(peer)?;
        let request = Outbound::Request(Envelope {
            id: pending.id,
            body,
        });
        let queued = match self.links.lock().get(&peer) {
            Some(link) => link.try_enqueue(request),
            None => return Err(CallError::UnknownPeer(peer)),
        };
        match queued {
            Ok(()) => {}
            Err(Refused::Full) => return Err(CallError::QueueFull(peer)),
            Err(Refused::Stopped) => return Err(CallError::Disconnected(peer)),
        }
        let outcome = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            // The table was dropped with the network.
            Ok(Err(_)) => Err(CallError::Disconnected(peer)),
            Err(_) => Err(CallError::Timeout(peer)),
        };
        match &outcome {
            Err(CallError::Timeout(_)) => bump(&self.shared.counters.calls_timed_out),
            Err(CallError::Disconnected(_)) => bump(&self.shared.counters.calls_disconnected),
            _ => {}
        }
        outcome
    }

    /// Answers request `id` of `to` (dropped and counted if the link is gone).
    pub fn respond(&self, to: NodeId, id: u64, body: Vec<u8>) {
        self.respond_holding(to, id, body, None);
    }

    /// `respond`, keeping `hold` alive until the answer is written to the connection (or
    /// dropped): a responder's memory reservation then covers the answer while it is queued.
    pub fn respond_holding(&self, to: NodeId, id: u64, body: Vec<u8>, hold: Option<Hold>) {
        let counters = &self.shared.counters;
        if !frame::envelope_fits(body.len(), self.shared.limits.frame_bytes_max) {
            return bump(&counters.responses_dropped);
        }
        let response = Outbound::Response(Envelope { id, body }, hold);
        let queued = match self.links.lock().get(&to) {
            Some(link) => link.try_enqueue(response).is_ok(),
            None => false,
        };
        if !queued {
            bump(&counters.responses_dropped);
        }
    }

    /// Whether a connection to `peer` is up right now. A caller that must not wait for a peer
    /// that is down (to try another broker) checks this before `call`.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.shared
            .connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&peer)
    }

    /// How long ago anything (a ping included) arrived from `peer`; `None` if nothing ever did.
    pub fn silence(&self, peer: NodeId) -> Option<Duration> {
        let heard = self
            .shared
            .heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        heard.get(&peer).map(std::time::Instant::elapsed)
    }

    /// How many times each peer's connection went down (closed, failed, silent for
    /// `silence_timeout_ms`, or the peer removed). A count changes only after `is_connected`
    /// says false for that peer, so a reader that sees no change yet finds the link down there.
    pub fn link_downs(&self) -> tokio::sync::watch::Receiver<HashMap<NodeId, u64>> {
        self.shared.downs.subscribe()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> PeerStats {
        self.shared.counters.snapshot()
    }

    /// This broker's id.
    pub fn broker(&self) -> NodeId {
        self.shared.broker
    }

    /// Stops every task and waits until the listener and all connections are closed.
    /// What is already queued on a connected link (answers to forwarded requests among it) is
    /// written first, for at most `write_timeout_ms`; then the connection closes with a TLS
    /// close_notify. A link that is not connected stops at once. Pending calls fail with
    /// `Disconnected`.
    pub async fn shutdown(&self) {
        let links: Vec<JoinHandle<()>> = {
            let mut links = self.links.lock();
            self.links.stopped.store(true, Ordering::Relaxed);
            // Dropping a handle closes its queue: a connected link writes what is left and
            // ends; any other is stopped here.
            links
                .drain()
                .map(|(peer, link)| {
                    let task = link.into_task();
                    if !self.is_connected(peer) {
                        task.abort();
                    }
                    task
                })
                .collect()
        };
        let acceptor = self.take_acceptor();
        if let Some(acceptor) = &acceptor {
            acceptor.abort();
        }
        let flush = Duration::from_millis(self.shared.limits.write_timeout_ms);
        let deadline = tokio::time::Instant::now() + flush;
        for mut task in links.into_iter().chain(acceptor) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                // A cancelled task reports `JoinError::Cancelled`, the expected outcome.
                let _ = task.await;
            }
        }
        self.shared.calls.disconnect_all();
    }

    fn take_acceptor(&self) -> Option<JoinHandle<()>> {
        let mut acceptor = self.acceptor.lock().unwrap_or_else(PoisonError::into_inner);
        acceptor.take()
    }
}

impl Drop for PeerNetwork {
    fn drop(&mut self) {
        // Link tasks hold `Shared`; emptying the map aborts them and breaks that cycle.
        self.links.lock().clear();
        if let Some(task) = self.take_acceptor() {
            task.abort();
        }
        self.shared.calls.disconnect_all();
    }
}

/// The handshake caps of the peer listener.
fn handshake_slot_limits(limits: &PeerLimits) -> SlotLimits {
    SlotLimits {
        total_max: limits.handshakes_max,
        per_source_max: limits.handshakes_per_source_max,
        unlisted_max: limits.handshakes_unlisted_max,
    }
}

/// Accepts peer connections. Each takes a handshake slot before anything is read from it, or is
/// closed at once: a source without a slot costs one accept and one close.
async fn accept_loop(
    shared: Arc<Shared>,
    links: Arc<Links>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    slots: Slots,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, source)) => {
                    let listing = if shared.is_peer_address(source.ip()) {
                        Listing::Listed
                    } else {
                        Listing::Unlisted
                    };
                    match slots.try_take(source.ip(), listing) {
                        Ok(slot) => {
                            let admit = admit(shared.clone(), links.clone(), acceptor.clone(), tcp, slot);
                            handshakes.spawn(admit);
                        }
                        Err(refusal) => {
                            tracing::debug!(%source, reason = refusal.label(), "peer connection refused");
                            bump(&shared.counters.handshakes_refused);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "peer listener accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
        }
    }
}

/// Completes the handshake of one inbound connection, holding `slot` until it is done, and
/// hands the connection to its peer's link.
async fn admit(
    shared: Arc<Shared>,
    links: Arc<Links>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    slot: Slot,
) {
    let counters = &shared.counters;
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "peer socket option");
    }
    let limits = &shared.limits;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(limits.handshake_timeout_ms);
    let hello = Duration::from_millis(limits.hello_timeout_ms);
    let mut first = [0u8; 1];
    match tokio::time::timeout(hello, tcp.peek(&mut first)).await {
        Ok(Ok(read)) if read > 0 => {}
        Ok(_) => return bump(&counters.handshakes_failed),
        Err(_) => {
            slot.count_hello_timeout();
            // Given back before the socket closes, so its source may connect again at once.
            drop(slot);
            return bump(&counters.handshakes_timed_out);
        }
    }
    let stream = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, "inbound peer handshake failed");
            return bump(&counters.handshakes_failed);
        }
        Err(_) => return bump(&counters.handshakes_timed_out),
    };
    drop(slot);
    let peer = peer_broker_id(stream.get_ref().1).map(NodeId);
    // Only a lower id dials us; a higher one would open a second connection for the pair.
    let streams = match peer {
        Some(peer) if peer < shared.broker => links.lock().get(&peer).map(LinkHandle::streams),
        _ => None,
    };
    let Some(streams) = streams else {
        tracing::debug!(?peer, "inbound peer refused");
        return bump(&counters.peers_refused);
    };
    if streams
        .send(tokio_rustls::TlsStream::Server(stream))
        .await
        .is_err()
    {
        bump(&counters.peers_refused);
    }
}
