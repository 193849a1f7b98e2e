//! One peer's link: its outbound queue, its connection, and the task that keeps both going.
//!
//! Owns the bounded queue of messages, requests and responses for one peer, dialling with
//! capped exponential backoff (when this broker has the lower id) or waiting for the acceptor
//! to hand over a connection (when it has the higher id), batching queued items into frames
//! (`batch`), the write deadline, and checking the sender of every inbound frame and message
//! against the authenticated peer. When a connection ends, the calls pending to the peer fail.
//! It must not interpret Raft messages beyond their `from` and `to`, nor RPC bodies at all.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsStream;

use crate::address::PeerAddress;
use crate::raft::{Message, NodeId};
use crate::transport::batch::{self, Outbound, QueueReceiver, QueueSender, Refused};
use crate::transport::frame::{self, Envelope, Frame, FrameError};
use crate::transport::rpc::PeerRequest;
use crate::transport::shared::Shared;
use crate::transport::stats::{bump, Counters};
use crate::transport::tls::peer_broker_id;

/// An authenticated connection to a peer, from either end.
pub(crate) type PeerStream = TlsStream<TcpStream>;

/// Replacement connections waiting for a link; the acceptor waits when it is full.
const STREAMS_QUEUE_MAX: usize = 1;

/// The network's handle on one link. Dropping it stops the link and closes its connection.
pub(crate) struct LinkHandle {
    queue: QueueSender,
    streams: mpsc::Sender<PeerStream>,
    task: Option<JoinHandle<()>>,
}

impl LinkHandle {
    /// Queues `message` without waiting; a full queue drops it.
    pub(crate) fn enqueue(&self, message: Message, counters: &Counters) {
        match self.queue.try_send(Outbound::Message(message)) {
            Ok(()) => {}
            Err(Refused::Full) => bump(&counters.dropped_queue_full),
            Err(Refused::Stopped) => bump(&counters.dropped_unknown_peer),
        }
    }

    /// Queues a request or response without waiting; says why not (the item is dropped).
    pub(crate) fn try_enqueue(&self, item: Outbound) -> Result<(), Refused> {
        self.queue.try_send(item)
    }

    /// Where the acceptor hands over an authenticated inbound connection from this peer.
    pub(crate) fn streams(&self) -> mpsc::Sender<PeerStream> {
        self.streams.clone()
    }

