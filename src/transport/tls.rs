//! rustls configurations for the HTTPS API and the mutual-TLS peer links.
//!
//! Owns reading PEM certificates and keys, and building `ServerConfig` / `ClientConfig` with
//! the aws-lc-rs provider. With a client CA the server requires TLS 1.3 and a client
//! certificate chaining to that CA (no plaintext or unauthenticated fallback). It must not
//! decide what an authenticated peer may do; it only exposes the peer's broker id.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, CommonState, RootCertStore, ServerConfig};

use crate::transport::certs::broker_id_of;

/// Failures while reading TLS material or assembling a configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read PEM from {path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} contains no certificate")]
    NoCertificates { path: PathBuf },
    #[error("certificate in {path} is not a usable trust anchor: {source}")]
    TrustAnchor {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs aws-lc-rs as the process-wide rustls provider (for reqwest and actix-tls).
///
/// Idempotent: a second call, or a provider installed by someone else first, is not an error.
/// The configurations built here name their provider explicitly and do not depend on this.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is the state we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A server configuration presenting `cert` (a PEM chain) and `key`.
///
/// With `client_ca`, only TLS 1.3 is offered and every client must present a certificate that
/// chains to that CA. Without it, any TLS client is accepted (the HTTPS API authenticates
/// clients by token instead).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let chain = load_certs(cert)?;
    let private_key = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone());
    let config = match client_ca {
        Some(ca) => {
            let verifier = client_verifier(ca, provider)?;
            builder
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, private_key)?
        }
        None => builder
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)?,
    };
    Ok(config)
}

/// The check a peer listener applies to client certificates: a chain to `ca`, and the clientAuth
/// extended key usage when the certificate lists any.
fn client_verifier(
    ca: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = Arc::new(load_roots(ca)?);
    Ok(WebPkiClientVerifier::builder_with_provider(roots, provider).build()?)
}

/// Whether a listener built with `server_config(.., Some(ca))` accepts `cert` (a PEM chain, leaf
/// first) as a client certificate: `Ok(Err(why))` when it refuses it.
pub fn accepted_as_client(ca: &Path, cert: &Path) -> Result<Result<(), rustls::Error>, TlsError> {
    let verifier = client_verifier(ca, provider())?;
    let chain = load_certs(cert)?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| TlsError::NoCertificates {
            path: cert.to_path_buf(),
        })?;
    Ok(verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(drop))
}

/// A client configuration trusting only `ca`, optionally presenting `identity` (cert, key).
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The broker id of the authenticated peer of a finished handshake, if its certificate names one.
///
/// Only meaningful on a connection whose configuration verified the peer's chain (an mTLS
/// server config, or any client config from `client_config`).
pub fn peer_broker_id(connection: &CommonState) -> Option<u64> {
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(broker_id_of)
}

/// All certificates of a PEM file, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|source| pem_error(path, source))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| pem_error(path, source))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| pem_error(path, source))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::TrustAnchor {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn pem_error(path: &Path, source: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        source,
    }
}
