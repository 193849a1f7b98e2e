//! Hundreds of idle sockets against the HTTPS listener of a real broker process. The attacker
//! uses other loopback source addresses (127.0.0.2, 127.0.0.3, ...) than the client the test
//! checks (127.0.0.1), as a remote attacker would.
//!
//! The hello and handshake deadlines are long here, so admitted idle sockets keep their slots for
//! the whole test and only the caps decide: with the caps missing, the idle sockets would hold
//! every TLS handshake of the broker's one worker and `/healthz` would not answer in time.

mod common;
mod hostile_support;

use common::BrokerProcess;
use hostile_support::{closed_by_server, healthz_from, idle_sockets, loopback, refused};
use hostile_support::{connect_from, metrics_text, series};

/// Idle sockets opened from the attacking address: above the 256 TLS handshakes actix runs at
/// once per worker, and far above the per-source cap below.
const IDLE_SOCKETS: usize = 400;
const PER_SOURCE_MAX: usize = 50;

/// One worker (so 256 handshakes in all), a per-source cap of `PER_SOURCE_MAX`, and deadlines
/// longer than the test.
fn config(connections_max: usize, per_source_max: usize) -> String {
    format!(
        "workers = 1\nconnections_max = {connections_max}\n\
         connections_per_source_max = {per_source_max}\n\
         hello_timeout_ms = 120000\nhandshake_timeout_ms = 120000\n"
    )
}

fn target(broker: &BrokerProcess) -> std::net::SocketAddr {
    let address = broker.url.trim_start_matches("https://");
    address.parse().expect("broker address")
}

#[actix_rt::test]
async fn idle_sockets_from_one_source_are_capped_and_other_clients_are_served() {
    let broker = BrokerProcess::start_with(&[], &config(10_000, PER_SOURCE_MAX)).await;
    let (ca, url) = (broker.ca.clone(), broker.url.clone());
    // Positive control: the attacking address is served while it holds nothing.
    assert_eq!(healthz_from(&ca, loopback(2), &url).await, Ok(200));

    let mut idle = idle_sockets(loopback(2), target(&broker), IDLE_SOCKETS).await;
    // Another client is served at once, and so is a new connection from the attacker's address
    // refused: it is closed without the client sending anything.
    assert_eq!(
        healthz_from(&ca, loopback(1), &url).await,
        Ok(200),
        "/healthz from 127.0.0.1 while 127.0.0.2 holds {} idle sockets",
        idle.len()
    );
    let mut beyond = connect_from(loopback(2), target(&broker))
        .await
        .expect("the listener still completes connects");
    assert!(
        closed_by_server(&mut beyond).await,
        "a connection from 127.0.0.2 beyond its cap is closed"
    );

    assert_eq!(idle.len(), IDLE_SOCKETS, "every idle socket connected");
    let per_source = refused(&ca, &url, "http", "per_source").await;
    assert!(
        per_source > (IDLE_SOCKETS - PER_SOURCE_MAX) as u64,
        "the sockets beyond the cap and the extra one are counted: {per_source}"
    );
    let text = metrics_text(&ca, &url).await;
    let in_use = series(&text, "palisade_connection_slots", "listener=\"http\"");
    assert!(
        in_use >= PER_SOURCE_MAX as f64,
        "the admitted idle sockets hold their slots: {in_use}"
    );
    // Their slots come back when they close.
    idle.clear();
    common::cluster::wait_for("127.0.0.2 served again", 30, || async {
        (healthz_from(&ca, loopback(2), &url).await == Ok(200)).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn the_total_cap_closes_new_connections_until_one_ends() {
    const TOTAL: usize = 60;
    let broker = BrokerProcess::start_with(&[], &config(TOTAL, TOTAL / 2)).await;
    let (ca, url) = (broker.ca.clone(), broker.url.clone());
    assert_eq!(healthz_from(&ca, loopback(1), &url).await, Ok(200));

    // Two sources, each within its own cap, fill the listener.
    let from_2 = idle_sockets(loopback(2), target(&broker), TOTAL / 2).await;
    let mut from_3 = idle_sockets(loopback(3), target(&broker), TOTAL / 2).await;
    assert_eq!(from_2.len() + from_3.len(), TOTAL);
    let mut another = connect_from(loopback(4), target(&broker))
        .await
        .expect("the listener still completes connects");
    assert!(
        closed_by_server(&mut another).await,
        "a connection from a third source is closed while the listener is full"
    );

    // One source lets go: everyone is served again, and the refusal was counted as `total`.
    from_3.clear();
    common::cluster::wait_for("127.0.0.1 served again", 30, || async {
        (healthz_from(&ca, loopback(1), &url).await == Ok(200)).then_some(())
    })
    .await;
    assert!(refused(&ca, &url, "http", "total").await >= 1);
    assert_eq!(refused(&ca, &url, "http", "per_source").await, 0);
    drop(from_2);
}
