//! Checks of every key, section by section, producing the typed configuration.
//!
//! Ranges are wide enough for any real deployment and narrow enough to catch unit mistakes
//! (seconds where milliseconds were meant) and values that would exhaust memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::raw::{
    RawAuth, RawCluster, RawConfig, RawDurableStreams, RawHttp, RawLimits, RawPeer, RawRaft,
    RawTopics,
};
use super::{
    AuthConfig, BrokerConfig, ClusterConfig, Config, ConfigError, DurableStreamsConfig, HttpConfig,
    HttpTransport, LimitsConfig, PeerConfig, PeerHandshakes, RaftConfig, StorageConfig,
    TopicsConfig,
};
use crate::address::PeerAddress;
use crate::names::{self, NameKind};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// Upper bound of `http.body_bytes_max`: a peer frame (16 MiB) less 1 MiB for the encoding and
/// the frame's headers, so the records of any accepted body fit one replicated entry.
pub const BODY_BYTES_MAX: u64 = 15 * MIB;
const DAY_S: u64 = 24 * 3600;
const DAY_MS: u64 = DAY_S * 1000;

/// Knows which keys came from the environment, to say so in errors.
struct Checker<'a> {
    base_dir: &'a Path,
    from_env: &'a [(String, String)],
}

impl Checker<'_> {
    fn invalid(&self, key: &str, value: impl std::fmt::Display, allowed: &str) -> ConfigError {
        let origin = self
            .from_env
            .iter()
            .rev()
            .find(|(env_key, _)| env_key == key)
            .map(|(_, variable)| format!(" (from {variable})"))
            .unwrap_or_default();
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            origin,
            allowed: allowed.to_string(),
        }
    }

    /// `value` within `minimum..=maximum`, described in `unit` for the error message.
    fn range(&self, key: &str, value: u64, minimum: u64, maximum: u64) -> Result<u64, ConfigError> {
        if (minimum..=maximum).contains(&value) {
            Ok(value)
        } else {
            let allowed = format!("an integer from {minimum} to {maximum}");
            Err(self.invalid(key, value, &allowed))
        }
    }

    fn size(
        &self,
        key: &str,
        value: u64,
        minimum: u64,
        maximum: u64,
    ) -> Result<usize, ConfigError> {
        let value = self.range(key, value, minimum, maximum)?;
        usize::try_from(value).map_err(|_| self.invalid(key, value, "a value that fits in memory"))
    }

    /// `value` from `minimum` to the value of another key, `bound_key` = `bound`.
    fn up_to(
        &self,
        key: &str,
        value: u64,
        minimum: u64,
        (bound_key, bound): (&str, u64),
    ) -> Result<u64, ConfigError> {
        if (minimum..=bound).contains(&value) {
            Ok(value)
        } else {
            let allowed = format!("an integer from {minimum} to {bound_key} ({bound})");
            Err(self.invalid(key, value, &allowed))
        }
    }

    fn small(&self, key: &str, value: u64, minimum: u64, maximum: u64) -> Result<u32, ConfigError> {
        let value = self.range(key, value, minimum, maximum)?;
        u32::try_from(value).map_err(|_| self.invalid(key, value, "a 32-bit integer"))
    }

    fn address(&self, key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
        value.parse().map_err(|_| {
            self.invalid(
                key,
                format!("{value:?}"),
                "an IP address and port, such as \"127.0.0.1:8441\" or \"[::1]:8441\"",
            )
        })
    }

    fn peer_address(&self, key: &str, value: &str) -> Result<PeerAddress, ConfigError> {
        value.parse().map_err(|_| {
            self.invalid(
                key,
                format!("{value:?}"),
                "host:port, the host an IP address or a DNS name, such as \"10.0.0.1:9441\" \
                 or \"palisade-0.palisade.default.svc.cluster.local:9441\"",
            )
        })
    }

    fn path(&self, key: &str, value: &str) -> Result<PathBuf, ConfigError> {
        if value.is_empty() {
            return Err(self.invalid(key, "\"\"", "a file or directory path"));
        }
        Ok(self.base_dir.join(value))
    }

    fn text(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let printable = value.chars().all(|character| !character.is_control());
        if value.is_empty() || value.len() > 256 || !printable {
            return Err(self.invalid(key, format!("{value:?}"), "1 to 256 printable characters"));
        }
        Ok(value.to_string())
    }
}

