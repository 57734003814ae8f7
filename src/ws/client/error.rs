//! What can go wrong with an engine: why a connection attempt or a session failed, why
//! a send was refused, why `stop` gave up waiting.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::handshake::HandshakeError;
use super::url::UrlError;
use crate::ws::codec::ProtocolError;
use crate::CloseReason;

/// Why an engine could not connect, or why its session ended badly.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// The URL cannot be dialed.
    Url(UrlError),
    /// `wss://` needs TLS, which this build does not have (the `tls` feature is off).
    TlsUnsupported,
    /// `wss://` needs TLS settings that could not be made (no system trust roots).
    Tls(String),
    /// The TCP connection could not be made (refused, unreachable, the name did not
    /// resolve, the connect timeout passed).
    Connect(Arc<io::Error>),
    /// The server's answer to the upgrade request did not open a WebSocket.
    Handshake(HandshakeError),
    /// The handshake did not finish within the handshake timeout.
    HandshakeTimeout,
    /// The server broke the protocol; this side failed the connection with `code`.
    Protocol(ProtocolError),
    /// The server did not answer a ping within the pong timeout (a dead or blackholed
    /// link).
    PongTimeout,
    /// The server did not answer this side's Close within the close timeout.
    CloseTimeout,
    /// The server closed the connection with a Close frame.
    ClosedByServer {
        /// Its close code (1005 if it sent none).
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The connection ended underneath, with no closing handshake: the core's reason.
    Lost(CloseReason),
    /// The runtime is shutting down.
    ShuttingDown,
    /// [`EngineBuilder::start`](super::EngineBuilder::start) gave up waiting.
    StartTimeout,
    /// The engine was stopped before it opened.
    Stopped,
}

impl EngineError {
    /// Whether the connection was broken (rather than refused by the server's answer or
    /// the protocol): a lost socket or a silent peer.
    pub fn is_broken_connection(&self) -> bool {
        matches!(
            self,
            EngineError::Lost(_) | EngineError::PongTimeout | EngineError::CloseTimeout
        )
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Url(e) => e.fmt(f),
            EngineError::TlsUnsupported => {
                f.write_str("wss:// needs TLS: build netloop with its `tls` feature")
            }
            EngineError::Tls(e) => write!(f, "wss:// cannot be set up: {e}"),
            EngineError::Connect(e) => write!(f, "cannot connect: {e}"),
            EngineError::Handshake(e) => e.fmt(f),
            EngineError::HandshakeTimeout => {
                f.write_str("the opening handshake did not finish in time")
            }
            EngineError::Protocol(e) => write!(f, "the server broke the protocol: {e}"),
            EngineError::PongTimeout => f.write_str("no pong within the pong timeout"),
            EngineError::CloseTimeout => f.write_str("no Close answer within the close timeout"),
            EngineError::ClosedByServer { code, reason } => {
                write!(f, "the server closed the connection ({code} {reason:?})")
            }
            EngineError::Lost(r) => write!(f, "the connection was lost ({r:?})"),
            EngineError::ShuttingDown => f.write_str("the runtime is shutting down"),
            EngineError::StartTimeout => f.write_str("the engine did not open in time"),
            EngineError::Stopped => f.write_str("the engine was stopped"),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Url(e) => Some(e),
            EngineError::Connect(e) => Some(&**e),
            EngineError::Handshake(e) => Some(e),
            EngineError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an [`EngineHandle`](super::EngineHandle) send did not queue the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The engine is stopped or stopping.
    Stopped,
    /// The engine is reconnecting and its offline policy is
    /// [`Offline::Fail`](super::Offline::Fail).
    NotConnected,
    /// The engine is reconnecting and its offline buffer is full (messages or bytes).
    BufferFull,
    /// The connection's output is at its high-water mark (a slow server).
    Full,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Stopped => "the engine is stopped",
            SendError::NotConnected => "the engine is not connected (and buffers nothing)",
            SendError::BufferFull => "the engine is reconnecting and its offline buffer is full",
            SendError::Full => "the connection's output is at its high-water mark",
        })
    }
}

impl std::error::Error for SendError {}

/// [`Engine::stop`](super::Engine::stop) returned at its timeout, the engine not yet
/// stopped (a callback still running, say); it goes on stopping by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopTimeout;

impl fmt::Display for StopTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the engine did not stop within the timeout")
    }
}

impl std::error::Error for StopTimeout {}
