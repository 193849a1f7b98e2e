//! A broker configured the way a StatefulSet pod is: only environment variables, the broker id
//! from the pod's host name, listening on every address and advertising the pod's DNS name to
//! peers and in its client URL, founders listed by their DNS names. The refusals name the key.

use palisade::address::PeerAddress;
use palisade::config::{load_with_env_and_hostname, Config, ConfigError};

const DOMAIN: &str = "palisade.default.svc.cluster.local";

/// The environment the StatefulSet in deploy/kubernetes sets, with `$(POD_NAME)` expanded.
fn pod_env(pod: &str) -> Vec<(String, String)> {
    let founders: Vec<String> = (0..3)
        .map(|ordinal| format!("{}@palisade-{ordinal}.{DOMAIN}:9441", ordinal + 1))
        .collect();
    [
        ("PALISADE_BROKER_ID_FROM_HOSTNAME", "true".to_string()),
        ("PALISADE_BROKER_DATA_DIR", "/var/lib/palisade".to_string()),
        ("PALISADE_HTTP_LISTEN", "0.0.0.0:8441".to_string()),
        ("PALISADE_HTTP_ADVERTISE", format!("{pod}.{DOMAIN}:8441")),
        (
            "PALISADE_HTTP_CERT",
            "/etc/palisade/https/tls.crt".to_string(),
        ),
        (
            "PALISADE_HTTP_KEY",
            "/etc/palisade/https/tls.key".to_string(),
        ),
        ("PALISADE_PEER_LISTEN", "0.0.0.0:9441".to_string()),
        ("PALISADE_PEER_ADVERTISE", format!("{pod}.{DOMAIN}:9441")),
        (
            "PALISADE_PEER_CA_CERT",
            "/etc/palisade/peer/ca.crt".to_string(),
        ),
        (
            "PALISADE_PEER_CERT",
            "/etc/palisade/peer/tls.crt".to_string(),
        ),
        (
            "PALISADE_PEER_KEY",
            "/etc/palisade/peer/tls.key".to_string(),
        ),
        ("PALISADE_CLUSTER_BROKERS", founders.join(",")),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

fn load(variables: Vec<(String, String)>, hostname: &str) -> Result<Config, ConfigError> {
    let hostname = hostname.to_string();
    load_with_env_and_hostname(None, variables, move || Ok(hostname))
}

#[test]
fn a_pod_derives_its_id_and_advertises_its_dns_names() {
    let config = load(pod_env("palisade-2"), "palisade-2").expect("pod config");
    assert_eq!(config.broker.id, 3, "ordinal 2 is broker 3");
    let peer = config.peer.as_ref().expect("peer section");
    assert_eq!(peer.listen, "0.0.0.0:9441".parse().unwrap());
    assert_eq!(
        peer.advertise.to_string(),
        format!("palisade-2.{DOMAIN}:9441")
    );
    let advertised = config.http.advertise.as_ref().expect("http.advertise");
    assert_eq!(advertised.to_string(), format!("palisade-2.{DOMAIN}:8441"));
    let founders: Vec<(u64, PeerAddress)> = config.cluster.brokers.clone();
    assert_eq!(founders.len(), 3);
    for (position, (id, address)) in founders.iter().enumerate() {
        assert_eq!(*id, position as u64 + 1);
        assert_eq!(address.host(), format!("palisade-{position}.{DOMAIN}"));
        assert_eq!(address.ip(), None, "listed by name, resolved at each dial");
    }
}

#[test]
fn a_hostname_without_an_ordinal_stops_start_up_naming_the_key() {
    let error = load(pod_env("palisade-0"), "palisade").expect_err("no ordinal");
    assert_eq!(error.key(), Some("broker.id_from_hostname"), "{error}");
    assert!(error.to_string().contains("\"palisade\""), "{error}");
    // Positive control: the same environment on a pod with an ordinal loads.
    assert_eq!(
        load(pod_env("palisade-0"), "palisade-0").unwrap().broker.id,
        1
    );
}

#[test]
fn the_id_is_not_derived_unless_asked() {
    let mut variables = pod_env("palisade-0");
    variables.retain(|(name, _)| name != "PALISADE_BROKER_ID_FROM_HOSTNAME");
    variables.push(("PALISADE_BROKER_ID".to_string(), "2".to_string()));
    let config = load(variables, "palisade-0").expect("config");
    assert_eq!(config.broker.id, 2, "broker.id is used as written");
}

#[test]
fn an_unspecified_peer_listen_address_needs_an_advertised_one() {
    let mut variables = pod_env("palisade-0");
    variables.retain(|(name, _)| name != "PALISADE_PEER_ADVERTISE");
    let error = load(variables, "palisade-0").expect_err("no advertised address");
    assert_eq!(error.key(), Some("peer.advertise"), "{error}");
}

#[test]
fn malformed_peer_names_are_refused_naming_the_key() {
    for (name, value) in [
        ("PALISADE_CLUSTER_BROKERS", "1@palisade_0.palisade:9441"),
        ("PALISADE_CLUSTER_BROKERS", "1@palisade-0.palisade"),
        ("PALISADE_PEER_ADVERTISE", "palisade-0.palisade:0"),
        ("PALISADE_HTTP_ADVERTISE", "https://palisade-0:8441"),
    ] {
        let mut variables = pod_env("palisade-0");
        variables.retain(|(known, _)| known != name);
        variables.push((name.to_string(), value.to_string()));
        let error = load(variables, "palisade-0").expect_err(value);
        let key = name
            .strip_prefix("PALISADE_")
            .unwrap()
            .to_ascii_lowercase()
            .replacen('_', ".", 1);
        assert_eq!(error.key(), Some(key.as_str()), "{value}: {error}");
        assert!(
            error.to_string().contains(name),
            "names the variable: {error}"
        );
    }
}

/// The pod environment with `cluster.join_when_unlisted` set, as the StatefulSet sets it.
fn pod_env_joining_when_unlisted(pod: &str) -> Vec<(String, String)> {
    let mut variables = pod_env(pod);
    variables.push((
        "PALISADE_CLUSTER_JOIN_WHEN_UNLISTED".to_string(),
        "true".to_string(),
    ));
    variables
}

#[test]
fn with_join_when_unlisted_a_listed_pod_founds_and_an_unlisted_one_joins() {
    for pod in ["palisade-0", "palisade-2"] {
        let config = load(pod_env_joining_when_unlisted(pod), pod).expect("founder config");
        assert!(!config.cluster.join, "{pod} is listed: it founds");
    }
    let config =
        load(pod_env_joining_when_unlisted("palisade-3"), "palisade-3").expect("joiner config");
    assert_eq!(config.broker.id, 4);
    assert!(config.cluster.join, "palisade-3 is not listed: it joins");
    assert_eq!(
        config.cluster.brokers.len(),
        3,
        "the founders are the brokers it contacts"
    );
    assert!(config.cluster.brokers.iter().all(|(id, _)| *id != 4));
}

#[test]
fn an_unlisted_pod_without_either_join_key_is_refused_naming_the_list() {
    let error = load(pod_env("palisade-3"), "palisade-3").expect_err("unlisted founder");
    assert_eq!(error.key(), Some("cluster.brokers"), "{error}");
    let text = error.to_string();
    assert!(text.contains("cluster.join = true"), "{text}");
    assert!(text.contains("cluster.join_when_unlisted"), "{text}");
    // Positive control: an explicit cluster.join makes the same pod a joiner.
    let mut variables = pod_env("palisade-3");
    variables.push(("PALISADE_CLUSTER_JOIN".to_string(), "true".to_string()));
    assert!(load(variables, "palisade-3").unwrap().cluster.join);
}

#[test]
fn join_when_unlisted_needs_the_founders_listed_and_join_still_refuses_a_founder() {
    let mut variables = pod_env_joining_when_unlisted("palisade-0");
    variables.retain(|(name, _)| name != "PALISADE_CLUSTER_BROKERS");
    let error = load(variables, "palisade-0").expect_err("no founders listed");
    assert_eq!(error.key(), Some("cluster.join_when_unlisted"), "{error}");
    assert!(
        error
            .to_string()
            .contains("PALISADE_CLUSTER_JOIN_WHEN_UNLISTED"),
        "{error}"
    );

    let mut variables = pod_env_joining_when_unlisted("palisade-1");
    variables.push(("PALISADE_CLUSTER_JOIN".to_string(), "true".to_string()));
    let error = load(variables, "palisade-1").expect_err("a listed broker told to join");
    assert_eq!(error.key(), Some("cluster.join"), "{error}");
}