    /// The link's task, for a caller that aborts and awaits it.
    pub(crate) fn into_task(mut self) -> JoinHandle<()> {
        self.task.take().expect("a link's task is taken only once")
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Aborts a spawned task when dropped, so a link's reader never outlives its link.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the link to `peer` on the network's runtime, whichever thread calls this.
pub(crate) fn spawn(shared: Arc<Shared>, peer: NodeId) -> LinkHandle {
    let (queue, queue_receiver) = batch::queue(&shared.limits);
    let (streams, streams_receiver) = mpsc::channel(STREAMS_QUEUE_MAX);
    let runtime = shared.runtime.clone();
    let task = runtime.spawn(run(shared, peer, queue_receiver, streams_receiver));
    LinkHandle {
        queue,
        streams,
        task: Some(task),
    }
}

/// Doubling delays between dials, from `backoff_ms_min` up to `backoff_ms_max`.
struct Backoff {
    next_ms: u64,
    min_ms: u64,
    max_ms: u64,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let delay = self.next_ms;
        self.next_ms = delay.saturating_mul(2).min(self.max_ms);
        Duration::from_millis(delay)
    }

    fn reset(&mut self) {
        self.next_ms = self.min_ms;
    }
}

async fn run(
    shared: Arc<Shared>,
    peer: NodeId,
    mut queue: QueueReceiver,
    mut streams: mpsc::Receiver<PeerStream>,
) {
    let dials = shared.broker < peer;
    let limits = &shared.limits;
    let mut backoff = Backoff {
        next_ms: limits.backoff_ms_min,
        min_ms: limits.backoff_ms_min,
        max_ms: limits.backoff_ms_max.max(limits.backoff_ms_min),
    };
    let mut delay: Option<Duration> = None;
    let mut replacement: Option<PeerStream> = None;
    loop {
        if queue.is_closed() {
            // The network stops and nothing is connected to flush into.
            return;
        }
        let stream = match (replacement.take(), dials) {
            (Some(stream), _) => stream,
            (None, true) => {
                if let Some(delay) = delay.take() {
                    tokio::time::sleep(delay).await;
                }
                match dial(&shared, peer).await {
                    Ok(stream) => stream,
                    Err(
                        error @ (DialError::Resolve { .. } | DialError::NoResolvedAddress { .. }),
                    ) => {
                        tracing::warn!(%error, peer = peer.0, "dial failed");
                        bump(&shared.counters.dials_failed);
                        delay = Some(backoff.next());
                        continue;
                    }
                    Err(error) => {
                        tracing::debug!(%error, peer = peer.0, "dial failed");
                        bump(&shared.counters.dials_failed);
                        delay = Some(backoff.next());
                        continue;
                    }
                }
            }
            (None, false) => match wait_for_stream(&shared, peer, &mut streams).await {
                Some(stream) => stream,
                None => return,
            },
        };
        set_connected(&shared, peer, true);
        let outcome = serve(&shared, peer, stream, &mut queue, &mut streams).await;
        mark_down(&shared, peer);
        bump(&shared.counters.connections_closed);
        // Requests written on the lost connection will not be answered on it; their callers
        // learn now instead of at their deadline.
        shared.calls.disconnect(peer);
        if outcome.stopped {
            return;
        }
        // A connection that carried a frame proves the pair works; one that died at once
        // (for example our certificate refused on the first read) counts as a failed dial.
        if outcome.received_any {
            backoff.reset();
        }
        delay = Some(backoff.next());
        replacement = outcome.replacement;
    }
}

/// Waits for the acceptor to hand over a connection from `peer` (which dials this broker).
/// A peer listed by DNS name is resolved meanwhile, every `backoff_ms_max`, so its connections
/// are recognised as a listed peer's by the handshake slots.
async fn wait_for_stream(
    shared: &Shared,
    peer: NodeId,
    streams: &mut mpsc::Receiver<PeerStream>,
) -> Option<PeerStream> {
    let refresh = Duration::from_millis(shared.limits.backoff_ms_max.max(100));
    let resolve_timeout = Duration::from_millis(shared.limits.handshake_timeout_ms);
    loop {
        if let Some(address) = shared.address_of(peer).filter(|a| a.ip().is_none()) {
            if let Ok(Ok(found)) = tokio::time::timeout(resolve_timeout, resolve(&address)).await {
                shared.set_resolved(peer, found.iter().map(SocketAddr::ip).collect());
            }
        }
        if let Ok(stream) = tokio::time::timeout(refresh, streams.recv()).await {
            return stream;
        }
    }
}

/// The connection to `peer` is gone: `connected` first, then the down count, in that order (see
/// `PeerNetwork::link_downs`).
pub(crate) fn mark_down(shared: &Shared, peer: NodeId) {
    set_connected(shared, peer, false);
    shared
        .downs
        .send_modify(|downs| *downs.entry(peer).or_default() += 1);
}

fn set_connected(shared: &Shared, peer: NodeId, up: bool) {
    let mut connected = shared
        .connected
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if up {
        connected.insert(peer);
    } else {
        connected.remove(&peer);
    }
}

/// Why a dial produced no link. Every one is retried by the link after its backoff.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("no address for the peer")]
    NoAddress,
    #[error("cannot resolve {address}: {source} (retrying)")]
    Resolve {
        address: PeerAddress,
        source: std::io::Error,
    },
    #[error("{address} resolved to no address (retrying)")]
    NoResolvedAddress { address: PeerAddress },
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("connect or handshake timed out")]
    Timeout,
    #[error("connect or handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("dialled broker {expected} but the certificate names {found:?}")]
    WrongPeer { expected: u64, found: Option<u64> },
}

