//! Peers listed by DNS name: a link to `localhost:<port>` works (the dialled name checked against
//! the DNS SAN `localhost` of the peer certificate), and a name that does not resolve is a
//! counted, retried dial failure rather than a panic.
mod transport_support;

use std::collections::HashMap;

use palisade::address::PeerAddress;
use palisade::raft::NodeId;
use transport_support::*;

fn named(entries: &[(u64, String)]) -> HashMap<NodeId, PeerAddress> {
    entries
        .iter()
        .map(|(id, text)| (NodeId(*id), text.parse().expect("peer address")))
        .collect()
}

#[tokio::test]
async fn peers_listed_by_dns_name_exchange_messages() {
    let (_dir, paths) = cluster(&[1, 2]);
    let (listener_1, listener_2) = (bind_any().await, bind_any().await);
    let port_1 = listener_1.local_addr().expect("address").port();
    let port_2 = listener_2.local_addr().expect("address").port();
    let all = named(&[
        (1, format!("localhost:{port_1}")),
        (2, format!("localhost:{port_2}")),
    ]);
    let node_1 = start_named(&paths, 1, listener_1, &all, limits());
    let mut node_2 = start_named(&paths, 2, listener_2, &all, limits());

    node_1.network.send([message(1, 2, 1)]);
    assert_eq!(receive(&mut node_2.inbound).await, message(1, 2, 1));
    let stats = node_1.network.stats();
    assert_eq!(stats.connections_established, 1, "{stats:?}");
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_retried_and_a_fixed_name_then_connects() {
    let (_dir, paths) = cluster(&[1, 2]);
    let (listener_1, listener_2) = (bind_any().await, bind_any().await);
    let port_2 = listener_2.local_addr().expect("address").port();
    let address_1 = listener_1.local_addr().expect("address");
    // `.invalid` never resolves (RFC 6761).
    let unresolvable = named(&[(2, format!("palisade-1.palisade.invalid:{port_2}"))]);
    let node_1 = start_named(&paths, 1, listener_1, &unresolvable, limits());
    let mut node_2 = start(
        &paths,
        2,
        listener_2,
        &HashMap::from([(NodeId(1), address_1)]),
    );

    node_1.network.send([message(1, 2, 1)]);
    let stats = wait_for_stats(&node_1.network, "repeated failed dials", |stats| {
        stats.dials_failed >= 2
    })
    .await;
    assert_eq!(stats.connections_established, 0, "{stats:?}");

    // Positive control: the same broker under a name that resolves is reached.
    node_1
        .network
        .set_peers(named(&[(2, format!("localhost:{port_2}"))]));
    node_1.network.send([message(1, 2, 2)]);
    loop {
        let received = receive(&mut node_2.inbound).await;
        if received == message(1, 2, 2) {
            break;
        }
    }
}
