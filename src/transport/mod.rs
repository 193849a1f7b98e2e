//! Transport: TLS material and configuration, and the mutual-TLS peer links between brokers.
//!
//! Owns certificate generation (`certs`), the rustls configurations built from PEM files
//! (`tls`), the start-up checks that keep a broker's peer and HTTPS identities apart
//! (`identity`), the peer-link wire format (`frame`) and the peer network (`network`, with one
//! `link` per peer). It must not interpret Raft messages or HTTP requests; it only answers
//! "who is the peer" (a broker id bound to its certificate), "is this connection trusted",
//! carries Raft messages to the broker named by their `to`, and carries opaque request and
//! response bodies between brokers (`rpc`).
mod batch;
pub mod certs;
pub mod frame;
pub mod identity;
mod limits;
mod link;
mod network;
mod rpc;
mod shared;
mod stats;
pub mod tls;

pub use batch::Hold;
pub use limits::PeerLimits;
pub use network::{PeerNetwork, PeerNetworkConfig, TransportError};
pub use rpc::{CallError, PeerRequest};
pub use stats::PeerStats;
