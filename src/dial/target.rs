//! What a dial connects to: an address, or a host name to resolve.

use std::fmt;
use std::net::SocketAddr;

use crate::{Addr, AddrParseError};

/// The target of [`Dialer::dial`](crate::Dialer::dial).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A socket address (TCP or Unix domain): connected at once.
    Addr(Addr),
    /// A host name and port: resolved off the poller threads, then each address tried in
    /// turn.
    Host {
        /// The name, e.g. `"localhost"`.
        host: String,
        /// The port.
        port: u16,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => a.fmt(f),
            Target::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Something [`Dialer::dial`](crate::Dialer::dial) accepts as a target: an [`Addr`], a
/// [`SocketAddr`], a `(host, port)` pair, or a string: `"127.0.0.1:7000"`,
/// `"[::1]:7000"`, `"unix:/tmp/app.sock"` or `"localhost:7000"`.
///
/// ```
/// use netloop::{IntoTarget, Target};
/// assert!(matches!("127.0.0.1:80".into_target(), Ok(Target::Addr(_))));
/// assert_eq!(
///     "example.com:443".into_target().unwrap(),
///     Target::Host { host: "example.com".into(), port: 443 }
/// );
/// assert!("example.com".into_target().is_err(), "no port");
/// ```
pub trait IntoTarget {
    /// Converts into a target, or says why the text is not one.
    fn into_target(self) -> Result<Target, AddrParseError>;
}

impl IntoTarget for Target {
    fn into_target(self) -> Result<Target, AddrParseError> {
        Ok(self)
    }
}

impl IntoTarget for Addr {
    fn into_target(self) -> Result<Target, AddrParseError> {
        Ok(Target::Addr(self))
    }
}

impl IntoTarget for SocketAddr {
    fn into_target(self) -> Result<Target, AddrParseError> {
        Ok(Target::Addr(Addr::Tcp(self)))
    }
}

impl IntoTarget for (&str, u16) {
    fn into_target(self) -> Result<Target, AddrParseError> {
        match self.0.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(Target::Addr(Addr::Tcp(SocketAddr::new(ip, self.1)))),
            Err(_) => host(self.0, self.1),
        }
    }
}

impl IntoTarget for &str {
    fn into_target(self) -> Result<Target, AddrParseError> {
        if let Ok(addr) = self.parse::<Addr>() {
            return Ok(Target::Addr(addr));
        }
        let bad = || AddrParseError::new(self, TARGET_FORMS);
        let (name, port) = self.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        host(name, port).map_err(|_| bad())
    }
}

impl IntoTarget for String {
    fn into_target(self) -> Result<Target, AddrParseError> {
        self.as_str().into_target()
    }
}

impl IntoTarget for &String {
    fn into_target(self) -> Result<Target, AddrParseError> {
        self.as_str().into_target()
    }
}

/// The forms a [`Target`] is written in.
const TARGET_FORMS: &str = "\"HOST:PORT\", \"IP:PORT\", \"[IPV6]:PORT\" or \"unix:/path\"";

/// A host name target, if `name` can be one.
fn host(name: &str, port: u16) -> Result<Target, AddrParseError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if valid {
        Ok(Target::Host {
            host: name.to_string(),
            port,
        })
    } else {
        Err(AddrParseError::new(
            name,
            "a host name (letters, digits, '-', '.', '_')",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_names_and_garbage() {
        assert_eq!(
            "[::1]:9".into_target().unwrap(),
            Target::Addr("[::1]:9".parse().unwrap())
        );
        assert_eq!(
            ("localhost", 80).into_target().unwrap(),
            Target::Host {
                host: "localhost".into(),
                port: 80
            }
        );
        assert_eq!(
            ("10.0.0.1", 80).into_target().unwrap(),
            Target::Addr("10.0.0.1:80".parse().unwrap())
        );
        for bad in ["", ":80", "host:", "host:99999", "a b:80", "host"] {
            assert!(bad.into_target().is_err(), "{bad:?}");
        }
    }
}
