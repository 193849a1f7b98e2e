//! Shared pieces of the hostile-connection tests: idle TCP sockets from a chosen loopback source
//! address (so an attacker and the brokers differ by address, as they would across hosts), a
//! check that the server closed a socket, HTTPS requests from a chosen source, and reading one
//! series from `/metrics`.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Upper bound for one connect or one awaited close; a hang fails the test instead of blocking.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The loopback address `127.0.0.<last>`.
pub fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A TCP connection to `target` from `source` (any port), or `None` if it did not connect
/// within the deadline (a listener that stopped accepting and has a full backlog).
pub async fn connect_from(source: Ipv4Addr, target: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .expect("bind the source address");
    match tokio::time::timeout(DEADLINE, socket.connect(target)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => panic!("connect from {source} to {target}: {error}"),
        Err(_) => None,
    }
}

/// `count` connections from `source` that never send a byte. Stops early (and says so on
/// stderr) if a connect does not complete within the deadline.
pub async fn idle_sockets(source: Ipv4Addr, target: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        match connect_from(source, target).await {
            Some(stream) => sockets.push(stream),
            None => {
                eprintln!(
                    "{target} stopped completing connects after {} from {source}",
                    sockets.len()
                );
                break;
            }
        }
    }
    sockets
}

/// Whether the server closed `stream` (end of stream or reset) within the deadline, without
/// the client sending anything.
pub async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    matches!(
        tokio::time::timeout(DEADLINE, stream.read(&mut buffer)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// An HTTPS client trusting `ca` that connects from `source`, opens a fresh connection per
/// request (no idle pool holding slots) and gives up after the deadline.
pub fn https_from(ca: &Path, source: Ipv4Addr) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    let certificate = reqwest::Certificate::from_pem(&pem).expect("CA pem");
    reqwest::Client::builder()
        .tls_certs_only([certificate])
        .local_address(IpAddr::V4(source))
        .pool_max_idle_per_host(0)
        .timeout(DEADLINE)
        .build()
        .expect("reqwest client")
}

/// The status of `GET {url}/healthz` from `source`, or the error text.
pub async fn healthz_from(ca: &Path, source: Ipv4Addr, url: &str) -> Result<u16, String> {
    https_from(ca, source)
        .get(format!("{url}/healthz"))
        .send()
        .await
        .map(|response| response.status().as_u16())
        .map_err(|error| format!("{error:?}"))
}

/// The `/metrics` text of the broker at `url`, read from 127.0.0.1.
pub async fn metrics_text(ca: &Path, url: &str) -> String {
    let response = https_from(ca, loopback(1))
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.expect("metrics body")
}

/// The value of the series `name{labels}` (labels exactly as rendered, such as
/// `listener="http",reason="per_source"`), 0 when absent.
pub fn series(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

/// Refused connections of `listener` for `reason`, as rendered by the broker at `url`.
pub async fn refused(ca: &Path, url: &str, listener: &str, reason: &str) -> u64 {
    let text = metrics_text(ca, url).await;
    let labels = format!("listener=\"{listener}\",reason=\"{reason}\"");
    series(&text, "palisade_refused_connections_total", &labels) as u64
}
