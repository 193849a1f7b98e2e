//! `PALISADE_<SECTION>_<KEY>` environment overrides, applied on top of the file.
//!
//! A variable whose name starts with `PALISADE_` and a known section (`BROKER`, `HTTP`,
//! `PEER`, `AUTH`, `STORAGE`, `RAFT`, `TOPICS`,
//! `CLUSTER`, `LIMITS`, `DURABLE_STREAMS`) must name a known key of that section;
//! other `PALISADE_*` variables (such as `PALISADE_ADMIN_PASSWORD`) are not configuration
//! and are ignored here. Relative paths given in the environment resolve against the
//! current directory, not the config file's. For optional keys an empty value means unset.

use std::path::Path;

use super::raw::RawConfig;
use super::ConfigError;

/// Prefix of every configuration variable.
pub const ENV_PREFIX: &str = "PALISADE_";

/// The sections that may be overridden, lowercase as in the file.
pub const SECTIONS: [&str; 10] = [
    "broker",
    "http",
    "peer",
    "auth",
    "storage",
    "raft",
    "topics",
    "cluster",
    "limits",
    "durable_streams",
];

/// Every key, as `(section, key)`; the documented sample file lists exactly these.
pub const KEYS: &[(&str, &str)] = &[
    ("broker", "id"),
    ("broker", "id_from_hostname"),
    ("broker", "data_dir"),
    ("broker", "rack"),
    ("http", "listen"),
    ("http", "advertise"),
    ("http", "tls"),
    ("http", "plain_on_any_address"),
    ("http", "cert"),
    ("http", "key"),
    ("http", "workers"),
    ("http", "body_bytes_max"),
    ("http", "records_per_batch_max"),
    ("http", "record_bytes_max"),
    ("http", "fetch_bytes_max"),
    ("http", "fetch_records_max"),
    ("http", "wait_ms_max"),
    ("http", "connections_max"),
    ("http", "connections_per_source_max"),
    ("http", "hello_timeout_ms"),
    ("http", "handshake_timeout_ms"),
    ("http", "request_head_timeout_ms"),
    ("peer", "listen"),
    ("peer", "advertise"),
    ("peer", "ca_cert"),
    ("peer", "cert"),
    ("peer", "key"),
    ("peer", "handshakes_max"),
    ("peer", "handshakes_per_source_max"),
    ("peer", "handshakes_unlisted_max"),
    ("peer", "hello_timeout_ms"),
    ("peer", "handshake_timeout_ms"),
    ("auth", "issuer"),
    ("auth", "audience"),
    ("auth", "token_ttl_s"),
    ("auth", "leeway_s"),
    ("auth", "token_bytes_max"),
    ("auth", "admin_username"),
    ("auth", "login_failures_max"),
    ("auth", "login_window_s"),
    ("auth", "login_tracked_keys_max"),
    ("auth", "password_checks_max"),
    ("auth", "failure_audit_interval_ms"),
    ("auth", "failure_audit_sources_max"),
    ("storage", "requests_per_commit_max"),
    ("storage", "cache_bytes_max"),
    ("storage", "writer_queue_bytes_max"),
    ("storage", "disk_free_bytes_min"),
    ("raft", "tick_ms"),
    ("raft", "election_timeout_ticks"),
    ("raft", "heartbeat_interval_ticks"),
    ("raft", "arbiters"),
    ("raft", "quiesce"),
    ("topics", "default_partitions"),
    ("topics", "default_retention_ms"),
    ("topics", "default_retention_bytes"),
    ("topics", "audit_retention_ms"),
    ("topics", "audit_retention_bytes"),
    ("topics", "partitions_max"),
    ("topics", "retention_check_ms"),
    ("cluster", "brokers"),
    ("cluster", "join"),
    ("cluster", "join_when_unlisted"),
    ("cluster", "controller_voters"),
    ("cluster", "down_timeout_ms"),
    ("cluster", "moves_max"),
    ("cluster", "balance_interval_ms"),
    ("cluster", "forward_timeout_ms"),
    ("cluster", "drain_timeout_ms"),
    ("limits", "streams_max"),
    ("limits", "streams_per_principal_max"),
    ("limits", "stream_tickets_max"),
    ("limits", "stream_keepalive_ms"),
    ("limits", "body_bytes_in_flight_max"),
    ("limits", "fetch_bytes_in_flight_max"),
    ("limits", "budget_wait_ms"),
    ("durable_streams", "anonymous_principal"),
    ("durable_streams", "long_poll_ms"),
    ("durable_streams", "sse_connection_ms"),
    ("durable_streams", "streams_cached_max"),
];

