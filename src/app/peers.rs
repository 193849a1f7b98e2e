//! Start-up of the peer side of a broker: the mutual-TLS network, the routing of inbound Raft
//! messages to replicas, the serving of requests peers forward to this broker, and keeping the
//! network's peer list equal to the brokers in the metadata state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::FutureExt as _;
use tokio::sync::{mpsc, watch, Notify};

use crate::address::PeerAddress;
use crate::admission::AdmissionMetrics;
use crate::broker::forward::{unavailable_answer, PeerCall, PeerCallError};
use crate::broker::Broker;
use crate::cluster::reconcile::is_assigned;
use crate::cluster::{MetadataMachine, MetadataState, METADATA_GROUP};
use crate::config::{Config, PeerConfig, RaftConfig};
use crate::partition::Registry;
use crate::partition::{
    Inbound, LinkProbe, OutboundSink, PeerDown, ReplicaDirectory, ReplicaHandle, ReplicaStatus,
};
use crate::raft::{GroupId, Message, NodeId};
use crate::transport::{CallError, Hold, PeerLimits, PeerNetwork, PeerNetworkConfig, PeerRequest};

/// Raft messages from peers waiting to be routed.
const INBOUND_QUEUE: usize = 65_536;
/// Forwarded requests waiting to be started.
const REQUEST_QUEUE: usize = 4096;

/// The running peer side, before the broker exists.
pub struct Peers {
    pub network: Arc<PeerNetwork>,
    inbound: mpsc::Receiver<Message>,
    requests: mpsc::Receiver<PeerRequest>,
    /// Set once the broker serves; forwarded requests are refused until then.
    pub broker: Arc<OnceLock<Arc<Broker>>>,
}

impl Peers {
    /// Binds the peer listener and links to the founding brokers named in the configuration.
    /// Refused inbound connections are counted in `metrics`.
    pub async fn start(
        config: &Config,
        peer: &PeerConfig,
        metrics: AdmissionMetrics,
    ) -> anyhow::Result<Peers> {
        let listener = tokio::net::TcpListener::bind(peer.listen)
            .await
            .with_context(|| format!("cannot listen for peers on {}", peer.listen))?;
        let network_config = PeerNetworkConfig {
            broker: NodeId(config.broker.id),
            ca_cert: peer.ca_cert.clone(),
            cert: peer.cert.clone(),
            key: peer.key.clone(),
            limits: peer_limits(peer, &config.raft),
            metrics,
        };
        let founders: HashMap<NodeId, PeerAddress> = config
            .cluster
            .brokers
            .iter()
            .map(|(id, address)| (NodeId(*id), address.clone()))
            .collect();
        let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE);
        let (request_sender, requests) = mpsc::channel(REQUEST_QUEUE);
        let network = PeerNetwork::start(
            network_config,
            listener,
            founders,
            inbound_sender,
            request_sender,
        )
        .context("cannot start the peer network")?;
        Ok(Peers {
            network: Arc::new(network),
            inbound,
            requests,
            broker: Arc::new(OnceLock::new()),
        })
    }

    /// Where replicas hand their outgoing Raft messages.
    pub fn outbound(&self) -> OutboundSink {
        let network = self.network.clone();
        Arc::new(move |messages| network.send(messages))
    }

    /// Whether the link to a peer is up, for quiesced replicas.
    pub fn link_probe(&self) -> LinkProbe {
        let network = self.network.clone();
        Arc::new(move |peer| network.is_connected(peer))
    }

    /// How the broker calls its peers.
    pub fn caller(&self) -> PeerCall {
        let network = self.network.clone();
        Arc::new(move |peer, body, timeout| {
            let network = network.clone();
            async move {
                // A peer that is down is skipped at once instead of holding the request until
                // its deadline; forwarding then tries the other replicas.
                if !network.is_connected(NodeId(peer)) {
                    return Err(PeerCallError::NotSent(format!(
                        "no connection to broker {peer}"
                    )));
                }
                network
                    .call(NodeId(peer), body, timeout)
                    .await
                    .map_err(|error| match error {
                        CallError::Timeout(_) | CallError::Disconnected(_) => {
                            PeerCallError::NoAnswer(error.to_string())
                        }
                        _ => PeerCallError::NotSent(error.to_string()),
                    })
            }
            .boxed()
        })
    }

    /// Routes inbound messages to replicas and serves forwarded requests, until shutdown.
    pub fn run(
        self,
        controller: ReplicaHandle<MetadataMachine>,
        registry: Arc<Registry>,
    ) -> Running {
        let Peers {
            network,
            inbound,
            requests,
            broker,
        } = self;
        actix_web::rt::spawn(wake_on_link_loss(
            network.link_downs(),
            controller.clone(),
            registry.clone(),
        ));
        actix_web::rt::spawn(route_inbound(inbound, controller, registry));
        let serving = Arc::new(Serving::default());
        actix_web::rt::spawn(serve_requests(
            requests,
            network.clone(),
            broker.clone(),
            serving.clone(),
        ));
        Running {
            network,
            broker,
            serving,
        }
    }
}