pub(super) fn validate(
    raw: &RawConfig,
    base_dir: &Path,
    from_env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let checker = Checker { base_dir, from_env };
    let broker = BrokerConfig {
        id: checker.range("broker.id", raw.broker.id, 1, u64::from(u32::MAX))?,
        data_dir: checker.path("broker.data_dir", &raw.broker.data_dir)?,
        rack: match &raw.broker.rack {
            None => None,
            Some(rack) => Some(rack_name(&checker, rack)?),
        },
    };
    let http = http(&checker, &raw.http)?;
    let peer = peer(&checker, &raw.peer)?;
    if let Some(peer) = &peer {
        if peer.listen == http.listen && peer.listen.port() != 0 {
            return Err(checker.invalid(
                "peer.listen",
                peer.listen,
                "an address different from http.listen",
            ));
        }
    }
    let storage = StorageConfig {
        requests_per_commit_max: checker.size(
            "storage.requests_per_commit_max",
            raw.storage.requests_per_commit_max,
            1,
            65_536,
        )?,
        cache_bytes_max: checker.size(
            "storage.cache_bytes_max",
            raw.storage.cache_bytes_max,
            MIB,
            1024 * 1024 * MIB,
        )?,
        writer_queue_bytes_max: checker.size(
            "storage.writer_queue_bytes_max",
            raw.storage.writer_queue_bytes_max,
            MIB,
            64 * 1024 * MIB,
        )? as u64,
        disk_free_bytes_min: checker.size(
            "storage.disk_free_bytes_min",
            raw.storage.disk_free_bytes_min,
            0,
            1024 * 1024 * MIB,
        )? as u64,
    };
    let cluster = cluster(&checker, &raw.cluster, broker.id, peer.as_ref())?;
    let limits = limits(&checker, &raw.limits, &http)?;
    Ok(Config {
        broker,
        http,
        peer,
        cluster,
        auth: auth(&checker, &raw.auth)?,
        storage,
        raft: raft(&checker, &raw.raft)?,
        topics: topics(&checker, &raw.topics)?,
        limits,
        durable_streams: durable_streams(&checker, &raw.durable_streams)?,
    })
}

fn durable_streams(
    checker: &Checker<'_>,
    raw: &RawDurableStreams,
) -> Result<DurableStreamsConfig, ConfigError> {
    let anonymous_principal = match raw.anonymous_principal.as_str() {
        "" => None,
        name => match names::validate(NameKind::User, name) {
            Ok(()) => Some(name.to_string()),
            Err(_) => {
                return Err(checker.invalid(
                    "durable_streams.anonymous_principal",
                    format!("{name:?}"),
                    "a user name (A-Z a-z 0-9 . _ -), or empty for none",
                ))
            }
        },
    };
    Ok(DurableStreamsConfig {
        anonymous_principal,
        long_poll_ms: checker.range(
            "durable_streams.long_poll_ms",
            raw.long_poll_ms,
            10,
            300_000,
        )?,
        sse_connection_ms: checker.range(
            "durable_streams.sse_connection_ms",
            raw.sse_connection_ms,
            100,
            3_600_000,
        )?,
        streams_cached_max: checker.size(
            "durable_streams.streams_cached_max",
            raw.streams_cached_max,
            1,
            1_000_000,
        )?,
    })
}

