//! TLS configurations over real sockets on 127.0.0.1: plain server auth, mutual TLS with broker
//! identities, and each way a peer must be refused.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade::transport::certs::{self, CertPaths};
use palisade::transport::tls::{self, peer_broker_id, TlsError};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const PING: &[u8; 5] = b"hello";
/// Upper bound for one whole exchange; a hang fails the test instead of blocking it.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

type ServerOutcome = Result<Option<u64>, std::io::Error>;

/// Accepts one connection, echoes `PING`, and reports the peer's broker id.
async fn serve_once(config: ServerConfig) -> (SocketAddr, JoinHandle<ServerOutcome>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut stream = acceptor.accept(tcp).await?;
        let peer = peer_broker_id(stream.get_ref().1);
        let mut buffer = [0u8; PING.len()];
        stream.read_exact(&mut buffer).await?;
        stream.write_all(&buffer).await?;
        stream.shutdown().await?;
        Ok(peer)
    });
    (address, task)
}

/// Connects, sends `PING`, reads the echo, and reports the server's broker id. Reading is what
/// surfaces a TLS 1.3 refusal of our certificate.
async fn exchange(
    address: SocketAddr,
    config: ClientConfig,
) -> Result<Option<u64>, std::io::Error> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let server = peer_broker_id(stream.get_ref().1);
    stream.write_all(PING).await?;
    let mut buffer = [0u8; PING.len()];
    stream.read_exact(&mut buffer).await?;
    assert_eq!(&buffer, PING);
    Ok(server)
}

async fn run(server: ServerConfig, client: ClientConfig) -> (ServerOutcome, ServerOutcome) {
    let (address, task) = serve_once(server).await;
    tokio::time::timeout(EXCHANGE_TIMEOUT, async move {
        let client_outcome = exchange(address, client).await;
        let server_outcome = task.await.expect("server task");
        (server_outcome, client_outcome)
    })
    .await
    .expect("exchange finished before the deadline")
}

/// The rustls error behind a failed exchange; `None` if it succeeded or failed otherwise.
fn rustls_error(outcome: ServerOutcome) -> Option<rustls::Error> {
    let error = outcome.err()?;
    error.get_ref()?.downcast_ref::<rustls::Error>().cloned()
}

fn cluster(broker_ids: &[u64]) -> (tempfile::TempDir, CertPaths) {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), broker_ids).expect("certs");
    (dir, paths)
}

fn mtls_server(paths: &CertPaths, broker: u64) -> ServerConfig {
    let own = &paths.broker(broker).expect("broker certs").peer;
    tls::server_config(&own.cert, &own.key, Some(&paths.peer_ca.cert)).expect("server config")
}

fn broker_client(paths: &CertPaths, broker: u64) -> ClientConfig {
    let own = &paths.broker(broker).expect("broker certs").peer;
    tls::client_config(&paths.peer_ca.cert, Some((&own.cert, &own.key))).expect("client config")
}

/// The HTTPS server of broker `broker`, as `[http]` runs it (no client certificates).
fn https_server(paths: &CertPaths, broker: u64) -> ServerConfig {
    let own = &paths.broker(broker).expect("broker certs").https;
    tls::server_config(&own.cert, &own.key, None).expect("server config")
}

#[tokio::test]
async fn server_without_client_auth_serves_a_client_that_trusts_the_ca() {
    let (_dir, paths) = cluster(&[1]);
    let client = tls::client_config(&paths.https_ca.cert, None).expect("client config");
    let (server_outcome, client_outcome) = run(https_server(&paths, 1), client).await;
    assert_eq!(
        server_outcome.expect("server side"),
        None,
        "no client certificate"
    );
    assert_eq!(
        client_outcome.expect("client side"),
        None,
        "an HTTPS certificate names no broker"
    );
}

#[tokio::test]
async fn https_and_peer_identities_share_no_ca() {
    let (_dir, paths) = cluster(&[1]);
    // A client trusting only the peer CA does not accept the HTTPS server...
    let client = tls::client_config(&paths.peer_ca.cert, None).expect("client config");
    let (_, client_outcome) = run(https_server(&paths, 1), client).await;
    assert!(
        client_outcome.is_err(),
        "the peer CA signed an HTTPS certificate"
    );
    // ...and a peer listener does not accept the HTTPS certificate as a client.
    let https = &paths.broker(1).expect("broker 1").https;
    let client = tls::client_config(&paths.peer_ca.cert, Some((&https.cert, &https.key)))
        .expect("client config");
    let (server_outcome, _) = run(mtls_server(&paths, 1), client).await;
    assert!(matches!(
        rustls_error(server_outcome),
        Some(rustls::Error::InvalidCertificate(_))
    ));
}

#[tokio::test]
async fn mutual_tls_binds_both_broker_ids() {
    let (_dir, paths) = cluster(&[1, 2]);
    let (server_outcome, client_outcome) =
        run(mtls_server(&paths, 1), broker_client(&paths, 2)).await;
    assert_eq!(server_outcome.expect("server side"), Some(2));
    assert_eq!(client_outcome.expect("client side"), Some(1));
}

