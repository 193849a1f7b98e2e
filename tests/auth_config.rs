//! Configuration loading through the public API: the documented sample file, errors that
//! name their key, and environment overrides.

use std::path::{Path, PathBuf};

use palisade::config::{self, ConfigError, HttpTransport, KEYS};

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/palisade.toml")
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

/// Writes `text` as a config file in a fresh directory and loads it with `env`.
fn load_text(text: &str, env: &[(&str, &str)]) -> Result<config::Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.toml");
    std::fs::write(&path, text).unwrap();
    let env = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect::<Vec<_>>();
    config::load_with_env(Some(&path), env)
}

const PLAIN: &str = "[http]\ntls = false\n";

/// Keys of `KEYS` that `text` does not document: a key line (`key = ...` or `# key = ...`)
/// inside its section, directly after a comment line that is not itself a key.
fn undocumented_keys(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut missing = Vec::new();
    for (section, key) in KEYS {
        let header = format!("[{section}]");
        let Some(start) = lines.iter().position(|line| *line == header) else {
            missing.push(format!("{section}.{key}"));
            continue;
        };
        let end = lines[start + 1..]
            .iter()
            .position(|line| line.starts_with('['))
            .map_or(lines.len(), |offset| start + 1 + offset);
        let documented = (start + 1..end).any(|index| {
            let line = lines[index].trim_start_matches("# ");
            line.starts_with(&format!("{key} = ")) && is_prose_comment(lines[index - 1])
        });
        if !documented {
            missing.push(format!("{section}.{key}"));
        }
    }
    missing
}

/// A comment line that is not a commented-out key.
fn is_prose_comment(line: &str) -> bool {
    let Some(body) = line.strip_prefix('#') else {
        return false;
    };
    let commented_key = body
        .trim_start()
        .split_once(" = ")
        .is_some_and(|(left, _)| {
            left.chars()
                .all(|character| character.is_ascii_lowercase() || character == '_')
        });
    !commented_key
}

#[test]
fn sample_file_documents_every_key() {
    let text = std::fs::read_to_string(sample_path()).unwrap();
    assert_eq!(undocumented_keys(&text), Vec::<String>::new());
    // The checker catches a key whose line is removed and a key without a comment.
    let without_workers = text.replace("workers = 2\n", "");
    assert_eq!(undocumented_keys(&without_workers), vec!["http.workers"]);
    let uncommented = text.replace(
        "# Lifetime of an access token: 1 hour (60 seconds to 7 days).",
        "",
    );
    assert_eq!(undocumented_keys(&uncommented), vec!["auth.token_ttl_s"]);
}

#[test]
fn sample_file_loads_with_safe_defaults() {
    let config = config::load_with_env(Some(&sample_path()), no_env()).unwrap();
    let config_dir = sample_path().parent().unwrap().to_path_buf();
    assert_eq!(config.broker.id, 1);
    assert_eq!(config.broker.data_dir, config_dir.join("../data"));
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8441");
    assert_eq!(
        config.http.transport,
        HttpTransport::Tls {
            cert: config_dir.join("../certs/https-1.pem"),
            key: config_dir.join("../certs/https-1.key"),
        }
    );
    assert_eq!(config.http.body_bytes_max, 8 << 20);
    assert_eq!(config.http.record_bytes_max, 1 << 20);
    assert_eq!(config.http.workers, 2);
    assert_eq!(config.peer, None);
    assert_eq!(config.auth.token_ttl_s, 3600);
    assert_eq!(config.auth.admin_username, "admin");
    assert_eq!(config.storage.requests_per_commit_max, 1024);
    assert!(config.raft.arbiters >= 1, "0 resolves to the core count");
    assert_eq!(config.topics.default_retention_ms, 7 * 24 * 3600 * 1000);
    assert_eq!(config.topics.default_retention_bytes, None);
    // The sample equals the built-in defaults apart from the paths it sets.
    let defaults = load_text(
        "[broker]\ndata_dir = \"../data\"\n[http]\ncert = \"../certs/https-1.pem\"\n\
         key = \"../certs/https-1.key\"\n",
        &[],
    )
    .unwrap();
    let mut expected_http = config.http.clone();
    expected_http.transport = defaults.http.transport.clone();
    assert_eq!(defaults.http, expected_http);
    assert_eq!(defaults.auth, config.auth);
    assert_eq!(defaults.topics, config.topics);
    assert_eq!(defaults.raft, config.raft);
}