fn limits(
    checker: &Checker<'_>,
    raw: &RawLimits,
    http: &HttpConfig,
) -> Result<LimitsConfig, ConfigError> {
    Ok(LimitsConfig {
        streams_max: checker.size("limits.streams_max", raw.streams_max, 1, 1_000_000)?,
        streams_per_principal_max: checker.size(
            "limits.streams_per_principal_max",
            raw.streams_per_principal_max,
            1,
            1_000_000,
        )?,
        stream_tickets_max: checker.size(
            "limits.stream_tickets_max",
            raw.stream_tickets_max,
            1,
            1_000_000,
        )?,
        stream_keepalive_ms: checker.range(
            "limits.stream_keepalive_ms",
            raw.stream_keepalive_ms,
            100,
            300_000,
        )?,
        body_bytes_in_flight_max: checker.range(
            "limits.body_bytes_in_flight_max",
            raw.body_bytes_in_flight_max,
            http.body_bytes_max as u64,
            1024 * GIB,
        )?,
        fetch_bytes_in_flight_max: checker.range(
            "limits.fetch_bytes_in_flight_max",
            raw.fetch_bytes_in_flight_max,
            http.record_bytes_max as u64,
            1024 * GIB,
        )?,
        budget_wait_ms: checker.range("limits.budget_wait_ms", raw.budget_wait_ms, 1, 60_000)?,
    })
}

fn rack_name(checker: &Checker<'_>, rack: &str) -> Result<String, ConfigError> {
    match names::validate(NameKind::Group, rack) {
        Ok(()) if rack.len() <= 64 => Ok(rack.to_string()),
        _ => Err(checker.invalid(
            "broker.rack",
            format!("{rack:?}"),
            "1 to 64 characters from A-Z a-z 0-9 . _ -, or no rack key",
        )),
    }
}

fn http(checker: &Checker<'_>, raw: &RawHttp) -> Result<HttpConfig, ConfigError> {
    let transport = if raw.tls {
        let why = "when http.tls = true (set http.tls = false for plain HTTP in development)";
        let missing = |key: &str| ConfigError::Missing {
            key: key.to_string(),
            why: why.to_string(),
        };
        let cert = raw.cert.as_deref().ok_or_else(|| missing("http.cert"))?;
        let key = raw.key.as_deref().ok_or_else(|| missing("http.key"))?;
        HttpTransport::Tls {
            cert: checker.path("http.cert", cert)?,
            key: checker.path("http.key", key)?,
        }
    } else {
        // Plain HTTP carries passwords and tokens in the clear: only where no one else can
        // listen, unless the operator says otherwise on purpose (a TLS-terminating proxy).
        let listen = checker.address("http.listen", &raw.listen)?;
        if !listen.ip().is_loopback() && !raw.plain_on_any_address {
            return Err(checker.invalid(
                "http.listen",
                listen,
                "a loopback address when http.tls = false (set http.plain_on_any_address = true \
                 to serve plain HTTP beyond this host)",
            ));
        }
        HttpTransport::Plain
    };
    // A produce body becomes one Raft entry per partition, and an entry must fit one peer frame
    // (16 MiB, less room for headers); a larger body could make an entry no follower receives.
    let body_bytes_max = checker.size(
        "http.body_bytes_max",
        raw.body_bytes_max,
        KIB,
        BODY_BYTES_MAX,
    )?;
    let record_bytes_max = checker.size("http.record_bytes_max", raw.record_bytes_max, 1, GIB)?;
    if record_bytes_max > body_bytes_max {
        let allowed = format!("at most http.body_bytes_max ({body_bytes_max})");
        return Err(checker.invalid("http.record_bytes_max", record_bytes_max, &allowed));
    }
    let fetch_bytes_max = checker.size("http.fetch_bytes_max", raw.fetch_bytes_max, KIB, GIB)?;
    if fetch_bytes_max < record_bytes_max {
        let allowed = format!("at least http.record_bytes_max ({record_bytes_max})");
        return Err(checker.invalid("http.fetch_bytes_max", fetch_bytes_max, &allowed));
    }
    let connections_max =
        checker.size("http.connections_max", raw.connections_max, 1, 1_000_000)?;
    let advertise = match raw.advertise.as_deref() {
        Some(advertise) => Some(checker.peer_address("http.advertise", advertise)?),
        None => None,
    };
    Ok(HttpConfig {
        listen: checker.address("http.listen", &raw.listen)?,
        advertise,
        transport,
        workers: checker.size("http.workers", raw.workers, 1, 1024)?,
        body_bytes_max,
        records_per_batch_max: checker.size(
            "http.records_per_batch_max",
            raw.records_per_batch_max,
            1,
            1_000_000,
        )?,
        record_bytes_max,
        fetch_bytes_max,
        fetch_records_max: checker.size(
            "http.fetch_records_max",
            raw.fetch_records_max,
            1,
            1_000_000,
        )?,
        wait_ms_max: checker.range("http.wait_ms_max", raw.wait_ms_max, 0, 300_000)?,
        connections_max,
        connections_per_source_max: checker.up_to(
            "http.connections_per_source_max",
            raw.connections_per_source_max,
            1,
            ("http.connections_max", connections_max as u64),
        )? as usize, // bounded by `connections_max`, a `usize` already
        hello_timeout_ms: checker.range(
            "http.hello_timeout_ms",
            raw.hello_timeout_ms,
            100,
            300_000,
        )?,
        handshake_timeout_ms: checker.range(
            "http.handshake_timeout_ms",
            raw.handshake_timeout_ms,
            100,
            300_000,
        )?,
        request_head_timeout_ms: checker.range(
            "http.request_head_timeout_ms",
            raw.request_head_timeout_ms,
            100,
            300_000,
        )?,
    })
}