/// The peer side once it routes and serves.
pub struct Running {
    pub network: Arc<PeerNetwork>,
    /// Set once the broker serves; forwarded requests are refused until then.
    pub broker: Arc<OnceLock<Arc<Broker>>>,
    /// The forwarded requests being served; a stopping broker closes it before its links.
    pub serving: Arc<Serving>,
}

/// The forwarded requests this broker is serving, and whether it still takes new ones.
///
/// A stopping broker closes it after its HTTP API has stopped and before its replicas and peer
/// links do: requests still arriving are refused as unavailable (nothing ran, so the forwarding
/// broker tries another replica) and those already running get their answer out, instead of
/// ending with the link and leaving the client not knowing whether a write was applied.
#[derive(Default)]
pub struct Serving {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Serving {
    /// Counts a request as running, or refuses it once closed.
    fn enter(self: &Arc<Self>) -> Option<ServingGuard> {
        // Counted before the check, so `close` sees every request that passed it.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = ServingGuard(self.clone());
        (!self.closed.load(Ordering::SeqCst)).then_some(guard)
    }

    /// Refuses new requests and waits at most `wait` for the running ones to answer; returns
    /// how many were still running at the deadline.
    pub async fn close(&self, wait: Duration) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let idle = self.idle.notified();
            let running = self.in_flight.load(Ordering::SeqCst);
            if running == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight.load(Ordering::SeqCst);
            }
        }
    }
}

/// One running forwarded request; dropping it counts the request out.
struct ServingGuard(Arc<Serving>);

impl Drop for ServingGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The peer-link limits: the handshake caps and deadlines from the configuration, pings at the
/// Raft heartbeat interval and silence for one base election timeout, the rest as the
/// transport's defaults. A broker whose link is silent that long is reported down to quiesced
/// replicas, which then elect as soon as an unquiesced group would have.
fn peer_limits(peer: &PeerConfig, raft: &RaftConfig) -> PeerLimits {
    let handshakes = &peer.handshakes;
    let heartbeat_ms = raft.tick_ms * u64::from(raft.heartbeat_interval_ticks);
    let election_ms = raft.tick_ms * u64::from(raft.election_timeout_ticks);
    PeerLimits {
        ping_interval_ms: heartbeat_ms,
        silence_timeout_ms: election_ms.max(2 * heartbeat_ms),
        handshakes_max: handshakes.handshakes_max,
        handshakes_per_source_max: handshakes.handshakes_per_source_max,
        handshakes_unlisted_max: handshakes.handshakes_unlisted_max,
        hello_timeout_ms: handshakes.hello_timeout_ms,
        handshake_timeout_ms: handshakes.handshake_timeout_ms,
        ..PeerLimits::default()
    }
}

/// Tells the replicas that depend on a broker when this broker's link to it goes down: every
/// follower it leads (which campaigns early, `RawNode::leader_lost`), and quiesced groups this
/// broker leads with it as a member (which wake).
async fn wake_on_link_loss(
    mut downs: watch::Receiver<HashMap<NodeId, u64>>,
    controller: ReplicaHandle<MetadataMachine>,
    registry: Arc<Registry>,
) {
    let mut seen = downs.borrow_and_update().clone();
    while downs.changed().await.is_ok() {
        let now = downs.borrow_and_update().clone();
        for (peer, count) in &now {
            if seen.get(peer) == Some(count) {
                continue;
            }
            let peer = *peer;
            // A follower of the lost broker (quiesced or not: it campaigns early), or a
            // quiesced leader with it as a member (it wakes).
            let depends = |status: &ReplicaStatus| {
                (!status.is_leader && status.leader == Some(peer))
                    || (status.quiesced
                        && status.is_leader
                        && (status.voters.contains(&peer) || status.learners.contains(&peer)))
            };
            if depends(&controller.status.borrow()) {
                controller.addr.do_send(PeerDown(peer));
            }
            registry.notify(depends, || PeerDown(peer));
        }
        seen = now;
    }
}

