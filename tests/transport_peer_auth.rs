//! Who may use a peer link: each way a connection must be refused (no client certificate,
//! another CA, a valid certificate of the wrong broker, forged senders, bad frames), each
//! next to a positive control over the same network. Real TLS 1.3 on 127.0.0.1.
mod transport_support;

use std::collections::HashMap;
use std::net::SocketAddr;

use palisade::raft::NodeId;
use palisade::transport::certs::CertPaths;
use palisade::transport::frame::Frame;
use palisade::transport::tls;
use rustls::ClientConfig;
use tokio::io::AsyncWriteExt;
use transport_support::*;

/// An address where nothing listens, for peers that must never be reached in a test.
const NOWHERE: &str = "127.0.0.1:1";

/// Broker 2 with peers 1 (which dials 2, played by raw clients here) and 3 (unreachable).
async fn broker_2(paths: &CertPaths) -> Node {
    let nowhere: SocketAddr = NOWHERE.parse().expect("address");
    let peers = HashMap::from([(NodeId(1), nowhere), (NodeId(3), nowhere)]);
    start(paths, 2, bind_any().await, &peers)
}

/// Positive control: broker 1's certificate gets a link; a frame flows each way.
async fn assert_broker_1_is_served(node: &mut Node, paths: &CertPaths, sequence: u64) {
    node.network.send([message(2, 1, sequence)]);
    let mut stream = raw_connect(node.address, broker_client(paths, 1))
        .await
        .expect("handshake as broker 1");
    let frame = Frame::with_messages(NodeId(1), vec![message(1, 2, sequence)]);
    write_frame(&mut stream, &frame).await;
    assert_eq!(receive(&mut node.inbound).await, message(1, 2, sequence));
    let reply = read_reply(&mut stream)
        .await
        .expect("read from broker 2")
        .expect("a frame from broker 2");
    assert_eq!(reply.from, NodeId(2));
    // Bait queued for refused impostors (sequence 999) was kept for the real broker 1.
    let (last, bait) = reply.messages.split_last().expect("messages");
    assert_eq!(*last, message(2, 1, sequence));
    assert!(
        bait.iter().all(|queued| *queued == message(2, 1, 999)),
        "{bait:?}"
    );
}

/// Connects with `client`, offers a frame from broker 1 and asserts the connection ends
/// without an answer and nothing reaches broker 2's sink. A message for broker 1 is queued
/// first, so a connection accepted as broker 1 would receive it and fail the assertion.
async fn assert_refused(node: &mut Node, client: ClientConfig) {
    node.network.send([message(2, 1, 999)]);
    // A failed connect is a refusal too. With TLS 1.3 the client usually finishes its side
    // first, and the refusal shows on the first read.
    if let Ok(mut stream) = raw_connect(node.address, client).await {
        let frame = Frame::with_messages(NodeId(1), vec![message(1, 2, 999)]);
        let bytes = palisade::transport::frame::encode(&frame, u32::MAX).expect("encode");
        // The server may already have closed: a failed write is part of the refusal.
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
        let reply = read_reply(&mut stream).await;
        assert!(matches!(reply, Ok(None) | Err(_)), "not refused: {reply:?}");
    }
    assert!(node.inbound.try_recv().is_err(), "a refused peer was heard");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let mut node = broker_2(&paths).await;
    let anonymous = tls::client_config(&paths.peer_ca.cert, None).expect("client config");
    assert_refused(&mut node, anonymous).await;
    wait_for_stats(&node.network, "a failed handshake", |stats| {
        stats.handshakes_failed == 1
    })
    .await;
    assert_broker_1_is_served(&mut node, &paths, 1).await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let (_other_dir, other) = cluster(&[1]);
    let mut node = broker_2(&paths).await;
    // Trusts our CA (so the client accepts broker 2) but presents broker 1 of another CA.
    let impostor = &other.broker(1).expect("other broker 1").peer;
    let client = tls::client_config(&paths.peer_ca.cert, Some((&impostor.cert, &impostor.key)))
        .expect("client config");
    assert_refused(&mut node, client).await;
    wait_for_stats(&node.network, "a failed handshake", |stats| {
        stats.handshakes_failed == 1
    })
    .await;
    assert_broker_1_is_served(&mut node, &paths, 1).await;
}