fn peer(checker: &Checker<'_>, raw: &RawPeer) -> Result<Option<PeerConfig>, ConfigError> {
    let fields = [
        ("peer.listen", &raw.listen),
        ("peer.ca_cert", &raw.ca_cert),
        ("peer.cert", &raw.cert),
        ("peer.key", &raw.key),
    ];
    let handshakes = peer_handshakes(checker, raw)?;
    if fields.iter().all(|(_, value)| value.is_none()) {
        if raw.advertise.is_some() {
            return Err(ConfigError::Missing {
                key: "peer.listen".to_string(),
                why: "when peer.advertise is set".to_string(),
            });
        }
        return Ok(None);
    }
    let mut values = Vec::with_capacity(fields.len());
    for (key, value) in fields {
        let value = value.as_deref().ok_or_else(|| ConfigError::Missing {
            key: key.to_string(),
            why: "when any [peer] key is set (set all four or none)".to_string(),
        })?;
        values.push(value);
    }
    let listen = checker.address("peer.listen", values[0])?;
    let advertise = match raw.advertise.as_deref() {
        Some(advertise) => checker.peer_address("peer.advertise", advertise)?,
        None if listen.ip().is_unspecified() => {
            return Err(ConfigError::Missing {
                key: "peer.advertise".to_string(),
                why: format!(
                    "when peer.listen ({listen}) is an unspecified address: other brokers \
                     need an address they can dial"
                ),
            })
        }
        None => listen.into(),
    };
    Ok(Some(PeerConfig {
        listen,
        advertise,
        ca_cert: checker.path("peer.ca_cert", values[1])?,
        cert: checker.path("peer.cert", values[2])?,
        key: checker.path("peer.key", values[3])?,
        handshakes,
    }))
}

fn peer_handshakes(checker: &Checker<'_>, raw: &RawPeer) -> Result<PeerHandshakes, ConfigError> {
    let handshakes_max = checker.size("peer.handshakes_max", raw.handshakes_max, 1, 100_000)?;
    let total = ("peer.handshakes_max", handshakes_max as u64);
    // Bounded by `handshakes_max`, a `usize` already.
    let at_most_total = |key: &str, value: u64| -> Result<usize, ConfigError> {
        Ok(checker.up_to(key, value, 1, total)? as usize)
    };
    let handshake_timeout_ms = checker.range(
        "peer.handshake_timeout_ms",
        raw.handshake_timeout_ms,
        100,
        300_000,
    )?;
    Ok(PeerHandshakes {
        handshakes_max,
        handshakes_per_source_max: at_most_total(
            "peer.handshakes_per_source_max",
            raw.handshakes_per_source_max,
        )?,
        handshakes_unlisted_max: at_most_total(
            "peer.handshakes_unlisted_max",
            raw.handshakes_unlisted_max,
        )?,
        hello_timeout_ms: checker.up_to(
            "peer.hello_timeout_ms",
            raw.hello_timeout_ms,
            100,
            ("peer.handshake_timeout_ms", handshake_timeout_ms),
        )?,
        handshake_timeout_ms,
    })
}

