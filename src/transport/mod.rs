//! Transport: TLS material and configuration for client and peer connections.
//!
//! Owns certificate generation (`certs`) and the rustls configurations built from PEM files
//! (`tls`). It must not interpret Raft messages or HTTP requests; it only answers "who is the
//! peer" (a broker id bound to its certificate) and "is this connection trusted".
pub mod certs;
pub mod tls;