#[tokio::test]
async fn the_https_certificate_of_a_broker_is_refused() {
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let mut node = broker_2(&paths).await;
    // Broker 1's HTTPS key and certificate: another CA, serverAuth only, no broker id.
    let https = &paths.broker(1).expect("broker 1").https;
    let client = tls::client_config(&paths.peer_ca.cert, Some((&https.cert, &https.key)))
        .expect("client config");
    assert_refused(&mut node, client).await;
    wait_for_stats(&node.network, "a failed handshake", |stats| {
        stats.handshakes_failed == 1
    })
    .await;
    assert_broker_1_is_served(&mut node, &paths, 1).await;
}

#[tokio::test]
async fn a_server_only_certificate_from_the_peer_ca_is_refused() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let mut node = broker_2(&paths).await;
    // Signed by the peer CA and naming broker 1, but for serving only: the extended key usage
    // alone keeps it off the peer link.
    let (cert, key) = peer_ca_leaf(&paths, "server-only-1", vec![ServerAuth], 1);
    let client =
        tls::client_config(&paths.peer_ca.cert, Some((&cert, &key))).expect("client config");
    assert_refused(&mut node, client).await;
    wait_for_stats(&node.network, "a failed handshake", |stats| {
        stats.handshakes_failed == 1
    })
    .await;
    // Positive control: the same kind of certificate with clientAuth is accepted as broker 1.
    let (cert, key) = peer_ca_leaf(&paths, "both-1", vec![ServerAuth, ClientAuth], 1);
    node.network.send([message(2, 1, 7)]);
    let client =
        tls::client_config(&paths.peer_ca.cert, Some((&cert, &key))).expect("client config");
    let mut stream = raw_connect(node.address, client).await.expect("handshake");
    write_frame(
        &mut stream,
        &Frame::with_messages(NodeId(1), vec![message(1, 2, 7)]),
    )
    .await;
    assert_eq!(receive(&mut node.inbound).await, message(1, 2, 7));
}

#[tokio::test]
async fn a_valid_certificate_of_a_broker_that_may_not_dial_is_refused() {
    let (_dir, paths) = cluster(&[1, 2, 3, 4]);
    let mut node = broker_2(&paths).await;
    // Broker 3 is a peer but has the higher id, so broker 2 dials it, never the reverse.
    assert_refused(&mut node, broker_client(&paths, 3)).await;
    // Broker 4 has a valid certificate but is not a peer of broker 2.
    assert_refused(&mut node, broker_client(&paths, 4)).await;
    let stats = wait_for_stats(&node.network, "two refused peers", |stats| {
        stats.peers_refused == 2
    })
    .await;
    assert_eq!(
        stats.handshakes_failed, 0,
        "the handshakes succeeded: {stats:?}"
    );
    assert_broker_1_is_served(&mut node, &paths, 1).await;
}

#[tokio::test]
async fn a_dialled_address_answering_with_another_broker_id_is_refused() {
    let (_dir, paths) = cluster(&[1, 3]);
    let (listener_1, listener_3) = (bind_any().await, bind_any().await);
    let (address_1, address_3) = (
        listener_1.local_addr().expect("address"),
        listener_3.local_addr().expect("address"),
    );
    let mut node_3 = start(
        &paths,
        3,
        listener_3,
        &HashMap::from([(NodeId(1), address_1)]),
    );
    // Broker 1 believes broker 2 lives where broker 3 does.
    let node_1 = start(
        &paths,
        1,
        listener_1,
        &HashMap::from([(NodeId(2), address_3)]),
    );
    node_1.network.send([message(1, 2, 0)]);
    let stats = wait_for_stats(&node_1.network, "a refused dial", |stats| {
        stats.peers_refused >= 1 && stats.dials_failed >= 1
    })
    .await;
    assert_eq!(stats.connections_established, 0, "{stats:?}");
    assert_eq!(stats.messages_sent, 0, "{stats:?}");

    // Positive control: with the right id for that address the link works.
    node_1
        .network
        .set_peers(HashMap::from([(NodeId(3), address_3.into())]));
    node_1.network.send([message(1, 3, 1)]);
    assert_eq!(receive(&mut node_3.inbound).await, message(1, 3, 1));
}

