//! Start-up checks that keep a broker's two identities apart: the peer identity (`[peer]`), which
//! carries the broker's authority in the cluster, and the HTTPS identity (`[http]`), which only
//! proves to clients that they reach the API.
//!
//! Whoever holds the HTTPS key must gain no cluster authority, so the broker refuses to start
//! when the two share a key pair, or when the HTTPS certificate would be accepted on the peer
//! link as a broker (it chains to `peer.ca_cert`, allows clientAuth and names a broker id). It
//! also refuses a peer certificate its own peers would refuse, with a message naming the keys,
//! rather than failing every handshake later. Reads the files the configuration names; decides
//! nothing about connections (that is `tls` and `network`).

use std::path::{Path, PathBuf};

use super::certs::broker_id_of;
use super::tls::{self, TlsError};

/// The files of the peer identity, as `[peer]` names them.
#[derive(Clone, Copy, Debug)]
pub struct PeerFiles<'a> {
    pub ca_cert: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// The files of the HTTPS identity, as `[http]` names them.
#[derive(Clone, Copy, Debug)]
pub struct HttpsFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// How to make separate identities, for the messages below.
const SEPARATE_HOW: &str =
    "`palisade certs init --dir DIR --brokers IDS` writes peer-<id>.pem/.key \
     and peer-ca.pem for [peer] cert/key/ca_cert, and https-<id>.pem/.key for [http] cert/key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "peer.cert ({cert}) would be refused by the other brokers: {reason}; it must chain to \
         peer.ca_cert ({ca}) and allow clientAuth. {SEPARATE_HOW}"
    )]
    PeerCertRefused {
        cert: PathBuf,
        ca: PathBuf,
        reason: rustls::Error,
    },
    #[error(
        "http.key ({http}) and peer.key ({peer}) hold the same key pair: whoever holds the HTTPS \
         key would also hold this broker's cluster authority. Give the client API and the peer \
         link separate keys and certificates; {SEPARATE_HOW}"
    )]
    SharedKey { http: PathBuf, peer: PathBuf },
    #[error(
        "http.cert ({cert}) would be accepted on the peer link as broker {broker} (it chains to \
         peer.ca_cert, allows clientAuth and names palisade://broker/{broker}): whoever holds the \
         HTTPS key would hold cluster authority. Use an HTTPS certificate without a broker id, \
         without clientAuth, or from another CA; {SEPARATE_HOW}"
    )]
    HttpsCertIsPeerCert { cert: PathBuf, broker: u64 },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Checks the peer identity, and that the HTTPS identity (when the API serves HTTPS) holds no
/// peer authority.
pub fn check(peer: PeerFiles<'_>, https: Option<HttpsFiles<'_>>) -> Result<(), IdentityError> {
    if let Err(reason) = tls::accepted_as_client(peer.ca_cert, peer.cert)? {
        return Err(IdentityError::PeerCertRefused {
            cert: peer.cert.to_path_buf(),
            ca: peer.ca_cert.to_path_buf(),
            reason,
        });
    }
    let Some(https) = https else {
        return Ok(());
    };
    if tls::load_key(https.key)?.secret_der() == tls::load_key(peer.key)?.secret_der() {
        return Err(IdentityError::SharedKey {
            http: https.key.to_path_buf(),
            peer: peer.key.to_path_buf(),
        });
    }
    let accepted = tls::accepted_as_client(peer.ca_cert, https.cert)?.is_ok();
    let named = tls::load_certs(https.cert)?.first().and_then(broker_id_of);
    if let (true, Some(broker)) = (accepted, named) {
        return Err(IdentityError::HttpsCertIsPeerCert {
            cert: https.cert.to_path_buf(),
            broker,
        });
    }
    Ok(())
}
