//! Calls over the peer links with real mutual TLS on 127.0.0.1: answers come back matched by
//! id in both directions and from other runtimes, deadlines hold, lost links fail calls
//! promptly, oversized requests fail alone, forged answers are ignored, and a peer that stops
//! reading loses its connection at the write deadline.
mod transport_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade::raft::NodeId;
use palisade::transport::frame::{Envelope, Frame, ENVELOPE_OVERHEAD_BYTES_MAX};
use palisade::transport::{tls, CallError, PeerLimits, PeerNetwork, PeerRequest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use transport_support::*;

/// A deadline long enough that only a prompt failure can beat it within `DEADLINE`.
const LONG_TIMEOUT: Duration = Duration::from_secs(120);

fn answer_to(body: &[u8]) -> Vec<u8> {
    [b"answer:".as_slice(), body].concat()
}

/// Answers every request `node` receives with `answer_to(body)`.
fn serve_answers(node: &mut Node) -> JoinHandle<()> {
    let network = node.network.clone();
    let (_, closed) = mpsc::channel(1);
    let mut requests = std::mem::replace(&mut node.requests, closed);
    tokio::spawn(async move {
        while let Some(PeerRequest { from, id, body }) = requests.recv().await {
            network.respond(from, id, answer_to(&body));
        }
    })
}

/// Two started brokers 1 and 2 that know each other.
async fn pair(limits: PeerLimits) -> (tempfile::TempDir, Node, Node) {
    let (dir, paths) = cluster(&[1, 2]);
    let (listener_1, listener_2) = (bind_any().await, bind_any().await);
    let all: HashMap<NodeId, SocketAddr> = HashMap::from([
        (NodeId(1), listener_1.local_addr().expect("address")),
        (NodeId(2), listener_2.local_addr().expect("address")),
    ]);
    let node_1 = start_with_limits(&paths, 1, listener_1, &all, limits.clone());
    let node_2 = start_with_limits(&paths, 2, listener_2, &all, limits);
    (dir, node_1, node_2)
}

#[test]
fn a_peer_network_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<PeerNetwork>();
    assert_send_sync::<Arc<PeerNetwork>>();
}

#[tokio::test]
async fn calls_are_answered_in_both_directions_and_from_another_runtime() {
    let (_dir, mut node_1, mut node_2) = pair(limits()).await;
    let _serving_1 = serve_answers(&mut node_1);
    let _serving_2 = serve_answers(&mut node_2);

    let from_lower = node_1.network.call(NodeId(2), b"up".to_vec(), DEADLINE);
    assert_eq!(from_lower.await, Ok(answer_to(b"up")));
    let from_higher = node_2.network.call(NodeId(1), b"down".to_vec(), DEADLINE);
    assert_eq!(from_higher.await, Ok(answer_to(b"down")));

    // An actix arbiter is its own single-threaded runtime on its own thread.
    let network = node_2.network.clone();
    let elsewhere = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(network.call(NodeId(1), b"aside".to_vec(), DEADLINE))
    });
    let answer = tokio::task::spawn_blocking(move || elsewhere.join().expect("thread"))
        .await
        .expect("join");
    assert_eq!(answer, Ok(answer_to(b"aside")));

    let (stats_1, stats_2) = (node_1.network.stats(), node_2.network.stats());
    assert_eq!(stats_1.requests_sent, 1, "{stats_1:?}");
    assert_eq!(stats_1.responses_received, 1, "{stats_1:?}");
    assert_eq!(stats_2.requests_received, 1, "{stats_2:?}");
    assert_eq!(stats_2.responses_received, 2, "{stats_2:?}");
    assert_eq!(stats_1.responses_unknown + stats_2.responses_unknown, 0);
}

#[tokio::test]
async fn a_thousand_concurrent_calls_are_each_matched_to_their_answer() {
    let (_dir, node_1, mut node_2) = pair(limits()).await;
    let _serving_2 = serve_answers(&mut node_2);
    let calls: Vec<_> = (0..1000u32)
        .map(|sequence| {
            let network = node_1.network.clone();
            tokio::spawn(async move {
                let body = sequence.to_be_bytes().to_vec();
                let answer = network.call(NodeId(2), body.clone(), DEADLINE).await;
                (body, answer)
            })
        })
        .collect();
    for call in calls {
        let (body, answer) = call.await.expect("call task");
        assert_eq!(answer, Ok(answer_to(&body)));
    }
    let stats = node_1.network.stats();
    assert_eq!(stats.responses_received, 1000, "{stats:?}");
    assert!(stats.frames_sent < 1000, "requests are batched: {stats:?}");
    assert_eq!(stats.responses_unknown, 0, "{stats:?}");
}