#[tokio::test]
async fn a_dialled_server_from_another_ca_is_refused() {
    let (_dir, paths) = cluster(&[1, 2]);
    let (_other_dir, other) = cluster(&[2]);
    let (listener_1, listener_2) = (bind_any().await, bind_any().await);
    let (address_1, address_2) = (
        listener_1.local_addr().expect("address"),
        listener_2.local_addr().expect("address"),
    );
    let all = HashMap::from([(NodeId(1), address_1), (NodeId(2), address_2)]);
    let mut other_2 = start(&other, 2, listener_2, &all);
    let node_1 = start(&paths, 1, listener_1, &all);
    node_1.network.send([message(1, 2, 0)]);
    wait_for_stats(&node_1.network, "failed dials", |stats| {
        stats.dials_failed >= 1
    })
    .await;
    wait_for_stats(&other_2.network, "a failed handshake", |stats| {
        stats.handshakes_failed >= 1
    })
    .await;
    assert_eq!(node_1.network.stats().connections_established, 0);
    assert!(other_2.inbound.try_recv().is_err());

    // Positive control: broker 2 of the same CA on the same port is reached.
    other_2.network.shutdown().await;
    let mut node_2 = start(&paths, 2, rebind(address_2).await, &all);
    node_1.network.send([message(1, 2, 1)]);
    let received = receive(&mut node_2.inbound).await;
    assert_eq!(received.from, NodeId(1));
}

#[tokio::test]
async fn forged_senders_are_dropped_and_counted() {
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let mut node = broker_2(&paths).await;
    let mut stream = raw_connect(node.address, broker_client(&paths, 1))
        .await
        .expect("handshake as broker 1");
    let frames = [
        // The frame claims broker 3, but the certificate says 1.
        (3, vec![message(3, 2, 0)]),
        // The frame is from 1, the message inside claims 3.
        (1, vec![message(3, 2, 1)]),
        // Addressed to broker 4, not to the broker that received it.
        (1, vec![message(1, 4, 2)]),
        (1, vec![message(1, 2, 3)]),
    ];
    for (from, messages) in frames {
        let frame = Frame::with_messages(NodeId(from), messages);
        write_frame(&mut stream, &frame).await;
    }
    // Frames are handled in order, so the good one arriving means the others were judged.
    assert_eq!(receive(&mut node.inbound).await, message(1, 2, 3));
    let stats = node.network.stats();
    assert_eq!(stats.frames_received, 4, "{stats:?}");
    assert_eq!(stats.frames_forged_sender, 1, "{stats:?}");
    assert_eq!(stats.messages_forged_sender, 1, "{stats:?}");
    assert_eq!(stats.messages_misaddressed, 1, "{stats:?}");
    assert_eq!(stats.messages_received, 1, "{stats:?}");
    assert!(node.inbound.try_recv().is_err(), "only the honest message");
}

#[tokio::test]
async fn oversized_and_undecodable_frames_close_the_connection() {
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let mut node = broker_2(&paths).await;
    let frame_bytes_max = limits().frame_bytes_max;
    let mut oversized = (frame_bytes_max + 1).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0u8; 64]);
    let mut garbage = 6u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 6]);

    for (index, bytes) in [oversized, garbage].into_iter().enumerate() {
        let mut stream = raw_connect(node.address, broker_client(&paths, 1))
            .await
            .expect("handshake as broker 1");
        stream.write_all(&bytes).await.expect("write");
        stream.flush().await.expect("flush");
        let reply = read_reply(&mut stream).await;
        assert!(matches!(reply, Ok(None) | Err(_)), "still open: {reply:?}");
        let invalid = index as u64 + 1;
        wait_for_stats(&node.network, "an invalid frame", |stats| {
            stats.frames_invalid == invalid
        })
        .await;
    }
    assert!(node.inbound.try_recv().is_err());
    // The network survived both and still serves broker 1.
    assert_broker_1_is_served(&mut node, &paths, 1).await;
}
