//! Certificate generation for a Palisade cluster (rcgen).
//!
//! Owns the on-disk layout of a certificate directory. A broker has two identities, each with its
//! own key pair and its own CA, so that neither can stand in for the other:
//! - the peer identity (`peer-ca.pem`, `peer-ca.key`; `peer-<id>.pem`, `peer-<id>.key`): the
//!   broker id as a URI SAN `palisade://broker/<id>`, extended key usages clientAuth and
//!   serverAuth (a broker is both ends of peer links), signed by the peer CA that only brokers
//!   trust;
//! - the HTTPS identity (`ca.pem`, `ca.key`; `https-<id>.pem`, `https-<id>.key`): DNS and IP
//!   SANs only, serverAuth only, signed by the CA clients trust.
//!
//! Plus one client certificate (`client.pem`, `client.key`, no broker id, from the client CA) for
//! tools that present one. Private keys are written with mode 0600. `broker_id_of` reads the
//! broker id back from a peer certificate. This module must not decide whether a peer is
//! trusted: chain verification belongs to the TLS configuration (`tls`) and the start-up checks
//! (`identity`).
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;

/// URI SAN prefix that names a broker id in its certificate.
pub const BROKER_URI_PREFIX: &str = "palisade://broker/";
/// Validity of the CAs, in years from the start of the current year.
const CA_VALIDITY_YEARS: i32 = 10;
/// Validity of broker and client certificates, in years from the start of the current year.
const LEAF_VALIDITY_YEARS: i32 = 5;
/// Common names of the two CAs. An issuer is rebuilt from its name on re-runs, so they are fixed.
const HTTPS_CA_COMMON_NAME: &str = "Palisade cluster CA";
const PEER_CA_COMMON_NAME: &str = "Palisade peer CA";
const ORGANIZATION: &str = "Palisade";
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// Failures while creating or reading certificate files.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{dir} holds only one of {stem}.pem and {stem}.key; restore the other or remove both")]
    CaIncomplete { dir: PathBuf, stem: &'static str },
    #[error("broker id 0 is not allowed (ids start at 1)")]
    InvalidBrokerId,
}

/// Certificate and key file of one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The two identities of one broker; they share no key and no CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerCerts {
    /// For `[peer] cert`/`key`: names the broker id, clientAuth and serverAuth, from the peer CA.
    pub peer: KeyedCert,
    /// For `[http] cert`/`key`: DNS and IP names only, serverAuth only, from the client CA.
    pub https: KeyedCert,
}

/// Paths of everything `init` wrote or kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub dir: PathBuf,
    /// The CA clients trust for the HTTPS API (`ca.pem`); it signs no peer certificate.
    pub https_ca: KeyedCert,
    /// The CA brokers trust on peer links (`peer-ca.pem`, for `[peer] ca_cert`).
    pub peer_ca: KeyedCert,
    /// One entry per requested broker id, in the order requested.
    pub brokers: Vec<(u64, BrokerCerts)>,
    pub client: KeyedCert,
}

impl CertPaths {
    /// The certificates of broker `id`, if `init` was asked for it.
    pub fn broker(&self, id: u64) -> Option<&BrokerCerts> {
        self.brokers
            .iter()
            .find(|(broker_id, _)| *broker_id == id)
            .map(|(_, paths)| paths)
    }
}

/// The names one broker is reached by besides `localhost` and `127.0.0.1`: IP addresses
/// (written as IP SANs) or DNS names. Peers dial the address listed for a broker and check it
/// against its peer certificate, so a broker on another host needs that address here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNames {
    pub id: u64,
    pub names: Vec<String>,
}

/// Creates (or completes) the certificate directory `dir`.
///
/// An existing CA is kept and signs any missing certificate of its own; existing leaf
/// certificates are kept. When a CA is created anew, every leaf it signs is re-issued so that
/// nothing in the directory is signed by a CA that no longer exists.
pub fn init(dir: &Path, broker_ids: &[u64]) -> Result<CertPaths, CertError> {
    let brokers: Vec<BrokerNames> = broker_ids
        .iter()
        .map(|&id| BrokerNames {
            id,
            names: Vec::new(),
        })
        .collect();
    init_with_names(dir, &brokers)
}

/// Like `init`, with each broker's peer and HTTPS certificates also naming `names`. The names
/// only go into certificates this call writes: a kept certificate keeps the names it has.
pub fn init_with_names(dir: &Path, brokers: &[BrokerNames]) -> Result<CertPaths, CertError> {
    if brokers.iter().any(|broker| broker.id == 0) {
        return Err(CertError::InvalidBrokerId);
    }
    fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let https_ca = keyed(dir, "ca");
    let (https_issuer, https_reissue) =
        load_or_create_ca(dir, &https_ca, "ca", HTTPS_CA_COMMON_NAME)?;
    let peer_ca = keyed(dir, "peer-ca");
    let (peer_issuer, peer_reissue) =
        load_or_create_ca(dir, &peer_ca, "peer-ca", PEER_CA_COMMON_NAME)?;
    let mut written = Vec::with_capacity(brokers.len());
    for BrokerNames { id, names } in brokers {
        let (id, names) = (*id, host_names(names)?);
        let certs = BrokerCerts {
            peer: keyed(dir, &format!("peer-{id}")),
            https: keyed(dir, &format!("https-{id}")),
        };
        if peer_reissue.needed(&certs.peer) {
            write_leaf(&certs.peer, &peer_params(id, &names)?, &peer_issuer)?;
        }
        if https_reissue.needed(&certs.https) {
            write_leaf(&certs.https, &https_params(id, &names)?, &https_issuer)?;
        }
        written.push((id, certs));
    }
    let client = keyed(dir, "client");
    if https_reissue.needed(&client) {
        write_leaf(&client, &client_params(), &https_issuer)?;
    }
    Ok(CertPaths {
        dir: dir.to_path_buf(),
        https_ca,
        peer_ca,
        brokers: written,
        client,
    })
}