fn auth(checker: &Checker<'_>, raw: &RawAuth) -> Result<AuthConfig, ConfigError> {
    let admin_username = match names::validate(NameKind::User, &raw.admin_username) {
        Ok(()) => raw.admin_username.clone(),
        Err(error) => {
            let value = format!("{:?}", raw.admin_username);
            return Err(checker.invalid("auth.admin_username", value, &error.to_string()));
        }
    };
    Ok(AuthConfig {
        issuer: checker.text("auth.issuer", &raw.issuer)?,
        audience: checker.text("auth.audience", &raw.audience)?,
        token_ttl_s: checker.range("auth.token_ttl_s", raw.token_ttl_s, 60, 7 * DAY_S)?,
        leeway_s: checker.range("auth.leeway_s", raw.leeway_s, 0, 300)?,
        token_bytes_max: checker.size("auth.token_bytes_max", raw.token_bytes_max, 512, 65_536)?,
        admin_username,
        login_failures_max: checker.small(
            "auth.login_failures_max",
            raw.login_failures_max,
            1,
            1000,
        )?,
        login_window_s: checker.range("auth.login_window_s", raw.login_window_s, 1, DAY_S)?,
        login_tracked_keys_max: checker.size(
            "auth.login_tracked_keys_max",
            raw.login_tracked_keys_max,
            100,
            10_000_000,
        )?,
        password_checks_max: checker.size(
            "auth.password_checks_max",
            raw.password_checks_max,
            1,
            256,
        )?,
        failure_audit_interval_ms: checker.range(
            "auth.failure_audit_interval_ms",
            raw.failure_audit_interval_ms,
            100,
            DAY_MS,
        )?,
        failure_audit_sources_max: checker.size(
            "auth.failure_audit_sources_max",
            raw.failure_audit_sources_max,
            1,
            10_000_000,
        )?,
    })
}

fn raft(checker: &Checker<'_>, raw: &RawRaft) -> Result<RaftConfig, ConfigError> {
    let heartbeat_interval_ticks = checker.small(
        "raft.heartbeat_interval_ticks",
        raw.heartbeat_interval_ticks,
        1,
        1000,
    )?;
    let election_timeout_ticks = checker.small(
        "raft.election_timeout_ticks",
        raw.election_timeout_ticks,
        2,
        10_000,
    )?;
    if election_timeout_ticks <= heartbeat_interval_ticks {
        let allowed =
            format!("more than raft.heartbeat_interval_ticks ({heartbeat_interval_ticks})");
        return Err(checker.invalid(
            "raft.election_timeout_ticks",
            election_timeout_ticks,
            &allowed,
        ));
    }
    let arbiters = match checker.size("raft.arbiters", raw.arbiters, 0, 256)? {
        0 => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
        count => count,
    };
    Ok(RaftConfig {
        tick_ms: checker.range("raft.tick_ms", raw.tick_ms, 1, 10_000)?,
        election_timeout_ticks,
        heartbeat_interval_ticks,
        arbiters,
        quiesce: raw.quiesce,
    })
}

fn topics(checker: &Checker<'_>, raw: &RawTopics) -> Result<TopicsConfig, ConfigError> {
    // The ceiling is `cluster::placement::TOPIC_PARTITIONS_MAX`, which the controller enforces.
    let partitions_max = checker.small("topics.partitions_max", raw.partitions_max, 1, 100_000)?;
    let default_partitions = checker.small(
        "topics.default_partitions",
        raw.default_partitions,
        1,
        u64::from(partitions_max),
    )?;
    let default_retention_bytes = match raw.default_retention_bytes {
        None => None,
        Some(bytes) => {
            Some(checker.range("topics.default_retention_bytes", bytes, MIB, u64::MAX)?)
        }
    };
    Ok(TopicsConfig {
        default_partitions,
        default_retention_ms: checker.range(
            "topics.default_retention_ms",
            raw.default_retention_ms,
            1000,
            3650 * DAY_MS,
        )?,
        default_retention_bytes,
        partitions_max,
        retention_check_ms: checker.range(
            "topics.retention_check_ms",
            raw.retention_check_ms,
            100,
            DAY_MS,
        )?,
        audit_retention_ms: checker.range(
            "topics.audit_retention_ms",
            raw.audit_retention_ms,
            DAY_MS,
            3650 * DAY_MS,
        )?,
        audit_retention_bytes: checker.range(
            "topics.audit_retention_bytes",
            raw.audit_retention_bytes,
            16 * MIB,
            u64::MAX,
        )?,
    })
}