#[tokio::test]
async fn an_unanswered_call_times_out_at_its_deadline_and_a_late_answer_is_counted() {
    let (_dir, node_1, mut node_2) = pair(limits()).await;
    let timeout = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let outcome = node_1.network.call(NodeId(2), b"q".to_vec(), timeout).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome, Err(CallError::Timeout(NodeId(2))));
    assert!(
        elapsed >= timeout,
        "returned before its deadline: {elapsed:?}"
    );
    assert!(elapsed < DEADLINE, "hung past its deadline: {elapsed:?}");

    // Broker 2 did get the request; its answer now comes too late.
    let request = tokio::time::timeout(DEADLINE, node_2.requests.recv())
        .await
        .expect("request before the deadline")
        .expect("requests open");
    assert_eq!(
        (request.from, request.body.as_slice()),
        (NodeId(1), b"q".as_slice())
    );
    node_2
        .network
        .respond(request.from, request.id, b"late".to_vec());
    wait_for_stats(&node_1.network, "the late answer", |stats| {
        stats.responses_unknown == 1
    })
    .await;
    assert_eq!(node_1.network.stats().calls_timed_out, 1);
}

/// A call from `caller` to its peer is in flight (received, unanswered) when the peer's
/// network shuts down; it must fail with `Disconnected` long before `LONG_TIMEOUT`.
async fn a_call_in_flight_fails_when_the_peer_stops(caller: u64) {
    let (_dir, node_1, node_2) = pair(limits()).await;
    let (calling, mut stopping) = if caller == 1 {
        (node_1, node_2)
    } else {
        (node_2, node_1)
    };
    let peer = stopping.network.broker();
    let network = calling.network.clone();
    let call = tokio::spawn(async move { network.call(peer, b"q".to_vec(), LONG_TIMEOUT).await });
    tokio::time::timeout(DEADLINE, stopping.requests.recv())
        .await
        .expect("request before the deadline")
        .expect("requests open");
    stopping.network.shutdown().await;
    let outcome = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the call failed well before its deadline")
        .expect("call task");
    assert_eq!(outcome, Err(CallError::Disconnected(peer)));
    let stats = calling.network.stats();
    assert_eq!(stats.calls_disconnected, 1, "{stats:?}");
}

#[tokio::test]
async fn a_call_in_flight_fails_with_disconnected_when_the_accepting_peer_stops() {
    a_call_in_flight_fails_when_the_peer_stops(1).await;
}

#[tokio::test]
async fn a_call_in_flight_fails_with_disconnected_when_the_dialling_peer_stops() {
    a_call_in_flight_fails_when_the_peer_stops(2).await;
}

/// Calls from `caller` are answered by the peer right before its network shuts down: the
/// answers already queued go out before the connection closes, so every call gets its answer.
/// Before queued answers were flushed, shutdown aborted the link and these calls ended with
/// `Disconnected`.
async fn answers_queued_before_a_shutdown_reach_their_callers(caller: u64) {
    const CALLS: usize = 50;
    let (_dir, node_1, node_2) = pair(limits()).await;
    let (calling, mut stopping) = if caller == 1 {
        (node_1, node_2)
    } else {
        (node_2, node_1)
    };
    let peer = stopping.network.broker();
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let network = calling.network.clone();
            tokio::spawn(async move {
                network
                    .call(peer, format!("q{i}").into_bytes(), LONG_TIMEOUT)
                    .await
            })
        })
        .collect();
    let mut received = Vec::new();
    while received.len() < CALLS {
        let request = tokio::time::timeout(DEADLINE, stopping.requests.recv())
            .await
            .expect("every request before the deadline")
            .expect("requests open");
        received.push(request);
    }
    for PeerRequest { from, id, body } in received {
        stopping.network.respond(from, id, answer_to(&body));
    }
    stopping.network.shutdown().await;
    for (i, call) in calls.into_iter().enumerate() {
        let outcome = tokio::time::timeout(DEADLINE, call)
            .await
            .expect("the call ended well before its deadline")
            .expect("call task");
        assert_eq!(
            outcome,
            Ok(answer_to(format!("q{i}").as_bytes())),
            "call {i}"
        );
    }
}