#[test]
fn each_bad_value_names_its_key() {
    let cases: &[(&str, &str)] = &[
        ("[broker]\nid = 0", "broker.id"),
        ("[broker]\ndata_dir = \"\"", "broker.data_dir"),
        ("[broker]\nrack = \"a b\"", "broker.rack"),
        ("[http]\nlisten = \"localhost\"", "http.listen"),
        ("[http]\nworkers = 0", "http.workers"),
        ("[http]\nbody_bytes_max = 10", "http.body_bytes_max"),
        // Above what one replicated entry can hold.
        ("[http]\nbody_bytes_max = 16777216", "http.body_bytes_max"),
        (
            "[http]\nrecord_bytes_max = 9000000",
            "http.record_bytes_max",
        ),
        ("[http]\nfetch_bytes_max = 2048", "http.fetch_bytes_max"),
        (
            "[http]\nrecords_per_batch_max = 0",
            "http.records_per_batch_max",
        ),
        ("[http]\nfetch_records_max = 0", "http.fetch_records_max"),
        ("[http]\nwait_ms_max = 3600000", "http.wait_ms_max"),
        ("[http]\nconnections_max = 0", "http.connections_max"),
        // Above connections_max (10,000 by default).
        (
            "[http]\nconnections_per_source_max = 20000",
            "http.connections_per_source_max",
        ),
        ("[http]\nhello_timeout_ms = 10", "http.hello_timeout_ms"),
        (
            "[http]\nhandshake_timeout_ms = 600000",
            "http.handshake_timeout_ms",
        ),
        (
            "[http]\nrequest_head_timeout_ms = 0",
            "http.request_head_timeout_ms",
        ),
        ("[peer]\nlisten = \"127.0.0.1:9441\"", "peer.ca_cert"),
        ("[peer]\nhandshakes_max = 0", "peer.handshakes_max"),
        // Above handshakes_max (64 by default).
        (
            "[peer]\nhandshakes_per_source_max = 65",
            "peer.handshakes_per_source_max",
        ),
        (
            "[peer]\nhandshakes_max = 16\nhandshakes_unlisted_max = 32",
            "peer.handshakes_unlisted_max",
        ),
        // Above handshake_timeout_ms (5 s by default).
        ("[peer]\nhello_timeout_ms = 6000", "peer.hello_timeout_ms"),
        (
            "[peer]\nhandshake_timeout_ms = 10",
            "peer.handshake_timeout_ms",
        ),
        ("[auth]\nissuer = \"\"", "auth.issuer"),
        ("[auth]\naudience = \"a\\nb\"", "auth.audience"),
        ("[auth]\ntoken_ttl_s = 5", "auth.token_ttl_s"),
        ("[auth]\nleeway_s = 3600", "auth.leeway_s"),
        ("[auth]\ntoken_bytes_max = 100", "auth.token_bytes_max"),
        ("[auth]\nadmin_username = \"..\"", "auth.admin_username"),
        ("[auth]\nlogin_failures_max = 0", "auth.login_failures_max"),
        ("[auth]\nlogin_window_s = 0", "auth.login_window_s"),
        (
            "[auth]\nlogin_tracked_keys_max = 1",
            "auth.login_tracked_keys_max",
        ),
        (
            "[storage]\nrequests_per_commit_max = 0",
            "storage.requests_per_commit_max",
        ),
        ("[raft]\ntick_ms = 0", "raft.tick_ms"),
        (
            "[raft]\nelection_timeout_ticks = 2",
            "raft.election_timeout_ticks",
        ),
        (
            "[raft]\nheartbeat_interval_ticks = 0",
            "raft.heartbeat_interval_ticks",
        ),
        ("[raft]\narbiters = 1000", "raft.arbiters"),
        (
            "[topics]\ndefault_partitions = 2000",
            "topics.default_partitions",
        ),
        (
            "[topics]\ndefault_retention_ms = 10",
            "topics.default_retention_ms",
        ),
        (
            "[topics]\ndefault_retention_bytes = 10",
            "topics.default_retention_bytes",
        ),
        ("[topics]\npartitions_max = 0", "topics.partitions_max"),
        (
            "[topics]\nretention_check_ms = 1",
            "topics.retention_check_ms",
        ),
    ];
    for (snippet, key) in cases {
        // Sections may repeat only once, so plain HTTP is set unless the case is about [http].
        let text = if snippet.starts_with("[http]") {
            format!("{snippet}\ntls = false\n")
        } else {
            format!("{PLAIN}{snippet}\n")
        };
        let error = load_text(&text, &[]).expect_err(key);
        assert_eq!(error.key(), Some(*key), "{snippet}: {error}");
        assert!(error.to_string().contains(key), "{error}");
    }
}

