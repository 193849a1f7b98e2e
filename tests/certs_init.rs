//! `transport::certs::init` on real directories: files, modes, re-runs, and the broker id
//! bound in each certificate.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use palisade::transport::certs::{self, broker_id_of, CertError};
use palisade::transport::tls::{self, accepted_as_client, load_certs};
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
fn init_writes_both_cas_both_identities_per_broker_and_a_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), &[1, 2, 3]).expect("init");
    let mut keys = vec![&paths.https_ca.key, &paths.peer_ca.key, &paths.client.key];
    for (_, broker) in &paths.brokers {
        keys.extend([&broker.peer.key, &broker.https.key]);
    }
    for key in keys {
        assert_eq!(mode_of(key), 0o600, "{}", key.display());
    }
    assert_eq!(paths.https_ca.cert, dir.path().join("ca.pem"));
    assert_eq!(paths.peer_ca.cert, dir.path().join("peer-ca.pem"));
    let broker_two = paths.broker(2).expect("broker 2");
    assert_eq!(broker_two.peer.cert, dir.path().join("peer-2.pem"));
    assert_eq!(broker_two.peer.key, dir.path().join("peer-2.key"));
    assert_eq!(broker_two.https.cert, dir.path().join("https-2.pem"));
    assert_eq!(broker_two.https.key, dir.path().join("https-2.key"));
    assert!(paths.broker(4).is_none());
    for (id, broker) in &paths.brokers {
        assert_eq!(broker_id_of(&leaf(&broker.peer.cert)), Some(*id));
        assert_eq!(broker_id_of(&leaf(&broker.https.cert)), None);
    }
    assert_eq!(broker_id_of(&leaf(&paths.client.cert)), None);
    assert_eq!(broker_id_of(&leaf(&paths.https_ca.cert)), None);
    assert_eq!(broker_id_of(&leaf(&paths.peer_ca.cert)), None);
}

#[test]
fn the_two_identities_of_a_broker_share_no_key_and_no_ca() {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), &[1]).expect("init");
    let broker = paths.broker(1).expect("broker 1");
    let key = |path: &Path| fs::read(path).expect("key");
    assert_ne!(key(&broker.peer.key), key(&broker.https.key));
    assert_ne!(key(&paths.peer_ca.key), key(&paths.https_ca.key));
    // The peer certificate is what a peer listener accepts (clientAuth, from the peer CA)...
    let accepted = |ca: &Path, cert: &Path| accepted_as_client(ca, cert).expect("readable");
    assert!(accepted(&paths.peer_ca.cert, &broker.peer.cert).is_ok());
    // ...the HTTPS certificate is not: another CA, and no clientAuth even under its own CA.
    assert!(accepted(&paths.peer_ca.cert, &broker.https.cert).is_err());
    assert!(accepted(&paths.https_ca.cert, &broker.https.cert).is_err());
    assert!(accepted(&paths.peer_ca.cert, &paths.client.cert).is_err());
    assert!(accepted(&paths.https_ca.cert, &paths.client.cert).is_ok());
}

#[test]
fn rerun_keeps_the_cas_and_existing_certificates_and_adds_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = certs::init(dir.path(), &[1]).expect("first init");
    let kept = [
        first.https_ca.cert.clone(),
        first.https_ca.key.clone(),
        first.peer_ca.cert.clone(),
        first.peer_ca.key.clone(),
        first.broker(1).expect("broker 1").peer.cert.clone(),
        first.broker(1).expect("broker 1").https.cert.clone(),
    ];
    let before: Vec<Vec<u8>> = kept.iter().map(|p| fs::read(p).expect("read")).collect();

    let second = certs::init(dir.path(), &[1, 2]).expect("second init");
    for (path, bytes) in kept.iter().zip(&before) {
        assert_eq!(&fs::read(path).expect("read"), bytes, "{}", path.display());
    }
    let broker_two = &second.broker(2).expect("broker 2").peer.cert;
    assert_eq!(broker_id_of(&leaf(broker_two)), Some(2));
}

#[test]
fn a_new_ca_reissues_every_leaf_it_signs_and_only_those() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = certs::init(dir.path(), &[1]).expect("first init");
    let broker = first.broker(1).expect("broker 1").clone();
    let read = |path: &Path| fs::read(path).expect("read");
    let (peer_before, https_before) = (read(&broker.peer.cert), read(&broker.https.cert));
    fs::remove_file(&first.peer_ca.cert).expect("remove peer-ca.pem");
    fs::remove_file(&first.peer_ca.key).expect("remove peer-ca.key");
    certs::init(dir.path(), &[1]).expect("second init");
    assert_ne!(
        peer_before,
        read(&broker.peer.cert),
        "peer leaf of a vanished CA kept"
    );
    assert_eq!(
        https_before,
        read(&broker.https.cert),
        "the client CA did not change"
    );
    let client_before = read(&first.client.cert);
    fs::remove_file(&first.https_ca.cert).expect("remove ca.pem");
    fs::remove_file(&first.https_ca.key).expect("remove ca.key");
    certs::init(dir.path(), &[1]).expect("third init");
    assert_ne!(
        https_before,
        read(&broker.https.cert),
        "HTTPS leaf of a vanished CA kept"
    );
    assert_ne!(
        client_before,
        read(&first.client.cert),
        "client leaf of a vanished CA kept"
    );
}

#[test]
fn half_a_ca_is_an_error_not_a_silent_replacement() {
    for stem in ["ca", "peer-ca"] {
        let dir = tempfile::tempdir().expect("tempdir");
        certs::init(dir.path(), &[1]).expect("init");
        fs::remove_file(dir.path().join(format!("{stem}.key"))).expect("remove key");
        assert!(matches!(
            certs::init(dir.path(), &[1]),
            Err(CertError::CaIncomplete { stem: named, .. }) if named == stem
        ));
    }
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

/// Whether `cert` is valid for the host name or IP address `name` (as a TLS client checks it).
fn valid_for(cert: &CertificateDer<'static>, name: &str) -> bool {
    let parsed = webpki::EndEntityCert::try_from(cert).expect("parse leaf");
    let name = rustls_pki_types::ServerName::try_from(name).expect("server name");
    parsed.verify_is_valid_for_subject_name(&name).is_ok()
}

#[test]
fn extra_names_go_into_both_certificates_of_their_broker_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let brokers = [
        certs::BrokerNames {
            id: 1,
            names: vec!["10.201.7.1".into(), "broker-1.example".into()],
        },
        certs::BrokerNames {
            id: 2,
            names: Vec::new(),
        },
    ];
    let paths = certs::init_with_names(dir.path(), &brokers).expect("init");
    let one = paths.broker(1).expect("broker 1");
    for cert in [&one.peer.cert, &one.https.cert] {
        let cert = leaf(cert);
        for name in ["10.201.7.1", "broker-1.example", "127.0.0.1", "localhost"] {
            assert!(valid_for(&cert, name), "broker 1 must be valid for {name}");
        }
        assert!(!valid_for(&cert, "10.201.7.2"));
    }
    assert_eq!(broker_id_of(&leaf(&one.peer.cert)), Some(1));
    let two = leaf(&paths.broker(2).expect("broker 2").peer.cert);
    assert!(valid_for(&two, "127.0.0.1"));
    assert!(!valid_for(&two, "10.201.7.1"), "names are per broker");
    let zero = [certs::BrokerNames {
        id: 0,
        names: Vec::new(),
    }];
    assert!(matches!(
        certs::init_with_names(dir.path(), &zero),
        Err(CertError::InvalidBrokerId)
    ));
}