/// The broker id named by a certificate's `palisade://broker/<id>` URI SAN.
///
/// Returns `None` when the certificate cannot be parsed, names no broker, or names more than
/// one distinct id (an ambiguous identity is no identity). It does not verify the chain.
pub fn broker_id_of(cert: &CertificateDer<'_>) -> Option<u64> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let mut found: Option<u64> = None;
    for uri in parsed.valid_uri_names() {
        let Some(id) = uri
            .strip_prefix(BROKER_URI_PREFIX)
            .and_then(|rest| rest.parse::<u64>().ok())
        else {
            continue;
        };
        match found {
            Some(previous) if previous != id => return None,
            _ => found = Some(id),
        }
    }
    found.filter(|id| *id != 0)
}

/// Whether leaf certificates must be written even if present.
#[derive(Clone, Copy)]
enum Reissue {
    Always,
    WhenMissing,
}

impl Reissue {
    fn needed(self, paths: &KeyedCert) -> bool {
        match self {
            Reissue::Always => true,
            Reissue::WhenMissing => !(paths.cert.exists() && paths.key.exists()),
        }
    }
}

fn keyed(dir: &Path, stem: &str) -> KeyedCert {
    KeyedCert {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    }
}

/// Loads a CA key and rebuilds its issuer, or creates a new CA. Returns whether the leaves it
/// signs must be re-issued (it was created now).
fn load_or_create_ca(
    dir: &Path,
    ca: &KeyedCert,
    stem: &'static str,
    common_name: &str,
) -> Result<(Issuer<'static, KeyPair>, Reissue), CertError> {
    match (ca.cert.exists(), ca.key.exists()) {
        (true, true) => {
            let key_pem =
                fs::read_to_string(&ca.key).map_err(|source| io_error(&ca.key, source))?;
            let key = KeyPair::from_pem(&key_pem)?;
            // The issuer only needs the CA's subject, key identifier method and key usages,
            // which `ca_params` reproduces exactly; the key itself comes from disk.
            Ok((
                Issuer::new(ca_params(common_name), key),
                Reissue::WhenMissing,
            ))
        }
        (false, false) => {
            let key = KeyPair::generate()?;
            let params = ca_params(common_name);
            let cert = params.self_signed(&key)?;
            write_file(&ca.key, key.serialize_pem().as_bytes(), KEY_MODE)?;
            write_file(&ca.cert, cert.pem().as_bytes(), CERT_MODE)?;
            Ok((Issuer::new(params, key), Reissue::Always))
        }
        _ => Err(CertError::CaIncomplete {
            dir: dir.to_path_buf(),
            stem,
        }),
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY_YEARS);
    params
}

/// The names peers and clients reach a broker by: this machine's, then `extra` (an IP address
/// becomes an IP SAN, anything else a DNS name).
fn host_names(extra: &[String]) -> Result<Vec<SanType>, CertError> {
    let mut names = vec![
        SanType::DnsName(Ia5String::try_from("localhost")?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    ];
    for name in extra {
        names.push(match name.parse::<IpAddr>() {
            Ok(address) => SanType::IpAddress(address),
            Err(_) => SanType::DnsName(Ia5String::try_from(name.as_str())?),
        });
    }
    Ok(names)
}

/// A peer certificate: the broker id, plus the addresses peers dial (a dialler checks them).
fn peer_params(id: u64, names: &[SanType]) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&format!("palisade broker {id} peer"));
    params.subject_alt_names = names.to_vec();
    params
        .subject_alt_names
        .push(SanType::URI(Ia5String::try_from(format!(
            "{BROKER_URI_PREFIX}{id}"
        ))?));
    // Brokers are both ends of peer links, so one certificate serves both roles.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf_common(&mut params);
    Ok(params)
}

/// An HTTPS certificate: host names only, and only for serving. Without clientAuth and without
/// a broker id it cannot open a peer link even under a CA peers trust.
fn https_params(id: u64, names: &[SanType]) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&format!("palisade broker {id} https"));
    params.subject_alt_names = names.to_vec();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_common(&mut params);
    Ok(params)
}

fn client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name("palisade client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf_common(&mut params);
    params
}

fn leaf_common(params: &mut CertificateParams) {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    set_validity(params, LEAF_VALIDITY_YEARS);
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// Valid from the start of last year (tolerates skewed clocks) for `years` after this year.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let year = current_year();
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + years, 1, 1);
}

fn current_year() -> i32 {
    const SECONDS_PER_YEAR: u64 = 31_556_952;
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    1970 + i32::try_from(seconds / SECONDS_PER_YEAR).unwrap_or(0)
}

fn write_leaf(
    paths: &KeyedCert,
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(), CertError> {
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    write_file(&paths.key, key.serialize_pem().as_bytes(), KEY_MODE)?;
    write_file(&paths.cert, cert.pem().as_bytes(), CERT_MODE)?;
    Ok(())
}

/// Writes `bytes` to `path` with `mode`, also tightening the mode of a file that existed.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|source| io_error(path, source))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|source| io_error(path, source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> CertError {
    CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}
