//! Broker configuration: TOML file → `PALISADE_*` environment overrides → validation →
//! typed [`Config`].
//!
//! Owns reading the config file, the list of keys and their defaults ([`raw`]), the
//! environment overrides ([`env`]) and the checks ([`validate`]). A bad value stops start-up
//! with a [`ConfigError`] naming the key (`section.key`), the value and what is allowed.
//! Relative paths in the file resolve against the file's directory. No other module reads
//! configuration files or `PALISADE_*` variables; this one reads nothing else, except the host
//! name when `broker.id_from_hostname` is set ([`pod`]).

mod env;
pub mod pod;
mod raw;
pub mod units;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::address::PeerAddress;

pub use env::{ENV_PREFIX, KEYS};
pub use raw::RawConfig;

/// A validated configuration. Paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    /// The cluster link; `None` when no `[peer]` key is set (a single broker).
    pub peer: Option<PeerConfig>,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub raft: RaftConfig,
    pub topics: TopicsConfig,
    pub cluster: ClusterConfig,
    pub limits: LimitsConfig,
    pub durable_streams: DurableStreamsConfig,
}

/// The Durable Streams protocol served under `/ds` (`docs/durable-streams.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableStreamsConfig {
    /// The principal a request under `/ds` without an Authorization header acts as; `None`:
    /// such a request is answered 401 like any other.
    pub anonymous_principal: Option<String>,
    /// How long a long-poll read waits for data before it is answered 204.
    pub long_poll_ms: u64,
    /// How long one SSE response stays open before the server ends it (the client reconnects).
    pub sse_connection_ms: u64,
    /// Streams whose derived state (content type, closure, producers) this broker keeps.
    pub streams_cached_max: usize,
}

/// How this broker finds and joins its cluster, and how the balancer behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The founding brokers and their peer addresses, sorted by id. Empty for a single broker
    /// without a `[peer]` section; otherwise it contains this broker unless `join` is set.
    /// A DNS name is resolved at every dial.
    pub brokers: Vec<(u64, PeerAddress)>,
    /// This broker joins a running cluster (an admin registers it) instead of founding one:
    /// `cluster.join`, or `cluster.join_when_unlisted` with this broker not in `brokers`.
    pub join: bool,
    /// How many founding brokers (lowest ids) vote in the controller; the rest are learners.
    pub controller_voters: usize,
    pub down_timeout_ms: u64,
    pub moves_max: usize,
    pub balance_interval_ms: u64,
    /// How long a request forwarded to a leader broker may take, elections included.
    pub forward_timeout_ms: u64,
    /// How long a stopping broker hands its leaderships away before it stops anyway.
    pub drain_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Stable broker id, at least 1; also named in the broker's certificate.
    pub id: u64,
    pub data_dir: PathBuf,
    /// Failure domain used to spread replicas; `None` when racks are not used.
    pub rack: Option<String>,
}

/// How the client API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpTransport {
    /// HTTPS with this certificate chain and private key (PEM files).
    Tls { cert: PathBuf, key: PathBuf },
    /// Plain HTTP; only when `http.tls = false` is set explicitly.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// The `host:port` in this broker's client URL as other brokers and clients see it (the
    /// cluster view, redirects); `None`: the bound listen address.
    pub advertise: Option<PeerAddress>,
    pub transport: HttpTransport,
    pub workers: usize,
    pub body_bytes_max: usize,
    pub records_per_batch_max: usize,
    /// At most `body_bytes_max`.
    pub record_bytes_max: usize,
    /// At least `record_bytes_max`, so every record can be fetched.
    pub fetch_bytes_max: usize,
    pub fetch_records_max: usize,
    pub wait_ms_max: u64,
    /// Open client connections at once, all sources together; one more is closed at once.
    pub connections_max: usize,
    /// Open client connections at once from one source address (an IPv6 /64). At most
    /// `connections_max`.
    pub connections_per_source_max: usize,
    /// Deadline for a connection's first bytes, from its accept.
    pub hello_timeout_ms: u64,
    /// Deadline for a client's TLS handshake, once its first bytes arrived.
    pub handshake_timeout_ms: u64,
    /// Deadline for the head of a connection's first request, once the connection is set up.
    pub request_head_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub listen: SocketAddr,
    /// Where other brokers dial this one, registered with the controller; `listen` by default.
    /// Never an unspecified address (0.0.0.0, ::).
    pub advertise: PeerAddress,
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub handshakes: PeerHandshakes,
}

