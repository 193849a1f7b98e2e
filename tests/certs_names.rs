//! `palisade certs init --name <id>=<name>` puts the name into that broker's peer and HTTPS
//! certificates (what a peer dialling a pod's DNS name checks), and into no other broker's.

use std::process::Command;

use rustls::pki_types::{CertificateDer, ServerName};

fn certificate(path: &std::path::Path) -> CertificateDer<'static> {
    let text = std::fs::read(path).expect("certificate");
    rustls::pki_types::pem::PemObject::from_pem_slice(&text).expect("PEM certificate")
}

fn valid_for(path: &std::path::Path, name: &str) -> bool {
    let der = certificate(path);
    let parsed = webpki::EndEntityCert::try_from(&der).expect("certificate parses");
    let name = ServerName::try_from(name.to_string()).expect("server name");
    parsed.verify_is_valid_for_subject_name(&name).is_ok()
}

#[test]
fn a_named_broker_gets_the_name_in_both_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pod = "palisade-0.palisade.messaging.svc.cluster.local";
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["certs", "init", "--dir"])
        .arg(dir.path())
        .args(["--brokers", "1,2", "--name", &format!("1={pod}")])
        .output()
        .expect("run palisade certs init");
    assert!(output.status.success(), "{output:?}");
    for kind in ["peer", "https"] {
        assert!(
            valid_for(&dir.path().join(format!("{kind}-1.pem")), pod),
            "{kind}-1"
        );
        assert!(valid_for(
            &dir.path().join(format!("{kind}-1.pem")),
            "localhost"
        ));
        // Negative control: broker 2 was not given the name.
        assert!(
            !valid_for(&dir.path().join(format!("{kind}-2.pem")), pod),
            "{kind}-2"
        );
    }
}

#[test]
fn a_name_for_a_broker_not_issued_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["certs", "init", "--dir"])
        .arg(dir.path())
        .args(["--brokers", "1", "--name", "2=palisade-1.palisade"])
        .output()
        .expect("run palisade certs init");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broker 2"), "{stderr}");
}