#[test]
fn type_errors_and_unknown_keys_name_the_key() {
    let error = load_text("[http]\nworkers = \"two\"\n", &[]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConfigError::Parse { .. }), "{message}");
    assert!(message.contains("workers"), "{message}");
    let error = load_text("[http]\nworker = 2\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("worker") && error.contains("workers"),
        "{error}"
    );
    let error = load_text("[htp]\nworkers = 2\n", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("htp"), "{error}");
    let error = load_text("[auth]\ntoken_ttl_s = -5\n", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("token_ttl_s"), "{error}");
}

#[test]
fn tls_requires_cert_and_key_unless_turned_off() {
    let error = load_text("", &[]).unwrap_err();
    assert_eq!(error.key(), Some("http.cert"), "{error}");
    assert!(error.to_string().contains("tls = false"), "{error}");
    let error = load_text("[http]\ncert = \"c.pem\"\n", &[]).unwrap_err();
    assert_eq!(error.key(), Some("http.key"));
    let config = load_text(PLAIN, &[]).unwrap();
    assert_eq!(config.http.transport, HttpTransport::Plain);
}

#[test]
fn peer_handshake_limits_reach_the_peer_config_and_alone_leave_the_link_off() {
    let link = "[peer]\nlisten = \"127.0.0.1:9441\"\nca_cert = \"ca.pem\"\ncert = \"p.pem\"\n\
                key = \"p.key\"\n";
    let defaults = load_text(&format!("{PLAIN}{link}"), &[]).unwrap();
    let handshakes = defaults.peer.expect("the link is on").handshakes;
    assert_eq!(
        (
            handshakes.handshakes_max,
            handshakes.handshakes_per_source_max,
            handshakes.handshakes_unlisted_max,
            handshakes.hello_timeout_ms,
            handshakes.handshake_timeout_ms,
        ),
        (64, 8, 32, 2000, 5000)
    );
    let text = format!("{PLAIN}{link}handshakes_per_source_max = 4\nhello_timeout_ms = 500\n");
    let set = load_text(&text, &[("PALISADE_PEER_HANDSHAKES_UNLISTED_MAX", "16")]).unwrap();
    let handshakes = set.peer.expect("the link is on").handshakes;
    assert_eq!(handshakes.handshakes_per_source_max, 4);
    assert_eq!(handshakes.hello_timeout_ms, 500);
    assert_eq!(handshakes.handshakes_unlisted_max, 16);
    // The limits alone do not turn the link on.
    let limits_only = load_text(&format!("{PLAIN}[peer]\nhandshakes_max = 32\n"), &[]).unwrap();
    assert_eq!(limits_only.peer, None);
}

#[test]
fn relative_paths_resolve_against_the_file_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.toml");
    let text = "[broker]\ndata_dir = \"state\"\n[http]\ncert = \"tls/c.pem\"\nkey = \"/abs/k.pem\"\n\
                [peer]\nlisten = \"127.0.0.1:9441\"\nca_cert = \"ca.pem\"\ncert = \"p.pem\"\nkey = \"p.key\"\n";
    std::fs::write(&path, text).unwrap();
    let config = config::load_with_env(Some(&path), no_env()).unwrap();
    assert_eq!(config.broker.data_dir, dir.path().join("state"));
    assert_eq!(
        config.http.transport,
        HttpTransport::Tls {
            cert: dir.path().join("tls/c.pem"),
            key: PathBuf::from("/abs/k.pem"),
        }
    );
    let peer = config.peer.unwrap();
    assert_eq!(peer.ca_cert, dir.path().join("ca.pem"));
    assert_eq!(peer.listen.port(), 9441);
}

