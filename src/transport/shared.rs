//! State shared by the peer network's acceptor and every link task: identity, limits, TLS
//! connector, the sinks for inbound messages and requests, pending calls and counters.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Instant;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsConnector;

use crate::address::PeerAddress;
use crate::raft::{Message, NodeId};
use crate::transport::limits::PeerLimits;
use crate::transport::rpc::{Calls, PeerRequest};
use crate::transport::stats::Counters;

/// State shared by the acceptor and every link task.
pub(crate) struct Shared {
    pub(crate) broker: NodeId,
    pub(crate) limits: PeerLimits,
    pub(crate) connector: TlsConnector,
    pub(crate) inbound: mpsc::Sender<Message>,
    pub(crate) requests: mpsc::Sender<PeerRequest>,
    pub(crate) calls: Calls,
    pub(crate) counters: Counters,
    /// The runtime that started the network; link tasks run there whoever adds a peer.
    pub(crate) runtime: Handle,
    pub(crate) peers: RwLock<HashMap<NodeId, PeerAddress>>,
    /// The IP addresses each peer's DNS name resolved to at its last dial; a peer listed by
    /// name counts as listed (for the handshake slots) from these addresses.
    pub(crate) resolved: Mutex<HashMap<NodeId, Vec<IpAddr>>>,
    /// Peers with a live connection right now.
    pub(crate) connected: Mutex<HashSet<NodeId>>,
    /// When a frame (any frame, pings included) last arrived from each peer.
    pub(crate) heard: Mutex<HashMap<NodeId, Instant>>,
    /// How many times each peer's connection went down; bumped after `connected` is updated.
    pub(crate) downs: watch::Sender<HashMap<NodeId, u64>>,
}

impl Shared {
    pub(crate) fn heard_from(&self, peer: NodeId) {
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        heard.insert(peer, Instant::now());
    }

    /// The current address of `peer`, if it is one.
    pub(crate) fn address_of(&self, peer: NodeId) -> Option<PeerAddress> {
        let peers = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        peers.get(&peer).cloned()
    }

    pub(crate) fn set_resolved(&self, peer: NodeId, addresses: Vec<IpAddr>) {
        let mut resolved = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
        resolved.insert(peer, addresses);
    }

    /// Whether `address` is the address of a peer right now (IPv4 mapped into IPv6 counts as
    /// IPv4). The operating system picks the source address of a dial: a peer whose connections
    /// come from another address than the one listed for it is served from the unlisted part.
    /// A peer listed by DNS name is known by what the name resolved to at this broker's last
    /// dial to it; before the first dial (or after it moved) it is served from the unlisted part.
    pub(crate) fn is_peer_address(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        let peers = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        let listed = peers
            .values()
            .filter_map(PeerAddress::ip)
            .any(|ip| ip.to_canonical() == address);
        drop(peers);
        let resolved = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
        listed
            || resolved
                .values()
                .flatten()
                .any(|ip| ip.to_canonical() == address)
    }
}
