//! Shared set-up for the peer transport tests: certificates in a tempdir, networks on
//! 127.0.0.1:0, raw TLS clients, and waiting on conditions with a deadline.
#![allow(dead_code)]
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade::address::PeerAddress;
use palisade::raft::{GroupId, Message, MessageBody, NodeId, Term};
use palisade::transport::certs::{self, CertPaths};
use palisade::transport::frame::{self, Frame};
use palisade::transport::tls;
use palisade::transport::{PeerLimits, PeerNetwork, PeerNetworkConfig, PeerRequest, PeerStats};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Upper bound for any awaited condition; a hang fails the test instead of blocking it.
pub const DEADLINE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
pub const INBOUND_MAX: usize = 1024;
pub const REQUESTS_MAX: usize = 1024;

pub fn cluster(broker_ids: &[u64]) -> (tempfile::TempDir, CertPaths) {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), broker_ids).expect("certs");
    (dir, paths)
}

pub fn limits() -> PeerLimits {
    PeerLimits {
        backoff_ms_min: 20,
        backoff_ms_max: 200,
        frame_bytes_max: 64 * 1024,
        ..PeerLimits::default()
    }
}

pub struct Node {
    /// Shared the way brokers hold it, so responder tasks can answer through it.
    pub network: Arc<PeerNetwork>,
    pub inbound: mpsc::Receiver<Message>,
    pub requests: mpsc::Receiver<PeerRequest>,
    pub address: SocketAddr,
}

pub async fn bind_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Binds `address` again, retrying until the previous owner's socket is gone.
pub async fn rebind(address: SocketAddr) -> TcpListener {
    wait_for("the port to be free again", || async {
        TcpListener::bind(address).await.ok()
    })
    .await
}

pub fn start(
    paths: &CertPaths,
    broker: u64,
    listener: TcpListener,
    peers: &HashMap<NodeId, SocketAddr>,
) -> Node {
    start_with_limits(paths, broker, listener, peers, limits())
}

pub fn start_with_limits(
    paths: &CertPaths,
    broker: u64,
    listener: TcpListener,
    peers: &HashMap<NodeId, SocketAddr>,
    limits: PeerLimits,
) -> Node {
    let peers = peers
        .iter()
        .map(|(id, address)| (*id, PeerAddress::from(*address)))
        .collect();
    start_named(paths, broker, listener, &peers, limits)
}

/// Like `start_with_limits`, with peers listed by `host:port` (DNS names allowed).
pub fn start_named(
    paths: &CertPaths,
    broker: u64,
    listener: TcpListener,
    peers: &HashMap<NodeId, PeerAddress>,
    limits: PeerLimits,
) -> Node {
    let own = &paths.broker(broker).expect("broker certificates").peer;
    let config = PeerNetworkConfig {
        broker: NodeId(broker),
        ca_cert: paths.peer_ca.cert.clone(),
        cert: own.cert.clone(),
        key: own.key.clone(),
        limits,
        metrics: Default::default(),
    };
    let address = listener.local_addr().expect("address");
    let (sender, inbound) = mpsc::channel(INBOUND_MAX);
    let (request_sender, requests) = mpsc::channel(REQUESTS_MAX);
    let network =
        PeerNetwork::start(config, listener, peers.clone(), sender, request_sender).expect("start");
    Node {
        network: Arc::new(network),
        inbound,
        requests,
        address,
    }
}

pub fn message(from: u64, to: u64, sequence: u64) -> Message {
    Message {
        group: GroupId(sequence % 5),
        from: NodeId(from),
        to: NodeId(to),
        term: Term(sequence),
        body: MessageBody::Heartbeat {
            commit: palisade::raft::LogIndex(sequence),
        },
    }
}

/// The next inbound message, or a test failure at the deadline.
pub async fn receive(inbound: &mut mpsc::Receiver<Message>) -> Message {
    tokio::time::timeout(DEADLINE, inbound.recv())
        .await
        .expect("a message before the deadline")
        .expect("inbound channel open")
}

/// Polls `probe` until it yields a value; fails the test at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the network's counters satisfy `check`, and returns them.
pub async fn wait_for_stats(
    network: &PeerNetwork,
    what: &str,
    check: impl Fn(&PeerStats) -> bool,
) -> PeerStats {
    wait_for(what, || {
        let stats = network.stats();
        let satisfied = check(&stats);
        async move { satisfied.then_some(stats) }
    })
    .await
}

/// A client configuration presenting broker `id`'s peer certificate from `paths`.
pub fn broker_client(paths: &CertPaths, id: u64) -> ClientConfig {
    let own = &paths.broker(id).expect("broker certificates").peer;
    tls::client_config(&paths.peer_ca.cert, Some((&own.cert, &own.key))).expect("client config")
}

/// A TLS connection to `address` made by hand, outside any `PeerNetwork`.
pub async fn raw_connect(
    address: SocketAddr,
    config: ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::IpAddress(address.ip().into());
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

pub async fn write_frame(stream: &mut TlsStream<TcpStream>, frame: &Frame) {
    let bytes = frame::encode(frame, u32::MAX).expect("encode");
    stream.write_all(&bytes).await.expect("write frame");
    stream.flush().await.expect("flush");
}

/// What the server did with a connection after the client wrote to it: `Ok(None)` means it
/// closed the connection, `Err` a TLS or I/O failure (how TLS 1.3 shows a refused client
/// certificate), `Ok(Some(frame))` a frame it sent.
pub async fn read_reply(stream: &mut TlsStream<TcpStream>) -> std::io::Result<Option<Frame>> {
    let outcome = tokio::time::timeout(DEADLINE, async {
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(error),
        }
        let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
        stream.read_exact(&mut body).await?;
        let frame = postcard::from_bytes(&body).map_err(std::io::Error::other)?;
        Ok(Some(frame))
    })
    .await;
    outcome.expect("the server answered or closed before the deadline")
}

/// A certificate signed by the cluster's peer CA with the given extended key usages and broker
/// id URI SAN, written beside the others; for the refusals a real `certs init` never produces.
pub fn peer_ca_leaf(
    paths: &CertPaths,
    stem: &str,
    usages: Vec<rcgen::ExtendedKeyUsagePurpose>,
    broker: u64,
) -> (std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        SanType,
    };
    let ca_key = std::fs::read_to_string(&paths.peer_ca.key).expect("peer CA key");
    let ca_key = KeyPair::from_pem(&ca_key).expect("peer CA key pair");
    // The issuer name `certs::init` gives the peer CA.
    let mut ca_params = CertificateParams::default();
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::OrganizationName, "Palisade");
    ca_name.push(DnType::CommonName, "Palisade peer CA");
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.subject_alt_names.push(SanType::URI(
        format!("palisade://broker/{broker}")
            .try_into()
            .expect("uri"),
    ));
    params.extended_key_usages = usages;
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let cert_path = paths.dir.join(format!("{stem}.pem"));
    let key_path = paths.dir.join(format!("{stem}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}