#[test]
fn plain_http_is_refused_beyond_loopback_unless_forced() {
    let on = |listen: &str, force: &str| {
        load_text(
            &format!("[http]\ntls = false\nlisten = \"{listen}\"\n{force}"),
            &[],
        )
    };
    assert!(on("127.0.0.1:8441", "").is_ok());
    assert!(on("[::1]:8441", "").is_ok());
    let refused = on("0.0.0.0:8441", "").unwrap_err().to_string();
    assert!(
        refused.contains("http.listen") && refused.contains("plain_on_any_address"),
        "{refused}"
    );
    assert!(on("10.1.2.3:8441", "").is_err());
    assert!(on("0.0.0.0:8441", "plain_on_any_address = true\n").is_ok());
    // With TLS any address is fine.
    let tls = "[http]\ntls = true\nlisten = \"0.0.0.0:8441\"\ncert = \"/c\"\nkey = \"/k\"\n";
    assert!(load_text(tls, &[]).is_ok());
}

#[test]
fn environment_overrides_win_over_the_file() {
    let text =
        format!("{PLAIN}workers = 4\nlisten = \"127.0.0.1:1000\"\n[auth]\ntoken_ttl_s = 600\n");
    let config = load_text(&text, &[]).unwrap();
    assert_eq!((config.http.workers, config.auth.token_ttl_s), (4, 600));
    let env = [
        ("PALISADE_HTTP_WORKERS", "8"),
        ("PALISADE_HTTP_LISTEN", "0.0.0.0:9000"),
        ("PALISADE_HTTP_PLAIN_ON_ANY_ADDRESS", "true"),
        ("PALISADE_AUTH_TOKEN_TTL_S", "900"),
        ("PALISADE_TOPICS_DEFAULT_RETENTION_BYTES", "2097152"),
        ("PALISADE_BROKER_RACK", "zone-b"),
        // Not configuration: ignored here.
        ("PALISADE_ADMIN_PASSWORD", "secret"),
        ("HOME", "/root"),
    ];
    let config = load_text(&text, &env).unwrap();
    assert_eq!(config.http.workers, 8);
    assert_eq!(config.http.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.auth.token_ttl_s, 900);
    assert_eq!(config.topics.default_retention_bytes, Some(2 << 20));
    assert_eq!(config.broker.rack.as_deref(), Some("zone-b"));
    let config = load_text(
        PLAIN,
        &[
            ("PALISADE_HTTP_TLS", "true"),
            ("PALISADE_HTTP_CERT", "/c"),
            ("PALISADE_HTTP_KEY", "/k"),
        ],
    )
    .unwrap();
    assert!(matches!(config.http.transport, HttpTransport::Tls { .. }));
}

#[test]
fn bad_environment_values_name_the_variable() {
    let error = load_text(PLAIN, &[("PALISADE_HTTP_WORKERS", "many")]).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Env { variable, .. } if variable == "PALISADE_HTTP_WORKERS"),
        "{error}"
    );
    let error = load_text(PLAIN, &[("PALISADE_HTTP_WORKERS", "0")]).unwrap_err();
    assert_eq!(error.key(), Some("http.workers"));
    assert!(
        error.to_string().contains("(from PALISADE_HTTP_WORKERS)"),
        "{error}"
    );
    let error = load_text(PLAIN, &[("PALISADE_HTTP_WORKER", "2")]).unwrap_err();
    assert!(
        error.to_string().contains("PALISADE_HTTP_WORKER"),
        "{error}"
    );
    let error = load_text(PLAIN, &[("PALISADE_HTTP_TLS", "yes")]).unwrap_err();
    assert!(error.to_string().contains("true or false"), "{error}");
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let error = config::load_with_env(Some(Path::new("/nonexistent/palisade.toml")), no_env())
        .unwrap_err()
        .to_string();
    assert!(error.contains("/nonexistent/palisade.toml"), "{error}");
}

#[test]
fn load_reads_the_process_environment() {
    // Relies on no PALISADE_<SECTION>_* variable being set for the test process.
    let config = config::load(Some(&sample_path())).unwrap();
    assert_eq!(config.broker.id, 1);
}
