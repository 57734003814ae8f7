//! Socket addresses for every transport netloop serves: TCP (IPv4/IPv6) and Unix domain sockets.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An address a server listens on, a connection's peer or local end, or a dial target.
///
/// Parse one from a string: `"127.0.0.1:7000"`, `"[::1]:0"` or `"unix:/tmp/app.sock"`.
///
/// ```
/// use netloop::Addr;
/// let tcp: Addr = "127.0.0.1:0".parse().unwrap();
/// let unix: Addr = "unix:/tmp/app.sock".parse().unwrap();
/// assert!(tcp.as_tcp().is_some());
/// assert_eq!(unix.as_unix().unwrap().to_str(), Some("/tmp/app.sock"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A TCP address, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A Unix domain socket path. The path is empty for an unnamed socket
    /// (the usual peer address of a Unix client).
    Unix(PathBuf),
}

impl Addr {
    /// A Unix domain socket address.
    pub fn unix(path: impl Into<PathBuf>) -> Addr {
        Addr::Unix(path.into())
    }

    /// The TCP address, if this is one.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }

    /// The Unix socket path, if this is one.
    pub fn as_unix(&self) -> Option<&Path> {
        match self {
            Addr::Tcp(_) => None,
            Addr::Unix(p) => Some(p),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Tcp(a)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) if p.as_os_str().is_empty() => f.write_str("unix:(unnamed)"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The error returned when a string is not a valid [`Addr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrParseError {
    input: String,
    expected: &'static str,
}

impl AddrParseError {
    /// `input` is not an address of the forms `expected` lists.
    pub(crate) fn new(input: &str, expected: &'static str) -> AddrParseError {
        AddrParseError {
            input: input.to_owned(),
            expected,
        }
    }
}

/// The forms an [`Addr`] is written in.
const ADDR_FORMS: &str = "\"IP:PORT\", \"[IPV6]:PORT\" or \"unix:/path\"";

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid address {:?}: expected {}",
            self.input, self.expected
        )
    }
}

impl std::error::Error for AddrParseError {}

impl FromStr for Addr {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Addr, AddrParseError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddrParseError::new(s, ADDR_FORMS));
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(Addr::Tcp)
            .map_err(|_| AddrParseError::new(s, ADDR_FORMS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_v4_v6_and_unix() {
        assert_eq!(
            "127.0.0.1:80".parse::<Addr>().unwrap(),
            Addr::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert!("[::1]:0"
            .parse::<Addr>()
            .unwrap()
            .as_tcp()
            .unwrap()
            .is_ipv6());
        assert_eq!("unix:/a/b".parse::<Addr>().unwrap(), Addr::unix("/a/b"));
    }

    #[test]
    fn rejects_garbage_with_a_clear_message() {
        let err = "localhost".parse::<Addr>().unwrap_err();
        assert!(err.to_string().contains("expected"));
        assert!("unix:".parse::<Addr>().is_err());
    }

    #[test]
    fn displays_round_trip() {
        for s in ["127.0.0.1:7000", "[::1]:9", "unix:/tmp/x.sock"] {
            assert_eq!(s.parse::<Addr>().unwrap().to_string(), s);
        }
    }
}
