//! A broker's HTTPS identity carries no cluster authority: its certificate is refused on the peer
//! port, and a broker refuses to start with an HTTPS identity that would carry any (the peer
//! key, or a certificate peers would accept), or with a peer certificate its peers would refuse.
//! Real broker processes, real TLS on 127.0.0.1, certificates from `certs::init`.

mod common;
mod transport_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use palisade::raft::NodeId;
use palisade::transport::certs::{self, CertPaths, KeyedCert};
use palisade::transport::tls;
use transport_support::{broker_client, raw_connect, read_reply};

/// How long a broker may take to bind its peer port, or to refuse to start.
const START_WAIT: Duration = Duration::from_secs(30);

/// One broker process; killed when dropped.
struct Broker {
    child: Child,
    log: PathBuf,
}

impl Broker {
    /// Starts broker `id` with the given `[http]` and `[peer]` files and founders list.
    fn spawn(
        dir: &Path,
        id: u64,
        https: &KeyedCert,
        peer_ca: &Path,
        peer: &KeyedCert,
        peer_port: u16,
        founders: &str,
    ) -> Broker {
        let config = dir.join(format!("broker-{id}.toml"));
        let text = format!(
            "[broker]\nid = {id}\ndata_dir = \"{data}\"\n\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\ncert = \"{https_cert}\"\nkey = \"{https_key}\"\n\n\
             [peer]\nlisten = \"127.0.0.1:{peer_port}\"\nca_cert = \"{ca}\"\ncert = \"{peer_cert}\"\nkey = \"{peer_key}\"\n\n\
             [cluster]\nbrokers = \"{founders}\"\n",
            data = dir.join(format!("data-{id}")).display(),
            http = common::free_port(),
            https_cert = https.cert.display(),
            https_key = https.key.display(),
            ca = peer_ca.display(),
            peer_cert = peer.cert.display(),
            peer_key = peer.key.display(),
        );
        std::fs::write(&config, text).expect("write config");
        let log = dir.join(format!("broker-{id}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("PALISADE_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn broker");
        Broker { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the process exits, failing the test at the deadline; returns its log.
    async fn refused_to_start(mut self) -> String {
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(!status.success(), "exited successfully: {}", self.log());
                return self.log();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still running: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until something accepts TCP connections on `address`.
    async fn wait_listening(&mut self, address: SocketAddr) {
        let deadline = tokio::time::Instant::now() + START_WAIT;
        while tokio::net::TcpStream::connect(address).await.is_err() {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("broker exited ({status}): {}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the peer port never opened: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn certificates(dir: &Path) -> CertPaths {
    tls::install_crypto_provider();
    certs::init(&dir.join("certs"), &[1, 2]).expect("certs")
}

/// A broker alone: `cluster.brokers` names only itself.
fn alone(dir: &Path, https: &KeyedCert, peer_ca: &Path, peer: &KeyedCert) -> Broker {
    let port = common::free_port();
    Broker::spawn(
        dir,
        1,
        https,
        peer_ca,
        peer,
        port,
        &format!("1@127.0.0.1:{port}"),
    )
}

#[tokio::test]
async fn the_https_certificate_is_refused_on_the_peer_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certificates(dir.path());
    // Broker 2 of a two-broker cluster; broker 1, which dials it, is played by this test.
    let peer_port = common::free_port();
    let founders = format!(
        "1@127.0.0.1:{},2@127.0.0.1:{peer_port}",
        common::free_port()
    );
    let own = paths.broker(2).expect("broker 2");
    let mut broker = Broker::spawn(
        dir.path(),
        2,
        &own.https,
        &paths.peer_ca.cert,
        &own.peer,
        peer_port,
        &founders,
    );
    let address: SocketAddr = format!("127.0.0.1:{peer_port}").parse().expect("address");
    broker.wait_listening(address).await;

    // Broker 1's HTTPS key and certificate, offered as a peer identity.
    let https = &paths.broker(1).expect("broker 1").https;
    let client = tls::client_config(&paths.peer_ca.cert, Some((&https.cert, &https.key)))
        .expect("client config");
    if let Ok(mut stream) = raw_connect(address, client).await {
        // TLS 1.3: the refusal of a client certificate shows on the first read.
        let reply = read_reply(&mut stream).await;
        assert!(
            matches!(reply, Ok(None) | Err(_)),
            "the HTTPS certificate opened a peer link: {reply:?}"
        );
    }

    // Positive control: broker 1's peer certificate gets the link, and broker 2, which needs
    // broker 1's vote for the controller, talks to it.
    let mut stream = raw_connect(address, broker_client(&paths, 1))
        .await
        .expect("handshake as broker 1");
    let frame = read_reply(&mut stream)
        .await
        .expect("the link stays open")
        .expect("a frame from broker 2");
    assert_eq!(frame.from, NodeId(2));
}

#[tokio::test]
async fn one_key_for_https_and_the_peer_link_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certificates(dir.path());
    let peer = &paths.broker(1).expect("broker 1").peer;
    // A configuration written for one shared certificate: the peer one serves HTTPS too.
    let log = alone(dir.path(), peer, &paths.peer_ca.cert, peer)
        .refused_to_start()
        .await;
    assert!(
        log.contains("http.key") && log.contains("peer.key") && log.contains("same key pair"),
        "{log}"
    );
    assert!(
        log.contains("palisade certs init"),
        "says how to fix it: {log}"
    );
}

#[tokio::test]
async fn an_https_certificate_peers_would_accept_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certificates(dir.path());
    // Its own key, but a peer certificate: from the peer CA, clientAuth, naming broker 2.
    let borrowed = &paths.broker(2).expect("broker 2").peer;
    let peer = &paths.broker(1).expect("broker 1").peer;
    let log = alone(dir.path(), borrowed, &paths.peer_ca.cert, peer)
        .refused_to_start()
        .await;
    assert!(
        log.contains("http.cert") && log.contains("accepted on the peer link as broker 2"),
        "{log}"
    );
}

#[tokio::test]
async fn a_peer_certificate_its_peers_would_refuse_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certificates(dir.path());
    let own = paths.broker(1).expect("broker 1");
    // peer.ca_cert still names the client CA (ca.pem), which signs no peer certificate.
    let log = alone(dir.path(), &own.https, &paths.https_ca.cert, &own.peer)
        .refused_to_start()
        .await;
    assert!(
        log.contains("peer.cert") && log.contains("would be refused by the other brokers"),
        "{log}"
    );
}

#[tokio::test]
async fn separate_identities_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certificates(dir.path());
    let own = paths.broker(1).expect("broker 1");
    // Positive control for the refusals above: the files `certs init` wrote, each in its place.
    let port = common::free_port();
    let mut broker = Broker::spawn(
        dir.path(),
        1,
        &own.https,
        &paths.peer_ca.cert,
        &own.peer,
        port,
        &format!("1@127.0.0.1:{port}"),
    );
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    broker.wait_listening(address).await;
}
