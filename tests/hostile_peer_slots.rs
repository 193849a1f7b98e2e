//! Idle sockets against the peer listener cannot keep brokers from linking up. The attacker uses
//! other loopback source addresses (127.0.0.2 and up) than the brokers (127.0.0.1), as it would
//! from another host: on one address, the per-source cap is what keeps a share for the others.
//!
//! In-process networks show each cap and the hello deadline; a 3-broker cluster of real processes
//! shows a restarted broker reconnecting, and a replicated produce succeeding, while hundreds of
//! idle sockets sit on the peer port. The deadlines are long in the cap tests, so admitted idle
//! sockets keep their slots for the whole test and only the caps decide.

mod common;
mod hostile_support;
mod transport_support;

use std::collections::HashMap;

use common::cluster::{wait_for, TestCluster};
use hostile_support::{closed_by_server, idle_sockets, loopback, refused};
use palisade::raft::NodeId;
use palisade::transport::PeerLimits;
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};
use transport_support::{
    bind_any, cluster, limits, message, receive, start_with_limits, wait_for_stats,
};

/// Handshake caps small enough to fill by hand, and deadlines longer than the test.
fn small_caps() -> PeerLimits {
    PeerLimits {
        handshakes_max: 8,
        handshakes_per_source_max: 2,
        handshakes_unlisted_max: 4,
        hello_timeout_ms: 120_000,
        handshake_timeout_ms: 120_000,
        ..limits()
    }
}