/// Resolves `address` now (a DNS name at every dial, so a moved peer is found again).
async fn resolve(address: &PeerAddress) -> Result<Vec<SocketAddr>, DialError> {
    if let Some(ip) = address.ip() {
        return Ok(vec![SocketAddr::new(ip, address.port())]);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((address.host(), address.port()))
        .await
        .map_err(|source| DialError::Resolve {
            address: address.clone(),
            source,
        })?
        .take(RESOLVED_ADDRESSES_MAX)
        .collect();
    if found.is_empty() {
        return Err(DialError::NoResolvedAddress {
            address: address.clone(),
        });
    }
    Ok(found)
}

/// Most addresses of one resolved peer name tried in one dial.
const RESOLVED_ADDRESSES_MAX: usize = 8;

/// The TLS name the dialled peer's certificate must carry: its IP address (IP SAN) or its DNS
/// name (DNS SAN), exactly as listed for it.
fn server_name(address: &PeerAddress) -> Result<ServerName<'static>, DialError> {
    match address.ip() {
        Some(ip) => Ok(ServerName::IpAddress(ip.into())),
        None => {
            ServerName::try_from(address.host()).map_err(|_| DialError::ServerName(address.host()))
        }
    }
}

/// Connects to the first of `targets` that accepts a TCP connection.
async fn connect_any(targets: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for target in targets {
        match TcpStream::connect(target).await {
            Ok(tcp) => return Ok(tcp),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}

async fn dial(shared: &Shared, peer: NodeId) -> Result<PeerStream, DialError> {
    let address = shared.address_of(peer).ok_or(DialError::NoAddress)?;
    let timeout = Duration::from_millis(shared.limits.handshake_timeout_ms);
    let name = server_name(&address)?;
    let handshake = async {
        let targets = resolve(&address).await?;
        if address.ip().is_none() {
            shared.set_resolved(peer, targets.iter().map(SocketAddr::ip).collect());
        }
        let tcp = connect_any(&targets).await?;
        tcp.set_nodelay(true)?;
        // The chain is checked against the cluster CA and the dialled name must be in the
        // certificate; the broker id check below is what binds the connection to `peer`.
        Ok::<_, DialError>(shared.connector.connect(name, tcp).await?)
    };
    let stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| DialError::Timeout)??;
    let found = peer_broker_id(stream.get_ref().1);
    if found != Some(peer.0) {
        bump(&shared.counters.peers_refused);
        return Err(DialError::WrongPeer {
            expected: peer.0,
            found,
        });
    }
    Ok(TlsStream::Client(stream))
}

/// How a connection ended.
struct Outcome {
    /// Whether at least one frame arrived on it.
    received_any: bool,
    /// A newer connection from the same peer that replaces this one.
    replacement: Option<PeerStream>,
    /// The network is stopping: everything queued before was written and the connection
    /// closed with a TLS close_notify.
    stopped: bool,
}

/// Runs one connection until it fails or is replaced: queued items go out in batches,
/// inbound frames are checked and forwarded by a reader task. A batch not written within
/// `write_timeout_ms` (a stalled peer whose TCP window is full) ends the connection.
async fn serve(
    shared: &Arc<Shared>,
    peer: NodeId,
    stream: PeerStream,
    queue: &mut QueueReceiver,
    streams: &mut mpsc::Receiver<PeerStream>,
) -> Outcome {
    bump(&shared.counters.connections_established);
    let (reader, mut writer) = tokio::io::split(stream);
    let received_any = Arc::new(AtomicBool::new(false));
    let mut reader = AbortOnDrop(tokio::spawn(read_loop(
        shared.clone(),
        peer,
        reader,
        received_any.clone(),
    )));
    let write_timeout = Duration::from_millis(shared.limits.write_timeout_ms);
    let ping_interval = Duration::from_millis(shared.limits.ping_interval_ms.max(1));
    let mut pings =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wrote_since_ping = false;
    let mut stopped = false;
    let replacement = loop {
        tokio::select! {
            _ = &mut reader.0 => break None,
            // Closed only when the network stops; then the queue's end decides.
            Some(stream) = streams.recv() => break Some(stream),
            _ = pings.tick() => {
                if std::mem::take(&mut wrote_since_ping) {
                    continue;
                }
                let ping = frame::encode(&Frame::with_messages(shared.broker, Vec::new()), shared.limits.frame_bytes_max)
                    .expect("an empty frame fits any frame bound");
                match tokio::time::timeout(write_timeout, writer.write_all(&ping)).await {
                    Ok(Ok(())) => bump(&shared.counters.pings_sent),
                    Ok(Err(error)) => {
                        tracing::debug!(%error, peer = peer.0, "peer ping failed");
                        break None;
                    }
                    Err(_) => {
                        bump(&shared.counters.writes_timed_out);
                        break None;
                    }
                }
            }
            item = queue.recv() => {
                wrote_since_ping = true;
                let Some(first) = item else {
                    // Every sender is gone: the network stops. What was queued has been
                    // written (answers to forwarded requests among it); close cleanly.
                    let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
                    stopped = true;
                    break None;
                };
                let items = batch::drain(first, queue, &shared.limits);
                let write = batch::write(shared, peer, &mut writer, items);
                match tokio::time::timeout(write_timeout, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%error, peer = peer.0, "peer write failed");
                        break None;
                    }
                    Err(_) => {
                        tracing::warn!(peer = peer.0, "peer write timed out; reconnecting");
                        bump(&shared.counters.writes_timed_out);
                        break None;
                    }
                }
            }
        }
    };
    Outcome {
        received_any: received_any.load(Ordering::Relaxed),
        replacement,
        stopped,
    }
}