fn cluster(
    checker: &Checker<'_>,
    raw: &RawCluster,
    own_id: u64,
    peer: Option<&PeerConfig>,
) -> Result<ClusterConfig, ConfigError> {
    let mut brokers = cluster_brokers(checker, &raw.brokers)?;
    let listed = brokers.iter().any(|(id, _)| *id == own_id);
    // One pod template for founders and later brokers: a broker the list does not name joins.
    let join = raw.join || (raw.join_when_unlisted && !listed);
    match peer {
        None if !brokers.is_empty() || raw.join || raw.join_when_unlisted => {
            return Err(ConfigError::Missing {
                key: "peer.listen".to_string(),
                why: "when cluster.brokers, cluster.join or cluster.join_when_unlisted is set"
                    .to_string(),
            })
        }
        Some(_) if brokers.is_empty() && raw.join_when_unlisted => {
            return Err(checker.invalid(
                "cluster.join_when_unlisted",
                true,
                "false unless cluster.brokers lists the founding brokers (an empty list founds \
                 a cluster of this broker alone)",
            ))
        }
        Some(peer) if brokers.is_empty() && !join => brokers.push((own_id, peer.advertise.clone())),
        Some(_) if !listed && !join => {
            return Err(checker.invalid(
                "cluster.brokers",
                format!("{:?}", raw.brokers),
                "a list containing this broker's id (or set cluster.join = true, or \
                 cluster.join_when_unlisted = true to join when unlisted)",
            ))
        }
        Some(_) if listed && raw.join => {
            return Err(checker.invalid(
                "cluster.join",
                true,
                "false for a founding broker listed in cluster.brokers",
            ))
        }
        _ => {}
    }
    Ok(ClusterConfig {
        brokers,
        join,
        controller_voters: checker.size(
            "cluster.controller_voters",
            raw.controller_voters,
            1,
            7,
        )?,
        down_timeout_ms: checker.range(
            "cluster.down_timeout_ms",
            raw.down_timeout_ms,
            1000,
            DAY_MS,
        )?,
        moves_max: checker.size("cluster.moves_max", raw.moves_max, 1, 1000)?,
        balance_interval_ms: checker.range(
            "cluster.balance_interval_ms",
            raw.balance_interval_ms,
            100,
            3_600_000,
        )?,
        forward_timeout_ms: checker.range(
            "cluster.forward_timeout_ms",
            raw.forward_timeout_ms,
            100,
            600_000,
        )?,
        drain_timeout_ms: checker.range(
            "cluster.drain_timeout_ms",
            raw.drain_timeout_ms,
            0,
            600_000,
        )?,
    })
}

/// `cluster.brokers`: distinct `id@host:port` items (the host an IP address or a DNS name),
/// sorted by id.
fn cluster_brokers(
    checker: &Checker<'_>,
    list: &str,
) -> Result<Vec<(u64, PeerAddress)>, ConfigError> {
    let mut brokers = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item.split_once('@').and_then(|(id, address)| {
            Some((
                id.parse::<u64>().ok()?,
                address.parse::<PeerAddress>().ok()?,
            ))
        });
        match parsed {
            Some((id, address)) if id >= 1 && !brokers.iter().any(|(b, _)| *b == id) => {
                brokers.push((id, address));
            }
            _ => {
                return Err(checker.invalid(
                    "cluster.brokers",
                    format!("{item:?}"),
                    "a comma-separated list of distinct id@host:port peer addresses, the host \
                     an IP address or a DNS name, such as \"1@127.0.0.1:9441,2@127.0.0.1:9442\" \
                     or \"1@palisade-0.palisade:9441\"",
                ))
            }
        }
    }
    brokers.sort_unstable_by_key(|(id, _)| *id);
    Ok(brokers)
}