#[tokio::test]
async fn a_flooding_source_and_unlisted_sources_leave_the_reserved_slots_to_peers() {
    let (_dir, paths) = cluster(&[1, 2]);
    let (listener_1, listener_2) = (bind_any().await, bind_any().await);
    let address_1 = listener_1.local_addr().expect("address");
    let address_2 = listener_2.local_addr().expect("address");
    let peers = HashMap::from([(NodeId(1), address_1), (NodeId(2), address_2)]);
    let mut node_2 = start_with_limits(&paths, 2, listener_2, &peers, small_caps());

    // One source: two admitted, the third closed at once.
    let mut flood = idle_sockets(loopback(2), address_2, 3).await;
    assert!(
        closed_by_server(&mut flood[2]).await,
        "third from 127.0.0.2"
    );
    wait_for_stats(&node_2.network, "a per-source refusal", |stats| {
        stats.handshakes_refused == 1
    })
    .await;
    // Other unlisted sources fill the unlisted part (4); one more is closed at once.
    let _others = [
        idle_sockets(loopback(3), address_2, 1).await,
        idle_sockets(loopback(4), address_2, 1).await,
    ];
    let mut extra = idle_sockets(loopback(5), address_2, 1).await;
    assert!(
        closed_by_server(&mut extra[0]).await,
        "a fifth unlisted one"
    );
    wait_for_stats(
        &node_2.network,
        "a refusal for the reserved part",
        |stats| stats.handshakes_refused == 2,
    )
    .await;

    // Broker 1 dials from a peer's address and gets a reserved slot: its message arrives.
    let node_1 = start_with_limits(&paths, 1, listener_1, &peers, small_caps());
    node_1.network.send([message(1, 2, 7)]);
    assert_eq!(receive(&mut node_2.inbound).await, message(1, 2, 7));
    let stats = node_2.network.stats();
    assert_eq!(stats.connections_established, 1, "{stats:?}");
    assert_eq!(
        stats.handshakes_timed_out, 0,
        "no deadline decided: {stats:?}"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_hello_deadline_and_gives_its_slot_back() {
    let (_dir, paths) = cluster(&[2]);
    let listener = bind_any().await;
    let address = listener.local_addr().expect("address");
    let quick = PeerLimits {
        handshakes_per_source_max: 1,
        hello_timeout_ms: 200,
        ..limits()
    };
    let node = start_with_limits(&paths, 2, listener, &HashMap::new(), quick);
    for round in 1..=2 {
        let mut silent = idle_sockets(loopback(2), address, 1).await;
        assert!(closed_by_server(&mut silent[0]).await, "round {round}");
        wait_for_stats(&node.network, "a hello timeout", |stats| {
            stats.handshakes_timed_out == round
        })
        .await;
    }
    // The second round got the slot the first gave back.
    assert_eq!(node.network.stats().handshakes_refused, 0);
}

const TOPIC: &str = "replicated";
/// Idle sockets from 127.0.0.2, then from each of `SPREAD_SOURCES` further addresses.
const FLOOD_SOCKETS: usize = 200;
const SPREAD_SOURCES: u8 = 40;
const SOCKETS_PER_SPREAD_SOURCE: usize = 5;
/// Defaults of `peer.handshakes_per_source_max`, `peer.handshakes_unlisted_max`.
const PER_SOURCE_MAX: usize = 8;
const UNLISTED_MAX: usize = 32;

async fn produce_one(cluster: &TestCluster, broker: u64, value: &str) -> Result<(), String> {
    let client = cluster.admin(broker).await;
    let records = vec![ProduceRecord {
        value: Some(value.to_string()),
        partition: Some(0),
        ..ProduceRecord::default()
    }];
    client
        .produce(TOPIC, &ProduceRequest { records })
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

#[actix_rt::test]
async fn idle_sockets_on_the_peer_port_do_not_keep_a_restarted_broker_out() {
    // Default caps; hello and handshake deadlines far longer than the test.
    let peer_config = "hello_timeout_ms = 120000\nhandshake_timeout_ms = 120000\n";
    let mut cluster = TestCluster::start_configured(3, "", peer_config).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: TOPIC.into(),
            partitions: Some(1),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    // Positive control: a replicated produce before anything is broken.
    wait_for("a first produce", 60, || async {
        produce_one(&cluster, 1, "before").await.ok()
    })
    .await;

    // Broker 1 (lowest id: it dials) and broker 2 go down; broker 3 alone keeps its listener.
    cluster.kill(2);
    cluster.kill(1);
    let peer_3 = format!("127.0.0.1:{}", cluster.node(3).peer_port);
    let peer_3 = peer_3.parse().expect("peer address");
    let mut idle = idle_sockets(loopback(2), peer_3, FLOOD_SOCKETS).await;
    for last in 3..3 + SPREAD_SOURCES {
        idle.extend(idle_sockets(loopback(last), peer_3, SOCKETS_PER_SPREAD_SOURCE).await);
    }
    let sent = idle.len();
    assert_eq!(
        sent,
        FLOOD_SOCKETS + SPREAD_SOURCES as usize * SOCKETS_PER_SPREAD_SOURCE
    );

    // Broker 1 comes back. Being ready needs the controller, whose quorum is brokers 1 and 3, so
    // the 1 -> 3 link; the produce needs it again for the partition.
    cluster.spawn_again(1);
    cluster
        .wait_ready_within(1, std::time::Duration::from_secs(60))
        .await;
    wait_for("a replicated produce through broker 1", 60, || async {
        produce_one(&cluster, 1, "after").await.ok()
    })
    .await;

    // The caps did it: 127.0.0.2 got its share only, the others the unlisted part only.
    let url = cluster.node(3).url.clone();
    let per_source = refused(&cluster.ca, &url, "peer", "per_source").await;
    let reserved = refused(&cluster.ca, &url, "peer", "reserved").await;
    assert!(
        per_source >= (FLOOD_SOCKETS - PER_SOURCE_MAX) as u64,
        "per-source refusals: {per_source}"
    );
    let spread = SPREAD_SOURCES as usize * SOCKETS_PER_SPREAD_SOURCE;
    assert!(
        reserved >= (spread - UNLISTED_MAX) as u64,
        "refusals for the reserved part: {reserved}"
    );
    drop(idle);
}
