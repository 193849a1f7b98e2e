//! `transport::certs::init` on real directories: files, modes, re-runs, and the broker id
//! bound in each certificate.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use palisade::transport::certs::{self, broker_id_of, CertError};
use palisade::transport::tls::load_certs;
use rcgen::string::Ia5String;
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls_pki_types::CertificateDer;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn leaf(path: &Path) -> CertificateDer<'static> {
    load_certs(path).expect("certificate loads").remove(0)
}

#[test]
fn init_writes_ca_brokers_and_client_with_private_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), &[1, 2, 3]).expect("init");
    let mut keys = vec![&paths.ca.key, &paths.client.key];
    keys.extend(paths.brokers.iter().map(|(_, broker)| &broker.key));
    for key in keys {
        assert_eq!(mode_of(key), 0o600, "{}", key.display());
    }
    assert_eq!(paths.ca.cert, dir.path().join("ca.pem"));
    let broker_two = paths.broker(2).expect("broker 2");
    assert_eq!(broker_two.cert, dir.path().join("broker-2.pem"));
    assert_eq!(broker_two.key, dir.path().join("broker-2.key"));
    assert!(paths.broker(4).is_none());
    for (id, broker) in &paths.brokers {
        assert_eq!(broker_id_of(&leaf(&broker.cert)), Some(*id));
    }
    assert_eq!(broker_id_of(&leaf(&paths.client.cert)), None);
    assert_eq!(broker_id_of(&leaf(&paths.ca.cert)), None);
}

#[test]
fn rerun_keeps_the_ca_and_existing_brokers_and_adds_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = certs::init(dir.path(), &[1]).expect("first init");
    let ca_before = fs::read(&first.ca.cert).expect("ca");
    let ca_key_before = fs::read(&first.ca.key).expect("ca key");
    let broker_before = fs::read(&first.broker(1).expect("broker 1").cert).expect("broker 1");

    let second = certs::init(dir.path(), &[1, 2]).expect("second init");
    assert_eq!(fs::read(&second.ca.cert).expect("ca"), ca_before);
    assert_eq!(fs::read(&second.ca.key).expect("ca key"), ca_key_before);
    let broker_one = &second.broker(1).expect("broker 1").cert;
    assert_eq!(fs::read(broker_one).expect("broker 1"), broker_before);
    let broker_two = &second.broker(2).expect("broker 2").cert;
    assert_eq!(broker_id_of(&leaf(broker_two)), Some(2));
}

#[test]
fn a_new_ca_reissues_every_leaf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = certs::init(dir.path(), &[1]).expect("first init");
    let broker_before = fs::read(&first.broker(1).expect("broker 1").cert).expect("read");
    fs::remove_file(&first.ca.cert).expect("remove ca.pem");
    fs::remove_file(&first.ca.key).expect("remove ca.key");
    let second = certs::init(dir.path(), &[1]).expect("second init");
    let broker_after = fs::read(&second.broker(1).expect("broker 1").cert).expect("read");
    assert_ne!(
        broker_before, broker_after,
        "leaf signed by a vanished CA was kept"
    );
}

#[test]
fn half_a_ca_is_an_error_not_a_silent_replacement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), &[1]).expect("init");
    fs::remove_file(&paths.ca.key).expect("remove ca.key");
    assert!(matches!(
        certs::init(dir.path(), &[1]),
        Err(CertError::CaIncomplete { .. })
    ));
}

#[test]
fn broker_id_zero_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        certs::init(dir.path(), &[0]),
        Err(CertError::InvalidBrokerId)
    ));
}

/// A self-signed certificate carrying exactly the given URI SANs.
fn cert_with_uris(uris: &[&str]) -> CertificateDer<'static> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|uri| SanType::URI(Ia5String::try_from(*uri).expect("ASCII URI")))
        .collect();
    let key = KeyPair::generate().expect("key");
    params.self_signed(&key).expect("sign").der().clone()
}

#[test]
fn broker_id_of_rejects_malformed_and_ambiguous_identities() {
    assert_eq!(
        broker_id_of(&cert_with_uris(&["palisade://broker/42"])),
        Some(42)
    );
    assert_eq!(
        broker_id_of(&cert_with_uris(&["palisade://broker/abc"])),
        None
    );
    assert_eq!(
        broker_id_of(&cert_with_uris(&["palisade://brokers/3"])),
        None
    );
    assert_eq!(
        broker_id_of(&cert_with_uris(&["palisade://broker/0"])),
        None
    );
    assert_eq!(broker_id_of(&cert_with_uris(&["https://broker/3"])), None);
    let two = cert_with_uris(&["palisade://broker/1", "palisade://broker/2"]);
    assert_eq!(
        broker_id_of(&two),
        None,
        "two different ids must not pick one"
    );
    let repeated = cert_with_uris(&["palisade://broker/5", "palisade://broker/5"]);
    assert_eq!(broker_id_of(&repeated), Some(5));
    assert_eq!(
        broker_id_of(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
        None
    );
}
