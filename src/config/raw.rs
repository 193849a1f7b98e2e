//! The configuration exactly as written in TOML, before validation.
//!
//! Every section and key has a default, so an empty file is a valid input; unknown keys
//! are refused (`deny_unknown_fields`) so a typo fails loudly instead of being ignored.
//! Values are kept as written (paths and addresses as strings) so validation can name the
//! key and quote the value.

use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub broker: RawBroker,
    pub http: RawHttp,
    pub peer: RawPeer,
    pub auth: RawAuth,
    pub storage: RawStorage,
    pub raft: RawRaft,
    pub topics: RawTopics,
    pub cluster: RawCluster,
    pub limits: RawLimits,
    pub durable_streams: RawDurableStreams,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBroker {
    pub id: u64,
    pub id_from_hostname: bool,
    pub data_dir: String,
    pub rack: Option<String>,
}

impl Default for RawBroker {
    fn default() -> Self {
        RawBroker {
            id: 1,
            id_from_hostname: false,
            data_dir: "data".to_string(),
            rack: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    pub advertise: Option<String>,
    pub tls: bool,
    pub plain_on_any_address: bool,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub workers: u64,
    #[serde(with = "super::units::bytes")]
    pub body_bytes_max: u64,
    pub records_per_batch_max: u64,
    #[serde(with = "super::units::bytes")]
    pub record_bytes_max: u64,
    #[serde(with = "super::units::bytes")]
    pub fetch_bytes_max: u64,
    pub fetch_records_max: u64,
    pub wait_ms_max: u64,
    pub connections_max: u64,
    pub connections_per_source_max: u64,
    pub hello_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
    pub request_head_timeout_ms: u64,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8441".to_string(),
            advertise: None,
            tls: true,
            plain_on_any_address: false,
            cert: None,
            key: None,
            workers: 2,
            body_bytes_max: 8 * MIB,
            records_per_batch_max: 10_000,
            record_bytes_max: MIB,
            fetch_bytes_max: 8 * MIB,
            fetch_records_max: 10_000,
            wait_ms_max: 30_000,
            connections_max: 10_000,
            connections_per_source_max: 256,
            hello_timeout_ms: 2_000,
            handshake_timeout_ms: 2_000,
            request_head_timeout_ms: 5_000,
        }
    }
}

/// The peer link is off when `listen`, `ca_cert`, `cert` and `key` are all absent, and needs
/// all four otherwise. The handshake limits have defaults either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPeer {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub ca_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub handshakes_max: u64,
    pub handshakes_per_source_max: u64,
    pub handshakes_unlisted_max: u64,
    pub hello_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
}

impl Default for RawPeer {
    fn default() -> Self {
        RawPeer {
            listen: None,
            advertise: None,
            ca_cert: None,
            cert: None,
            key: None,
            handshakes_max: 64,
            handshakes_per_source_max: 8,
            handshakes_unlisted_max: 32,
            hello_timeout_ms: 2_000,
            handshake_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAuth {
    pub issuer: String,
    pub audience: String,
    pub token_ttl_s: u64,
    pub leeway_s: u64,
    #[serde(with = "super::units::bytes")]
    pub token_bytes_max: u64,
    pub admin_username: String,
    pub login_failures_max: u64,
    pub login_window_s: u64,
    pub login_tracked_keys_max: u64,
    pub password_checks_max: u64,
    pub failure_audit_interval_ms: u64,
    pub failure_audit_sources_max: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            issuer: "palisade".to_string(),
            audience: "palisade".to_string(),
            token_ttl_s: 3600,
            leeway_s: 30,
            token_bytes_max: 8192,
            admin_username: "admin".to_string(),
            login_failures_max: 5,
            login_window_s: 60,
            login_tracked_keys_max: 100_000,
            password_checks_max: 4,
            failure_audit_interval_ms: 10_000,
            failure_audit_sources_max: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStorage {
    pub requests_per_commit_max: u64,
    #[serde(with = "super::units::bytes")]
    pub cache_bytes_max: u64,
    #[serde(with = "super::units::bytes")]
    pub writer_queue_bytes_max: u64,
    #[serde(with = "super::units::bytes")]
    pub disk_free_bytes_min: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            requests_per_commit_max: 1024,
            cache_bytes_max: 16 * MIB,
            writer_queue_bytes_max: 64 * MIB,
            disk_free_bytes_min: 256 * MIB,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRaft {
    pub tick_ms: u64,
    pub election_timeout_ticks: u64,
    pub heartbeat_interval_ticks: u64,
    pub arbiters: u64,
    pub quiesce: bool,
}

impl Default for RawRaft {
    fn default() -> Self {
        RawRaft {
            tick_ms: 100,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 2,
            arbiters: 0,
            quiesce: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTopics {
    pub default_partitions: u64,
    pub default_retention_ms: u64,
    #[serde(with = "super::units::optional_bytes")]
    pub default_retention_bytes: Option<u64>,
    pub partitions_max: u64,
    pub retention_check_ms: u64,
    pub audit_retention_ms: u64,
    #[serde(with = "super::units::bytes")]
    pub audit_retention_bytes: u64,
}

impl Default for RawTopics {
    fn default() -> Self {
        RawTopics {
            default_partitions: 3,
            default_retention_ms: 7 * 24 * 3600 * 1000,
            default_retention_bytes: None,
            partitions_max: 1024,
            retention_check_ms: 30_000,
            audit_retention_ms: 90 * 24 * 3600 * 1000,
            audit_retention_bytes: 1024 * MIB,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCluster {
    /// The founding brokers as `id@host:port` (peer addresses), comma separated.
    pub brokers: String,
    pub join: bool,
    /// Join (as with `join`) when `brokers` does not name this broker; found when it does.
    pub join_when_unlisted: bool,
    pub controller_voters: u64,
    pub down_timeout_ms: u64,
    pub moves_max: u64,
    pub balance_interval_ms: u64,
    pub forward_timeout_ms: u64,
    pub drain_timeout_ms: u64,
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster {
            brokers: String::new(),
            join: false,
            join_when_unlisted: false,
            controller_voters: 3,
            down_timeout_ms: 30_000,
            moves_max: 2,
            balance_interval_ms: 2_000,
            forward_timeout_ms: 10_000,
            drain_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimits {
    pub streams_max: u64,
    pub streams_per_principal_max: u64,
    pub stream_tickets_max: u64,
    pub stream_keepalive_ms: u64,
    #[serde(with = "super::units::bytes")]
    pub body_bytes_in_flight_max: u64,
    #[serde(with = "super::units::bytes")]
    pub fetch_bytes_in_flight_max: u64,
    pub budget_wait_ms: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            streams_max: 1000,
            streams_per_principal_max: 100,
            stream_tickets_max: 10_000,
            stream_keepalive_ms: 15_000,
            body_bytes_in_flight_max: 16 * MIB,
            fetch_bytes_in_flight_max: 16 * MIB,
            budget_wait_ms: 2_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDurableStreams {
    /// Empty: a request under `/ds` needs a bearer token like any other.
    pub anonymous_principal: String,
    pub long_poll_ms: u64,
    pub sse_connection_ms: u64,
    pub streams_cached_max: u64,
}

impl Default for RawDurableStreams {
    fn default() -> Self {
        RawDurableStreams {
            anonymous_principal: String::new(),
            long_poll_ms: 20_000,
            sse_connection_ms: 60_000,
            streams_cached_max: 1024,
        }
    }
}
