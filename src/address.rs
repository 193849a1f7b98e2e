//! Where a peer is dialled: a host (an IP address or a DNS name) and a port.
//!
//! A DNS name is resolved at every dial, never cached across dials, so a broker that comes
//! back with a new IP address (a Kubernetes pod rescheduled behind its StatefulSet name) is
//! found again at the next dial. The dialled host is also the name the peer's certificate must
//! carry: a DNS SAN for a name, an IP SAN for an address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Longest DNS name accepted (RFC 1035: 253 characters in text form).
pub const HOST_CHARACTERS_MAX: usize = 253;

/// A peer's dial address: `host:port`, the host an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Host {
    Ip(IpAddr),
    /// Lowercase, 1 to `HOST_CHARACTERS_MAX` characters of `a-z 0-9 . -`.
    Name(String),
}

impl PeerAddress {
    /// The IP address when the host is one; `None` for a DNS name.
    pub fn ip(&self) -> Option<IpAddr> {
        match &self.host {
            Host::Ip(address) => Some(*address),
            Host::Name(_) => None,
        }
    }

    /// The host as written (a DNS name) or as an address (without brackets).
    pub fn host(&self) -> String {
        match &self.host {
            Host::Ip(address) => address.to_string(),
            Host::Name(name) => name.clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl From<SocketAddr> for PeerAddress {
    fn from(address: SocketAddr) -> Self {
        PeerAddress {
            host: Host::Ip(address.ip()),
            port: address.port(),
        }
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(address) => write!(formatter, "{}", SocketAddr::new(*address, self.port)),
            Host::Name(name) => write!(formatter, "{name}:{}", self.port),
        }
    }
}

/// Why a text is not a peer address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a peer address: expected host:port, the host an IP address (\"10.0.0.1\", \
     \"[::1]\") or a DNS name of letters, digits, '.' and '-' (\"palisade-0.palisade\")"
)]
pub struct AddressError {
    text: String,
}

impl FromStr for PeerAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || AddressError {
            text: text.to_string(),
        };
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Ok(address.into());
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(error)?;
        let port: u16 = port.parse().map_err(|_| error())?;
        if port == 0 || !is_dns_name(host) {
            return Err(error());
        }
        Ok(PeerAddress {
            host: Host::Name(host.to_ascii_lowercase()),
            port,
        })
    }
}

/// Letters, digits, `-` and `.`, labels of 1 to 63 characters not starting or ending with `-`;
/// not all digits and dots (that would be a malformed IPv4 address).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    !host.is_empty() && host.len() <= HOST_CHARACTERS_MAX && labels_ok && !numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_parse_and_print_back() {
        for text in [
            "127.0.0.1:9441",
            "[::1]:9441",
            "localhost:9441",
            "palisade-0.palisade.default.svc.cluster.local:9441",
        ] {
            let address: PeerAddress = text.parse().expect(text);
            assert_eq!(address.to_string(), text);
        }
        let name: PeerAddress = "Palisade-0.Palisade:1".parse().unwrap();
        assert_eq!(name.host(), "palisade-0.palisade");
        assert_eq!(name.ip(), None);
        assert_eq!(name.port(), 1);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for text in [
            "",
            "palisade-0",
            "palisade-0:",
            "palisade-0:0",
            "palisade-0:70000",
            ":9441",
            "-bad.name:9441",
            "under_score:9441",
            "a..b:9441",
            "999.1.1.1:9441",
            "::1:9441",
            "host name:9441",
        ] {
            assert!(text.parse::<PeerAddress>().is_err(), "{text:?} parsed");
        }
    }
}