/// Applies every configuration variable in `variables` to `raw`; returns the dotted keys
/// that were set, so validation errors can say the value came from the environment.
pub fn apply_all(
    raw: &mut RawConfig,
    variables: impl IntoIterator<Item = (String, String)>,
    current_dir: &Path,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (variable, value) in variables {
        let Some((section, key)) = split_name(&variable) else {
            continue;
        };
        let value = resolve_path_value(&section, &key, value, current_dir);
        set(raw, &section, &key, &value).map_err(|message| ConfigError::Env {
            variable: variable.clone(),
            message,
        })?;
        applied.push((format!("{section}.{key}"), variable));
    }
    Ok(applied)
}

/// `PALISADE_HTTP_BODY_BYTES_MAX` → `("http", "body_bytes_max")`; `None` when the variable
/// is not configuration.
fn split_name(variable: &str) -> Option<(String, String)> {
    let rest = variable.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
    SECTIONS.iter().find_map(|section| {
        let key = rest.strip_prefix(section)?.strip_prefix('_')?;
        Some((section.to_string(), key.to_string()))
    })
}

fn is_path_key(section: &str, key: &str) -> bool {
    matches!(
        (section, key),
        ("broker", "data_dir") | ("http" | "peer", "cert" | "key") | ("peer", "ca_cert")
    )
}

fn resolve_path_value(section: &str, key: &str, value: String, current_dir: &Path) -> String {
    if !is_path_key(section, key) || value.is_empty() || Path::new(&value).is_absolute() {
        return value;
    }
    current_dir.join(&value).to_string_lossy().into_owned()
}

fn number(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a non-negative integer"))
}