#[tokio::test]
async fn mutual_tls_refuses_the_client_certificate_of_the_client_ca() {
    let (_dir, paths) = cluster(&[1]);
    let client = tls::client_config(
        &paths.peer_ca.cert,
        Some((&paths.client.cert, &paths.client.key)),
    )
    .expect("client config");
    let (server_outcome, _) = run(mtls_server(&paths, 1), client).await;
    assert!(matches!(
        rustls_error(server_outcome),
        Some(rustls::Error::InvalidCertificate(_))
    ));
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_certificate() {
    let (_dir, paths) = cluster(&[1]);
    let client = tls::client_config(&paths.peer_ca.cert, None).expect("client config");
    let (server_outcome, client_outcome) = run(mtls_server(&paths, 1), client).await;
    assert!(matches!(
        rustls_error(server_outcome),
        Some(rustls::Error::NoCertificatesPresented)
    ));
    assert!(matches!(
        rustls_error(client_outcome),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
        ))
    ));
}

#[tokio::test]
async fn mutual_tls_refuses_a_certificate_from_another_ca() {
    let (_dir, paths) = cluster(&[1]);
    let (_other_dir, other) = cluster(&[2]);
    // Trusts the real cluster CA (so the server is fine) but presents a foreign broker cert.
    let foreign = &other.broker(2).expect("foreign broker").peer;
    let client = tls::client_config(&paths.peer_ca.cert, Some((&foreign.cert, &foreign.key)))
        .expect("client config");
    let (server_outcome, client_outcome) = run(mtls_server(&paths, 1), client).await;
    assert!(matches!(
        rustls_error(server_outcome),
        Some(rustls::Error::InvalidCertificate(_))
    ));
    assert!(matches!(
        rustls_error(client_outcome),
        Some(rustls::Error::AlertReceived(_))
    ));
}

#[tokio::test]
async fn mutual_tls_refuses_tls12() {
    let (_dir, paths) = cluster(&[1, 2]);
    let own = &paths.broker(2).expect("broker 2").peer;
    let mut roots = RootCertStore::empty();
    for cert in tls::load_certs(&paths.peer_ca.cert).expect("ca") {
        roots.add(cert).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2 supported by the provider")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            tls::load_certs(&own.cert).expect("cert"),
            tls::load_key(&own.key).expect("key"),
        )
        .expect("client config");
    let (server_outcome, client_outcome) = run(mtls_server(&paths, 1), client).await;
    assert!(
        server_outcome.is_err(),
        "server negotiated TLS 1.2 for a peer link"
    );
    assert!(client_outcome.is_err());
}

#[tokio::test]
async fn client_refuses_a_server_from_another_ca() {
    let (_dir, paths) = cluster(&[1]);
    let (_other_dir, other) = cluster(&[1]);
    let client = tls::client_config(&other.https_ca.cert, None).expect("client config");
    let (server_outcome, client_outcome) = run(https_server(&paths, 1), client).await;
    assert!(
        client_outcome.is_err(),
        "client trusted a server of another CA"
    );
    assert!(server_outcome.is_err());
}

#[test]
fn install_crypto_provider_is_idempotent() {
    tls::install_crypto_provider();
    tls::install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}

#[test]
fn unreadable_or_empty_pem_files_are_named_errors() {
    let (dir, paths) = cluster(&[1]);
    let missing = dir.path().join("missing.pem");
    let own = &paths.broker(1).expect("broker 1").peer;
    assert!(matches!(
        tls::server_config(&missing, &own.key, None),
        Err(TlsError::Pem { path, .. }) if path == missing
    ));
    // A key file holds no certificate.
    assert!(matches!(
        tls::client_config(&own.key, None),
        Err(TlsError::NoCertificates { path }) if path == own.key
    ));
}

#[tokio::test]
async fn a_broker_added_by_a_rerun_chains_to_the_kept_ca() {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    certs::init(dir.path(), &[1]).expect("first init");
    // The second run rebuilds both issuers from their keys; the certificates they sign must
    // verify like the first run's.
    let paths = certs::init(dir.path(), &[1, 2]).expect("second init");
    let client = tls::client_config(&paths.https_ca.cert, None).expect("client config");
    let (_, client_outcome) = run(https_server(&paths, 2), client).await;
    assert_eq!(client_outcome.expect("HTTPS of broker 2"), None);
    let (server_outcome, client_outcome) =
        run(mtls_server(&paths, 1), broker_client(&paths, 2)).await;
    assert_eq!(server_outcome.expect("server side"), Some(2));
    assert_eq!(client_outcome.expect("client side"), Some(1));
    let (server_outcome, client_outcome) =
        run(mtls_server(&paths, 2), broker_client(&paths, 1)).await;
    assert_eq!(server_outcome.expect("server side"), Some(1));
    assert_eq!(client_outcome.expect("client side"), Some(2));
}