/// Reads frames until the connection ends, forwarding each message whose senders check out,
/// each request to the request sink and each response to its pending call.
async fn read_loop(
    shared: Arc<Shared>,
    peer: NodeId,
    reader: ReadHalf<PeerStream>,
    received_any: Arc<AtomicBool>,
) {
    let counters = &shared.counters;
    let silence_timeout = Duration::from_millis(shared.limits.silence_timeout_ms);
    let last_byte = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    let mut reader = Watched {
        inner: reader,
        last_byte: last_byte.clone(),
    };
    loop {
        let read = tokio::select! {
            read = frame::read_frame(&mut reader, shared.limits.frame_bytes_max) => read,
            () = silent_for(&last_byte, silence_timeout) => {
                tracing::warn!(peer = peer.0, "nothing from peer within silence_timeout_ms; closing");
                return bump(&counters.links_silent);
            }
        };
        let frame = match read {
            Ok(frame) => frame,
            Err(FrameError::Closed | FrameError::Io(_)) => return,
            Err(error) => {
                tracing::warn!(%error, peer = peer.0, "invalid frame from peer; closing");
                return bump(&counters.frames_invalid);
            }
        };
        received_any.store(true, Ordering::Relaxed);
        bump(&counters.frames_received);
        if frame.from != peer {
            bump(&counters.frames_forged_sender);
            continue;
        }
        shared.heard_from(peer);
        for message in frame.messages {
            if message.from != frame.from {
                bump(&counters.messages_forged_sender);
            } else if message.to != shared.broker {
                bump(&counters.messages_misaddressed);
            } else if shared.inbound.send(message).await.is_ok() {
                bump(&counters.messages_received);
            } else {
                return;
            }
        }
        deliver_requests(&shared, peer, frame.requests).await;
        for Envelope { id, body } in frame.responses {
            if shared.calls.finish(peer, id, Ok(body)) {
                bump(&counters.responses_received);
            } else {
                bump(&counters.responses_unknown);
            }
        }
    }
}

/// Resolves once nothing has been read for `timeout` (a frame in progress counts as activity:
/// a large frame on a slow link is not silence).
async fn silent_for(last_byte: &std::sync::Mutex<tokio::time::Instant>, timeout: Duration) {
    loop {
        let last = *last_byte
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deadline = last + timeout;
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// A reader that records when bytes last arrived.
struct Watched<R> {
    inner: R,
    last_byte: Arc<std::sync::Mutex<tokio::time::Instant>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            *self
                .last_byte
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
        }
        polled
    }
}

/// Hands requests to the request sink, waiting while it is full so a busy broker slows the
/// peer down. A closed sink (this broker serves no requests) drops them; their callers time
/// out, and Raft traffic on the same connection goes on.
async fn deliver_requests(shared: &Shared, peer: NodeId, requests: Vec<Envelope>) {
    let counters = &shared.counters;
    for Envelope { id, body } in requests {
        let request = PeerRequest {
            from: peer,
            id,
            body,
        };
        if shared.requests.send(request).await.is_ok() {
            bump(&counters.requests_received);
        } else {
            bump(&counters.requests_dropped);
        }
    }
}
