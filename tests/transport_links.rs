//! Peer networks over real mutual-TLS sockets on 127.0.0.1: messages flow both ways between
//! two and three brokers, links come back after a peer restarts, and bounds drop and count.
mod transport_support;

use std::collections::HashMap;
use std::net::SocketAddr;

use palisade::raft::NodeId;
use transport_support::*;

const MESSAGES: u64 = 200;

fn peers(entries: &[(u64, SocketAddr)]) -> HashMap<NodeId, SocketAddr> {
    entries
        .iter()
        .map(|(id, address)| (NodeId(*id), *address))
        .collect()
}

/// Sends `MESSAGES` from `from` to `to` and checks they arrive complete and in order.
/// Earlier messages (a lower sequence) still in flight are skipped.
async fn send_and_check(from: &Node, to: &mut Node, first: u64) {
    let sender = from.network.broker().0;
    let recipient = to.network.broker().0;
    from.network
        .send((first..first + MESSAGES).map(|sequence| message(sender, recipient, sequence)));
    let mut sequence = first;
    while sequence < first + MESSAGES {
        let received = receive(&mut to.inbound).await;
        if received.term.0 < first {
            continue;
        }
        assert_eq!(received, message(sender, recipient, sequence));
        sequence += 1;
    }
}

#[tokio::test]
async fn two_networks_exchange_messages_both_ways_over_one_connection() {
    let (_dir, paths) = cluster(&[1, 2]);
    let (listener_1, listener_2) = (bind_any().await, bind_any().await);
    let (address_1, address_2) = (
        listener_1.local_addr().expect("address"),
        listener_2.local_addr().expect("address"),
    );
    let all = peers(&[(1, address_1), (2, address_2)]);
    let mut node_1 = start(&paths, 1, listener_1, &all);
    let mut node_2 = start(&paths, 2, listener_2, &all);

    send_and_check(&node_1, &mut node_2, 0).await;
    send_and_check(&node_2, &mut node_1, 0).await;

    let (stats_1, stats_2) = (node_1.network.stats(), node_2.network.stats());
    assert_eq!(stats_1.connections_established, 1, "{stats_1:?}");
    assert_eq!(stats_2.connections_established, 1, "{stats_2:?}");
    assert_eq!(stats_1.messages_sent, MESSAGES);
    assert_eq!(stats_2.messages_received, MESSAGES);
    assert!(
        stats_1.frames_sent < MESSAGES,
        "messages are batched: {stats_1:?}"
    );
    assert_eq!(stats_2.frames_forged_sender + stats_2.frames_invalid, 0);
}

#[tokio::test]
async fn three_networks_form_a_full_mesh() {
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let listeners = [bind_any().await, bind_any().await, bind_any().await];
    let addresses: Vec<SocketAddr> = listeners
        .iter()
        .map(|listener| listener.local_addr().expect("address"))
        .collect();
    let all = peers(&[(1, addresses[0]), (2, addresses[1]), (3, addresses[2])]);
    let mut nodes: Vec<Node> = listeners
        .into_iter()
        .zip(1u64..)
        .map(|(listener, id)| start(&paths, id, listener, &all))
        .collect();

    for from in 1..=3u64 {
        let outbound = (1..=3u64)
            .filter(|to| *to != from)
            .flat_map(|to| (0..MESSAGES).map(move |sequence| message(from, to, sequence)));
        nodes[from as usize - 1].network.send(outbound);
    }
    for node in &mut nodes {
        let own = node.network.broker().0;
        let mut next: HashMap<u64, u64> = HashMap::new();
        for _ in 0..2 * MESSAGES {
            let received = receive(&mut node.inbound).await;
            let expected = next.entry(received.from.0).or_insert(0);
            assert_eq!(received, message(received.from.0, own, *expected));
            *expected += 1;
        }
        assert_eq!(next.len(), 2, "messages from both peers at {own}");
        let stats = node.network.stats();
        assert_eq!(stats.connections_established, 2, "one per pair: {stats:?}");
    }
}

/// Restarts broker `restarted` of a two-broker pair on the same port and checks the link
/// comes back in both directions.
async fn reconnects_after_restart_of(restarted: u64) {
    let (_dir, paths) = cluster(&[1, 2]);
    let (listener_1, listener_2) = (bind_any().await, bind_any().await);
    let all = peers(&[
        (1, listener_1.local_addr().expect("address")),
        (2, listener_2.local_addr().expect("address")),
    ]);
    let node_1 = start(&paths, 1, listener_1, &all);
    let node_2 = start(&paths, 2, listener_2, &all);
    let (mut stable, restarting) = if restarted == 1 {
        (node_2, node_1)
    } else {
        (node_1, node_2)
    };
    let stable_id = stable.network.broker().0;
    send_and_check(&restarting, &mut stable, 0).await;

    let address = restarting.address;
    restarting.network.shutdown().await;
    let listener = rebind(address).await;
    let mut restarting = start(&paths, restarted, listener, &all);

    // Messages sent while the old connection was dying may be lost; keep sending until one
    // arrives, then require the rest in order.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for sequence in 1_000.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted broker heard nothing before the deadline"
        );
        stable
            .network
            .send([message(stable_id, restarted, sequence)]);
        let probe = std::time::Duration::from_millis(50);
        if let Ok(Some(_)) = tokio::time::timeout(probe, restarting.inbound.recv()).await {
            break;
        }
    }
    send_and_check(&stable, &mut restarting, 10_000).await;
    send_and_check(&restarting, &mut stable, 20_000).await;
    let stats = stable.network.stats();
    assert!(stats.connections_established >= 2, "{stats:?}");
}

#[tokio::test]
async fn the_dialling_broker_reconnects_after_the_accepting_broker_restarts() {
    reconnects_after_restart_of(2).await;
}

#[tokio::test]
async fn the_accepting_broker_takes_the_new_link_after_the_dialling_broker_restarts() {
    reconnects_after_restart_of(1).await;
}

#[tokio::test]
async fn a_full_queue_and_an_unknown_recipient_drop_and_count() {
    let (_dir, paths) = cluster(&[1, 2]);
    // Broker 2's port is reserved but nobody accepts TLS on it, so the queue never drains.
    let silent = bind_any().await;
    let all = peers(&[(2, silent.local_addr().expect("address"))]);
    let queue_messages_max = 16;
    let node_1 = start_with_limits(
        &paths,
        1,
        bind_any().await,
        &all,
        palisade::transport::PeerLimits {
            queue_messages_max,
            ..limits()
        },
    );
    node_1
        .network
        .send((0..queue_messages_max as u64 + 10).map(|sequence| message(1, 2, sequence)));
    node_1.network.send([message(1, 9, 0)]);
    let stats = node_1.network.stats();
    assert_eq!(stats.dropped_queue_full, 10, "{stats:?}");
    assert_eq!(stats.dropped_unknown_peer, 1, "{stats:?}");
    assert_eq!(stats.messages_sent, 0);
}