async fn route_inbound(
    mut inbound: mpsc::Receiver<Message>,
    controller: ReplicaHandle<MetadataMachine>,
    registry: Arc<Registry>,
) {
    while let Some(message) = inbound.recv().await {
        if message.group == METADATA_GROUP {
            controller.addr.do_send(Inbound(message));
        } else if let Some(handle) = registry.get(message.group) {
            handle.addr.do_send(Inbound(message));
        }
        // A message for a replica not started yet is dropped; the leader sends again.
    }
}

async fn serve_requests(
    mut requests: mpsc::Receiver<PeerRequest>,
    network: Arc<PeerNetwork>,
    broker: Arc<OnceLock<Arc<Broker>>>,
    serving: Arc<Serving>,
) {
    while let Some(request) = requests.recv().await {
        let network = network.clone();
        let broker = broker.get().cloned();
        let guard = serving.enter();
        actix_web::rt::spawn(async move {
            let (answer, held) = match (broker, &guard) {
                (Some(broker), Some(_)) => {
                    let (answer, held) =
                        broker.serve_forwarded(request.from.0, &request.body).await;
                    (answer, Some(Box::new(held) as Hold))
                }
                (None, _) => (unavailable_answer("the broker is starting"), None),
                (_, None) => (unavailable_answer("the broker is stopping"), None),
            };
            network.respond_holding(request.from, request.id, answer, held);
            drop(guard);
        });
    }
}

/// The controller's applied state once the controller replica runs.
pub type ControllerView = Arc<OnceLock<watch::Receiver<Arc<MetadataState>>>>;

/// Who a replica may follow when its configuration does not list the sender: a broker the
/// controller assigns to the group (`cluster::reconcile::is_assigned`), and for the controller
/// group also a broker of `cluster.brokers`, since a joining broker's controller replica knows no
/// configuration and its applied state names no broker until the leader's snapshot arrives.
pub fn replica_directory(config: &Config, view: ControllerView) -> ReplicaDirectory {
    let contacts: Vec<u64> = config.cluster.brokers.iter().map(|(id, _)| *id).collect();
    Arc::new(move |group: GroupId, node: NodeId| {
        if group == METADATA_GROUP && contacts.contains(&node.0) {
            return true;
        }
        view.get()
            .is_some_and(|view| is_assigned(&view.borrow(), group, node))
    })
}

/// Keeps the network's peer list equal to the registered brokers (plus the founders).
pub async fn follow_brokers(
    network: Arc<PeerNetwork>,
    founders: Vec<(u64, PeerAddress)>,
    mut view: watch::Receiver<Arc<MetadataState>>,
) {
    let mut current: Option<HashMap<NodeId, PeerAddress>> = None;
    loop {
        let state = view.borrow_and_update().clone();
        let mut peers: HashMap<NodeId, PeerAddress> = founders
            .iter()
            .map(|(id, address)| (NodeId(*id), address.clone()))
            .collect();
        for broker in state.brokers.values() {
            match broker.peer.parse::<PeerAddress>() {
                Ok(address) => {
                    peers.insert(NodeId(broker.id), address);
                }
                Err(_) => {
                    tracing::warn!(broker = broker.id, peer = %broker.peer, "bad peer address")
                }
            }
        }
        if current.as_ref() != Some(&peers) {
            network.set_peers(peers.clone());
            current = Some(peers);
        }
        if view.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_gate_refuses_new_requests_and_waits_for_running_ones() {
        let serving = Arc::new(Serving::default());
        let running = serving.enter().expect("open gate admits");
        let closing = {
            let serving = serving.clone();
            tokio::spawn(async move { serving.close(Duration::from_secs(30)).await })
        };
        // The close waits while a request runs; a request arriving now is refused.
        tokio::time::timeout(Duration::from_secs(5), async {
            while !serving.closed.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("close marks the gate closed");
        assert!(serving.enter().is_none(), "a closed gate admits nothing");
        assert!(!closing.is_finished(), "close returned while a request ran");
        drop(running);
        let still = tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .expect("close returns once the running request ends")
            .expect("close task");
        assert_eq!(still, 0);
    }

    #[tokio::test]
    async fn close_gives_up_at_its_deadline_and_counts_what_still_runs() {
        let serving = Arc::new(Serving::default());
        let _running = serving.enter().expect("open gate admits");
        assert_eq!(serving.close(Duration::from_millis(50)).await, 1);
    }
}