fn bytes(value: &str) -> Result<u64, String> {
    super::units::parse_bytes(value)
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

fn optional(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// Sets one key from its text form. The match is the single list of settable keys.
fn set(raw: &mut RawConfig, section: &str, key: &str, value: &str) -> Result<(), String> {
    let text = || value.to_string();
    match (section, key) {
        ("broker", "id") => raw.broker.id = number(value)?,
        ("broker", "id_from_hostname") => raw.broker.id_from_hostname = boolean(value)?,
        ("broker", "data_dir") => raw.broker.data_dir = text(),
        ("broker", "rack") => raw.broker.rack = optional(value),
        ("http", "listen") => raw.http.listen = text(),
        ("http", "advertise") => raw.http.advertise = optional(value),
        ("http", "tls") => raw.http.tls = boolean(value)?,
        ("http", "plain_on_any_address") => raw.http.plain_on_any_address = boolean(value)?,
        ("http", "cert") => raw.http.cert = optional(value),
        ("http", "key") => raw.http.key = optional(value),
        ("http", "workers") => raw.http.workers = number(value)?,
        ("http", "body_bytes_max") => raw.http.body_bytes_max = bytes(value)?,
        ("http", "records_per_batch_max") => raw.http.records_per_batch_max = number(value)?,
        ("http", "record_bytes_max") => raw.http.record_bytes_max = bytes(value)?,
        ("http", "fetch_bytes_max") => raw.http.fetch_bytes_max = bytes(value)?,
        ("http", "fetch_records_max") => raw.http.fetch_records_max = number(value)?,
        ("http", "wait_ms_max") => raw.http.wait_ms_max = number(value)?,
        ("http", "connections_max") => raw.http.connections_max = number(value)?,
        ("http", "connections_per_source_max") => {
            raw.http.connections_per_source_max = number(value)?
        }
        ("http", "hello_timeout_ms") => raw.http.hello_timeout_ms = number(value)?,
        ("http", "handshake_timeout_ms") => raw.http.handshake_timeout_ms = number(value)?,
        ("http", "request_head_timeout_ms") => raw.http.request_head_timeout_ms = number(value)?,
        ("peer", "listen") => raw.peer.listen = optional(value),
        ("peer", "advertise") => raw.peer.advertise = optional(value),
        ("peer", "ca_cert") => raw.peer.ca_cert = optional(value),
        ("peer", "cert") => raw.peer.cert = optional(value),
        ("peer", "key") => raw.peer.key = optional(value),
        ("peer", "handshakes_max") => raw.peer.handshakes_max = number(value)?,
        ("peer", "handshakes_per_source_max") => {
            raw.peer.handshakes_per_source_max = number(value)?
        }
        ("peer", "handshakes_unlisted_max") => raw.peer.handshakes_unlisted_max = number(value)?,
        ("peer", "hello_timeout_ms") => raw.peer.hello_timeout_ms = number(value)?,
        ("peer", "handshake_timeout_ms") => raw.peer.handshake_timeout_ms = number(value)?,
        _ => return set_lower_sections(raw, section, key, value),
    }
    Ok(())
}

fn set_lower_sections(
    raw: &mut RawConfig,
    section: &str,
    key: &str,
    value: &str,
) -> Result<(), String> {
    let text = || value.to_string();
    match (section, key) {
        ("auth", "issuer") => raw.auth.issuer = text(),
        ("auth", "audience") => raw.auth.audience = text(),
        ("auth", "token_ttl_s") => raw.auth.token_ttl_s = number(value)?,
        ("auth", "leeway_s") => raw.auth.leeway_s = number(value)?,
        ("auth", "token_bytes_max") => raw.auth.token_bytes_max = bytes(value)?,
        ("auth", "admin_username") => raw.auth.admin_username = text(),
        ("auth", "login_failures_max") => raw.auth.login_failures_max = number(value)?,
        ("auth", "login_window_s") => raw.auth.login_window_s = number(value)?,
        ("auth", "login_tracked_keys_max") => raw.auth.login_tracked_keys_max = number(value)?,
        ("auth", "password_checks_max") => raw.auth.password_checks_max = number(value)?,
        ("auth", "failure_audit_interval_ms") => {
            raw.auth.failure_audit_interval_ms = number(value)?
        }
        ("auth", "failure_audit_sources_max") => {
            raw.auth.failure_audit_sources_max = number(value)?
        }
        ("storage", "requests_per_commit_max") => {
            raw.storage.requests_per_commit_max = number(value)?
        }
        ("storage", "cache_bytes_max") => raw.storage.cache_bytes_max = bytes(value)?,
        ("storage", "writer_queue_bytes_max") => raw.storage.writer_queue_bytes_max = bytes(value)?,
        ("storage", "disk_free_bytes_min") => raw.storage.disk_free_bytes_min = bytes(value)?,
        ("raft", "tick_ms") => raw.raft.tick_ms = number(value)?,
        ("raft", "election_timeout_ticks") => raw.raft.election_timeout_ticks = number(value)?,
        ("raft", "heartbeat_interval_ticks") => raw.raft.heartbeat_interval_ticks = number(value)?,
        ("raft", "arbiters") => raw.raft.arbiters = number(value)?,
        ("raft", "quiesce") => raw.raft.quiesce = boolean(value)?,
        ("topics", "default_partitions") => raw.topics.default_partitions = number(value)?,
        ("topics", "default_retention_ms") => raw.topics.default_retention_ms = number(value)?,
        ("topics", "audit_retention_ms") => raw.topics.audit_retention_ms = number(value)?,
        ("topics", "audit_retention_bytes") => raw.topics.audit_retention_bytes = bytes(value)?,
        ("topics", "default_retention_bytes") => {
            raw.topics.default_retention_bytes = match value.trim() {
                "" => None,
                size => Some(bytes(size)?),
            }
        }
        ("topics", "partitions_max") => raw.topics.partitions_max = number(value)?,
        ("topics", "retention_check_ms") => raw.topics.retention_check_ms = number(value)?,
        ("cluster", "brokers") => raw.cluster.brokers = text(),
        ("cluster", "join") => raw.cluster.join = boolean(value)?,
        ("cluster", "join_when_unlisted") => raw.cluster.join_when_unlisted = boolean(value)?,
        ("cluster", "controller_voters") => raw.cluster.controller_voters = number(value)?,
        ("cluster", "down_timeout_ms") => raw.cluster.down_timeout_ms = number(value)?,
        ("cluster", "moves_max") => raw.cluster.moves_max = number(value)?,
        ("cluster", "balance_interval_ms") => raw.cluster.balance_interval_ms = number(value)?,
        ("cluster", "forward_timeout_ms") => raw.cluster.forward_timeout_ms = number(value)?,
        ("cluster", "drain_timeout_ms") => raw.cluster.drain_timeout_ms = number(value)?,
        ("limits", "streams_max") => raw.limits.streams_max = number(value)?,
        ("limits", "streams_per_principal_max") => {
            raw.limits.streams_per_principal_max = number(value)?
        }
        ("limits", "stream_tickets_max") => raw.limits.stream_tickets_max = number(value)?,
        ("limits", "stream_keepalive_ms") => raw.limits.stream_keepalive_ms = number(value)?,
        ("limits", "body_bytes_in_flight_max") => {
            raw.limits.body_bytes_in_flight_max = bytes(value)?
        }
        ("limits", "fetch_bytes_in_flight_max") => {
            raw.limits.fetch_bytes_in_flight_max = bytes(value)?
        }
        ("limits", "budget_wait_ms") => raw.limits.budget_wait_ms = number(value)?,
        ("durable_streams", "anonymous_principal") => {
            raw.durable_streams.anonymous_principal = value.trim().to_string()
        }
        ("durable_streams", "long_poll_ms") => raw.durable_streams.long_poll_ms = number(value)?,
        ("durable_streams", "sse_connection_ms") => {
            raw.durable_streams.sse_connection_ms = number(value)?
        }
        ("durable_streams", "streams_cached_max") => {
            raw.durable_streams.streams_cached_max = number(value)?
        }
        _ => {
            let known: Vec<&str> = KEYS
                .iter()
                .filter(|(known_section, _)| *known_section == section)
                .map(|(_, key)| *key)
                .collect();
            return Err(format!(
                "[{section}] has no key {key:?}; known keys: {}",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample text accepted by `set` for every key, whatever its type.
    fn set_any(raw: &mut RawConfig, section: &str, key: &str) -> Result<(), String> {
        ["7", "true", "text"]
            .iter()
            .map(|value| set(raw, section, key, value))
            .find(Result::is_ok)
            .unwrap_or_else(|| set(raw, section, key, "7"))
    }

    #[test]
    fn every_listed_key_is_settable_and_every_field_is_listed() {
        let mut raw = RawConfig::default();
        for (section, key) in KEYS {
            assert_eq!(set_any(&mut raw, section, key), Ok(()), "{section}.{key}");
        }
        // With every optional key set, the serialized form shows every field.
        let table = toml::Table::try_from(&raw).unwrap();
        let mut fields = Vec::new();
        for (section, keys) in &table {
            for key in keys.as_table().unwrap().keys() {
                fields.push((section.clone(), key.clone()));
            }
        }
        let mut listed: Vec<(String, String)> = KEYS
            .iter()
            .map(|(section, key)| (section.to_string(), key.to_string()))
            .collect();
        listed.sort();
        fields.sort();
        assert_eq!(fields, listed);
    }

    #[test]
    fn unknown_keys_in_known_sections_are_refused() {
        let mut raw = RawConfig::default();
        let error = set(&mut raw, "http", "worker", "2").unwrap_err();
        assert!(error.contains("workers"), "{error}");
    }

    #[test]
    fn variable_names_split_into_section_and_key() {
        assert_eq!(
            split_name("PALISADE_HTTP_BODY_BYTES_MAX"),
            Some(("http".into(), "body_bytes_max".into()))
        );
        assert_eq!(split_name("PALISADE_ADMIN_PASSWORD"), None);
        assert_eq!(split_name("PALISADE_HTTPS_LISTEN"), None);
        assert_eq!(split_name("HOME"), None);
    }

    #[test]
    fn relative_paths_from_the_environment_resolve_against_the_current_directory() {
        let dir = Path::new("/work/dir");
        let resolved = resolve_path_value("http", "cert", "certs/a.pem".into(), dir);
        assert_eq!(resolved, "/work/dir/certs/a.pem");
        let untouched = resolve_path_value("http", "listen", "a:1".into(), dir);
        assert_eq!(untouched, "a:1");
    }
}