/// Caps and deadlines of inbound peer handshakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHandshakes {
    /// Handshakes in progress at once, all sources together.
    pub handshakes_max: usize,
    /// Handshakes in progress at once from one source address. At most `handshakes_max`.
    pub handshakes_per_source_max: usize,
    /// Handshakes in progress at once from addresses that are no peer's address, together; the
    /// rest of `handshakes_max` is kept for peers. At most `handshakes_max`.
    pub handshakes_unlisted_max: usize,
    /// Deadline for an inbound connection's first bytes. At most `handshake_timeout_ms`.
    pub hello_timeout_ms: u64,
    /// Deadline for a whole handshake, inbound or dialled.
    pub handshake_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub token_ttl_s: u64,
    pub leeway_s: u64,
    pub token_bytes_max: usize,
    /// A valid user name; the bootstrap superuser.
    pub admin_username: String,
    pub login_failures_max: u32,
    pub login_window_s: u64,
    pub login_tracked_keys_max: usize,
    /// Argon2 password checks and hashes running at once on this broker.
    pub password_checks_max: usize,
    /// Interval over which unauthenticated failures of one source are aggregated.
    pub failure_audit_interval_ms: u64,
    /// Sources tracked for aggregation; more share one overflow aggregate.
    pub failure_audit_sources_max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub requests_per_commit_max: usize,
    /// The database's page cache (redb's read cache and write buffer), in bytes.
    pub cache_bytes_max: usize,
    /// Bytes of write batches queued for the storage writer or being committed; a replica
    /// that would pass it waits for commits.
    pub writer_queue_bytes_max: u64,
    /// Client writes are refused (507) while the data directory's file system has fewer bytes
    /// free; 0 turns the check off.
    pub disk_free_bytes_min: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    pub tick_ms: u64,
    /// Greater than `heartbeat_interval_ticks`.
    pub election_timeout_ticks: u32,
    pub heartbeat_interval_ticks: u32,
    /// Threads for partition actors; `arbiters = 0` in the file resolves to the core count.
    pub arbiters: usize,
    /// Idle Raft groups stop their heartbeats and election clocks (`raft::quiesce`).
    pub quiesce: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicsConfig {
    /// At most `partitions_max`.
    pub default_partitions: u32,
    pub default_retention_ms: u64,
    /// `None`: no size limit.
    pub default_retention_bytes: Option<u64>,
    pub partitions_max: u32,
    pub retention_check_ms: u64,
    /// Age and size bounds of the `__audit` topic, set when the cluster is bootstrapped.
    pub audit_retention_ms: u64,
    pub audit_retention_bytes: u64,
}

/// Bounds on long-lived client work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Most Server-Sent Events streams open at once on this broker; more are answered 429.
    pub streams_max: usize,
    /// Most of those one user holds at once; more are answered 429.
    pub streams_per_principal_max: usize,
    /// Stream tickets issued and not yet used or expired on this broker; more are answered 429.
    pub stream_tickets_max: usize,
    /// Longest silence on an open stream before a keep-alive comment is sent.
    pub stream_keepalive_ms: u64,
    /// Request bodies (as sent) this broker reads and handles at once, in bytes.
    pub body_bytes_in_flight_max: u64,
    /// Fetch answers this broker reads and sends at once, in bytes.
    pub fetch_bytes_in_flight_max: u64,
    /// How long a request waits for either budget before a 503.
    pub budget_wait_ms: u64,
}

/// Why the configuration was refused. Messages name the key as `section.key`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}` = {value}{origin} is invalid: allowed is {allowed}")]
    Invalid {
        key: String,
        value: String,
        /// Empty, or ` (from PALISADE_...)` when the value came from the environment.
        origin: String,
        allowed: String,
    },
    #[error("config key `{key}` is required {why}")]
    Missing { key: String, why: String },
    #[error("environment variable {variable} is invalid: {message}")]
    Env { variable: String, message: String },
    #[error("cannot determine the current directory: {0}")]
    CurrentDir(std::io::Error),
}

impl ConfigError {
    /// The `section.key` the error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } | ConfigError::Missing { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Loads the file at `path` (or only defaults when `None`), applies the process's
/// `PALISADE_*` variables and validates.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut variables = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Env {
            variable: name.to_string(),
            message: "value is not UTF-8".to_string(),
        })?;
        variables.push((name.to_string(), value));
    }
    load_with_env(path, variables)
}

/// Like [`load`], with the environment given explicitly (tests use this).
pub fn load_with_env(
    path: Option<&Path>,
    variables: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    load_with_env_and_hostname(path, variables, pod::system_hostname)
}

/// Like [`load_with_env`], with the host name (read only when `broker.id_from_hostname` is set)
/// given explicitly.
pub fn load_with_env_and_hostname(
    path: Option<&Path>,
    variables: impl IntoIterator<Item = (String, String)>,
    hostname: impl FnOnce() -> std::io::Result<String>,
) -> Result<Config, ConfigError> {
    let current_dir = std::env::current_dir().map_err(ConfigError::CurrentDir)?;
    let (mut raw, base_dir) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let raw = parse(&text).map_err(|message| ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            })?;
            let parent = path.parent().unwrap_or(Path::new(""));
            (raw, current_dir.join(parent))
        }
        None => (RawConfig::default(), current_dir.clone()),
    };
    let from_env = env::apply_all(&mut raw, variables, &current_dir)?;
    pod::apply_hostname(&mut raw, hostname)?;
    validate::validate(&raw, &base_dir, &from_env)
}

/// Parses TOML text; the message carries the line, the key and what was expected.
pub fn parse(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|error| error.to_string())
}

impl RawConfig {
    /// Checks every key and builds the typed configuration. Relative paths resolve against
    /// `base_dir`.
    pub fn validate(&self, base_dir: &Path) -> Result<Config, ConfigError> {
        validate::validate(self, base_dir, &[])
    }
}
