//! The error type for everything above the raw I/O edges.

use std::fmt;
use std::io;

use crate::Addr;

/// Errors returned by netloop's non-I/O APIs: starting a server, sending through a
/// [`ConnHandle`](crate::ConnHandle), dialing.
///
/// Raw socket operations inside a handler return [`std::io::Result`]; this type wraps
/// such errors where more context helps (which address failed to bind, for example).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection is closed (or closing); the data was not queued.
    Closed,
    /// The connection's output queue is at its high-water mark; the data was not queued.
    /// Retry after the peer has drained some output.
    Full,
    /// The server is shutting down or has shut down.
    ShuttingDown,
    /// The builder was given a configuration that cannot work; the message says why.
    Config(String),
    /// Binding a listener failed.
    Bind {
        /// The address that could not be bound.
        addr: Addr,
        /// The underlying error.
        source: io::Error,
    },
    /// Any other I/O error.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("connection is closed"),
            Error::Full => f.write_str("connection output is at its high-water mark"),
            Error::ShuttingDown => f.write_str("server is shutting down"),
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::Bind { source, .. } => source,
            Error::Closed => io::Error::new(io::ErrorKind::NotConnected, e),
            Error::Full => io::Error::new(io::ErrorKind::WouldBlock, e),
            other => io::Error::other(other),
        }
    }
}