#[tokio::test]
async fn answers_queued_before_the_accepting_peer_stops_reach_their_callers() {
    answers_queued_before_a_shutdown_reach_their_callers(1).await;
}

#[tokio::test]
async fn answers_queued_before_the_dialling_peer_stops_reach_their_callers() {
    answers_queued_before_a_shutdown_reach_their_callers(2).await;
}

/// What a response holds (the responder's memory reservation) travels with the answer and is
/// released once the answer has been written, not leaked with the link.
#[tokio::test]
async fn what_a_response_holds_is_released_once_the_answer_is_sent() {
    let (_dir, node_1, mut node_2) = pair(limits()).await;
    let network = node_1.network.clone();
    let call =
        tokio::spawn(async move { network.call(NodeId(2), b"q".to_vec(), LONG_TIMEOUT).await });
    let request = tokio::time::timeout(DEADLINE, node_2.requests.recv())
        .await
        .expect("request before the deadline")
        .expect("requests open");
    let held = Arc::new(());
    node_2.network.respond_holding(
        request.from,
        request.id,
        answer_to(&request.body),
        Some(Box::new(held.clone())),
    );
    let outcome = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("answered")
        .expect("call task");
    assert_eq!(outcome, Ok(answer_to(b"q")));
    tokio::time::timeout(DEADLINE, async {
        while Arc::strong_count(&held) > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the hold is dropped once the answer is written");
}

#[tokio::test]
async fn removing_a_peer_fails_its_calls_and_unknown_peers_fail_at_once() {
    let (_dir, node_1, mut node_2) = pair(limits()).await;
    let network = node_1.network.clone();
    let call =
        tokio::spawn(async move { network.call(NodeId(2), b"q".to_vec(), LONG_TIMEOUT).await });
    let request = tokio::time::timeout(DEADLINE, node_2.requests.recv())
        .await
        .expect("request before the deadline")
        .expect("requests open");
    node_1.network.set_peers(HashMap::new());
    let outcome = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the call failed well before its deadline")
        .expect("call task");
    assert_eq!(outcome, Err(CallError::Disconnected(NodeId(2))));
    let unknown = node_1.network.call(NodeId(2), Vec::new(), LONG_TIMEOUT);
    assert_eq!(unknown.await, Err(CallError::UnknownPeer(NodeId(2))));
    // The answer to the failed call finds no link back, or no pending call.
    node_2
        .network
        .respond(request.from, request.id, b"late".to_vec());

    // Adding the peer back from a thread outside any runtime (as an actor on another
    // arbiter might) starts its link on the network's own runtime.
    let network = node_1.network.clone();
    let address_2 = node_2.address;
    std::thread::spawn(move || network.set_peers(HashMap::from([(NodeId(2), address_2.into())])))
        .join()
        .expect("set_peers from a plain thread");
    let _serving_2 = serve_answers(&mut node_2);
    let again = node_1.network.call(NodeId(2), b"again".to_vec(), DEADLINE);
    assert_eq!(again.await, Ok(answer_to(b"again")));
}

#[tokio::test]
async fn an_oversized_request_fails_alone_and_large_requests_share_the_link() {
    let limits = limits();
    let frame_bytes_max = limits.frame_bytes_max;
    let (_dir, node_1, mut node_2) = pair(limits).await;
    let _serving_2 = serve_answers(&mut node_2);
    let largest = (u64::from(frame_bytes_max) - ENVELOPE_OVERHEAD_BYTES_MAX) as usize;

    let oversized = vec![1u8; frame_bytes_max as usize];
    let outcome = node_1.network.call(NodeId(2), oversized, DEADLINE).await;
    assert!(
        matches!(
            outcome,
            Err(CallError::TooLarge {
                peer: NodeId(2),
                ..
            })
        ),
        "{outcome:?}"
    );
    // Requests of two thirds of a frame each, all at once: no two fit in one frame, so the
    // batch is split by bytes into a frame per request, and none is lost.
    let calls: Vec<_> = (0..8u8)
        .map(|sequence| {
            let network = node_1.network.clone();
            let bytes = largest * 2 / 3 + usize::from(sequence);
            tokio::spawn(async move {
                let body = vec![sequence; bytes];
                let answer = network.call(NodeId(2), body.clone(), DEADLINE).await;
                (body, answer)
            })
        })
        .collect();
    for call in calls {
        let (body, answer) = call.await.expect("call task");
        assert_eq!(answer, Ok(answer_to(&body)));
    }
    let later = node_1.network.call(NodeId(2), b"after".to_vec(), DEADLINE);
    assert_eq!(later.await, Ok(answer_to(b"after")));
    let (stats_1, stats_2) = (node_1.network.stats(), node_2.network.stats());
    assert_eq!(stats_1.connections_established, 1, "{stats_1:?}");
    // Eight large requests and the later one; no two large ones fit in one frame.
    assert_eq!(stats_1.requests_sent, 9, "{stats_1:?}");
    assert_eq!(stats_1.frames_sent, 9, "{stats_1:?}");
    assert_eq!(stats_2.frames_invalid, 0, "{stats_2:?}");
}

#[tokio::test]
async fn a_forged_answer_is_counted_and_ignored() {
    let (_dir, paths) = cluster(&[1, 2, 3]);
    let nowhere: SocketAddr = "127.0.0.1:1".parse().expect("address");
    let peers = HashMap::from([(NodeId(1), nowhere), (NodeId(3), nowhere)]);
    let node_2 = start(&paths, 2, bind_any().await, &peers);
    let network = node_2.network.clone();
    let call = tokio::spawn(async move { network.call(NodeId(1), b"q".to_vec(), DEADLINE).await });

    // Broker 1 is played by hand: it reads the request and answers with the wrong id first.
    let mut stream = raw_connect(node_2.address, broker_client(&paths, 1))
        .await
        .expect("handshake as broker 1");
    let request = loop {
        let frame = read_reply(&mut stream)
            .await
            .expect("read from broker 2")
            .expect("a frame from broker 2");
        if let Some(request) = frame.requests.into_iter().next() {
            break request;
        }
    };
    assert_eq!(request.body, b"q");
    for (id, body) in [(request.id + 1000, b"forged"), (request.id, b"honest")] {
        let mut frame = Frame::with_messages(NodeId(1), Vec::new());
        frame.responses.push(Envelope {
            id,
            body: body.to_vec(),
        });
        write_frame(&mut stream, &frame).await;
    }
    let outcome = call.await.expect("call task");
    assert_eq!(outcome, Ok(b"honest".to_vec()));
    let stats = node_2.network.stats();
    assert_eq!(stats.responses_unknown, 1, "{stats:?}");
    assert_eq!(stats.responses_received, 1, "{stats:?}");
}

/// Accepts TLS as broker 2 and keeps every connection open without ever reading from it.
async fn stalled_peer(paths: &palisade::transport::certs::CertPaths) -> SocketAddr {
    let own = &paths.broker(2).expect("broker certificates").peer;
    let config =
        tls::server_config(&own.cert, &own.key, Some(&paths.peer_ca.cert)).expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = bind_any().await;
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(stream) = acceptor.accept(tcp).await {
                held.push(stream);
            }
        }
    });
    address
}

#[tokio::test]
async fn a_peer_that_stops_reading_loses_its_connection_at_the_write_deadline() {
    let (_dir, paths) = cluster(&[1, 2]);
    let address = stalled_peer(&paths).await;
    let peers = HashMap::from([(NodeId(2), address)]);
    let limits = PeerLimits {
        write_timeout_ms: 300,
        ..limits()
    };
    let node_1 = start_with_limits(&paths, 1, bind_any().await, &peers, limits);
    // Far more bytes than the socket buffers hold, so a write must block.
    let calls: Vec<_> = (0..600)
        .map(|_| {
            let network = node_1.network.clone();
            tokio::spawn(
                async move { network.call(NodeId(2), vec![0; 60_000], LONG_TIMEOUT).await },
            )
        })
        .collect();
    wait_for_stats(&node_1.network, "a write timeout and a new dial", |stats| {
        stats.writes_timed_out >= 1 && stats.connections_established >= 2
    })
    .await;
    let first = tokio::time::timeout(DEADLINE, calls.into_iter().next().expect("a call"))
        .await
        .expect("the first call failed well before its deadline")
        .expect("call task");
    assert_eq!(first, Err(CallError::Disconnected(NodeId(2))));
}
