//! Every TOML file under `config/` loads as a broker config, and the local 3-broker cluster files
//! describe one cluster: distinct ids, ports and data directories, the same founding list on each,
//! and a joining broker that is not in it. Certificates need not exist for a config to load.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use palisade::address::PeerAddress;
use palisade::config::{load_with_env, Config, HttpTransport};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn toml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read config dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            toml_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "toml") {
            found.push(path);
        }
    }
}

fn load(path: &Path) -> Config {
    load_with_env(Some(path), [])
        .unwrap_or_else(|error| panic!("{} does not load: {error}", path.display()))
}

fn cluster_file(name: &str) -> Config {
    load(&config_dir().join("cluster").join(name))
}

#[test]
fn every_config_file_loads() {
    let mut files = Vec::new();
    toml_files(&config_dir(), &mut files);
    files.sort();
    assert!(
        files.len() >= 5,
        "expected the single-broker and cluster configs: {files:?}"
    );
    for path in &files {
        load(path);
    }
}

#[test]
fn loading_does_not_need_the_certificates() {
    // Copied into an empty directory, the relative certificate paths name files that do not exist.
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("broker-1.toml");
    std::fs::copy(config_dir().join("cluster").join("broker-1.toml"), &copy).expect("copy");
    let config = load(&copy);
    let peer = config.peer.expect("a [peer] section");
    assert!(!peer.cert.exists() && !peer.ca_cert.exists(), "{peer:?}");
}

/// The client API of broker `id` uses its own HTTPS files, never the peer link's.
fn assert_https_is_apart(config: &Config, id: u64) {
    let HttpTransport::Tls { cert, key } = &config.http.transport else {
        panic!("broker {id} serves HTTPS");
    };
    assert!(
        cert.ends_with(format!("certs/dev/https-{id}.pem")),
        "{cert:?}"
    );
    assert!(
        key.ends_with(format!("certs/dev/https-{id}.key")),
        "{key:?}"
    );
}

#[test]
fn founding_brokers_form_one_cluster() {
    let configs: Vec<Config> = (1..=3)
        .map(|id| cluster_file(&format!("broker-{id}.toml")))
        .collect();
    let founders = configs[0].cluster.brokers.clone();
    let expected: Vec<(u64, PeerAddress)> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:944{id}").parse().expect("address")))
        .collect();
    assert_eq!(founders, expected);
    let mut listens = BTreeSet::new();
    let mut data_dirs = BTreeSet::new();
    for (position, config) in configs.iter().enumerate() {
        let id = position as u64 + 1;
        assert_eq!(config.broker.id, id);
        assert_eq!(config.cluster.brokers, founders, "broker {id}");
        assert!(!config.cluster.join, "broker {id}");
        let peer = config.peer.as_ref().expect("a [peer] section");
        assert_eq!(
            PeerAddress::from(peer.listen),
            founders[position].1,
            "broker {id} listens where listed"
        );
        assert!(peer.cert.ends_with(format!("certs/dev/peer-{id}.pem")));
        assert!(peer.key.ends_with(format!("certs/dev/peer-{id}.key")));
        assert!(peer.ca_cert.ends_with("certs/dev/peer-ca.pem"));
        assert_https_is_apart(config, id);
        assert!(listens.insert(config.http.listen) && listens.insert(peer.listen));
        assert!(data_dirs.insert(config.broker.data_dir.clone()));
    }
}

#[test]
fn joining_broker_is_new_and_contacts_the_founders() {
    let founders = cluster_file("broker-1.toml").cluster.brokers;
    let joining = cluster_file("broker-4-join.toml");
    assert_eq!(joining.broker.id, 4);
    assert!(joining.cluster.join);
    assert_eq!(joining.cluster.brokers, founders);
    let peer = joining.peer.as_ref().expect("a [peer] section");
    assert!(founders
        .iter()
        .all(|(_, address)| *address != PeerAddress::from(peer.listen)));
    assert!(peer.cert.ends_with("certs/dev/peer-4.pem"));
    assert!(peer.ca_cert.ends_with("certs/dev/peer-ca.pem"));
    assert_https_is_apart(&joining, 4);
    for id in 1..=3 {
        let founder = cluster_file(&format!("broker-{id}.toml"));
        assert_ne!(founder.broker.data_dir, joining.broker.data_dir);
        assert_ne!(founder.http.listen, joining.http.listen);
    }
}
