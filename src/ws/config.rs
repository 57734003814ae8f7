//! [`Config`]: every setting of a WebSocket server, with its default.

use std::sync::Arc;
use std::time::Duration;

use super::deflate::DeflateConfig;

/// What a [`WsHandle`](super::WsHandle) send does when the connection already has
/// [`Config::max_backpressure`] bytes queued (a slow or stalled peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backpressure {
    /// Skip the message: the send returns [`SendError::Dropped`](super::SendError::Dropped),
    /// the drop is counted, and [`WsHandler::on_dropped`](super::WsHandler::on_dropped)
    /// runs on the connection's turn.
    Drop,
    /// Close the connection (a peer that cannot keep up is cut off).
    Close,
    /// Block the sending thread until there is room again, at most this long; then
    /// [`SendError::Full`](super::SendError::Full).
    Wait(Duration),
}

/// A WebSocket server's settings.
///
/// ```
/// use std::time::Duration;
/// use netloop::ws::{Backpressure, Config, DeflateConfig};
///
/// let config = Config::default()
///     .max_message_size(16 << 20)
///     .ping_interval(Some(Duration::from_secs(15)))
///     .backpressure(Backpressure::Close)
///     .subprotocols(["chat.v2", "chat.v1"])
///     .deflate(DeflateConfig::default());
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) max_frame_size: usize,
    pub(crate) max_message_size: usize,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_backpressure: usize,
    pub(crate) backpressure: Backpressure,
    pub(crate) deflate: Option<DeflateConfig>,
    pub(crate) subprotocols: Vec<String>,
    pub(crate) origin: Option<Arc<OriginCheck>>,
}

/// The origin check of [`Config::check_origin`].
pub(crate) type OriginCheck = dyn Fn(Option<&[u8]>) -> bool + Send + Sync + 'static;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("max_frame_size", &self.max_frame_size)
            .field("max_message_size", &self.max_message_size)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_backpressure", &self.max_backpressure)
            .field("backpressure", &self.backpressure)
            .field("deflate", &self.deflate)
            .field("subprotocols", &self.subprotocols)
            .field("origin_check", &self.origin.is_some())
            .finish()
    }
}

impl Default for Config {
    /// Safe for a server facing the internet: 1 MiB messages and frames, a ping every
    /// 30 s answered within 10 s, 5 s for the closing handshake, 1 MiB queued per
    /// connection before sends from other threads are dropped, no compression, any
    /// origin.
    fn default() -> Config {
        Config {
            max_frame_size: 1 << 20,
            max_message_size: 1 << 20,
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            max_backpressure: 1 << 20,
            backpressure: Backpressure::Drop,
            deflate: None,
            subprotocols: Vec::new(),
            origin: None,
        }
    }
}

impl Config {
    /// The largest frame payload accepted; a larger declared length fails the
    /// connection with close code 1009 before its payload is buffered. Default: 1 MiB.
    /// (The server's [`Builder::max_want`](crate::Builder::max_want) bounds it too.)
    pub fn max_frame_size(mut self, bytes: usize) -> Config {
        self.max_frame_size = bytes;
        self
    }

    /// The largest message accepted, its fragments together and inflated; larger ones
    /// fail the connection with close code 1009. Default: 1 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Config {
        self.max_message_size = bytes;
        self
    }

    /// How often the server pings each connection (`None`: never). Default: 30 s.
    /// [`WsConn::set_liveness`](super::WsConn::set_liveness) overrides it per connection.
    pub fn ping_interval(mut self, every: Option<Duration>) -> Config {
        self.ping_interval = every;
        self
    }

    /// How long a ping may go unanswered before the peer counts as gone (closed with
    /// [`Cause::PongTimeout`](super::Cause::PongTimeout)). Default: 10 s.
    pub fn pong_timeout(mut self, timeout: Duration) -> Config {
        self.pong_timeout = timeout;
        self
    }

    /// How long the closing handshake may take: after sending a Close frame, the
    /// connection waits this long for the peer's. Default: 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Config {
        self.close_timeout = timeout;
        self
    }

    /// Closes a connection with no traffic either way for this long (the core's idle
    /// timeout; pings count as traffic). Default: none (liveness is the pings' job).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// Bytes queued for a connection (not yet taken by its socket) past which sends
    /// from other threads meet the [`Backpressure`] policy. Default: 1 MiB.
    pub fn max_backpressure(mut self, bytes: usize) -> Config {
        self.max_backpressure = bytes;
        self
    }

    /// What a send from another thread does past [`max_backpressure`](Config::max_backpressure).
    /// Default: [`Backpressure::Drop`].
    pub fn backpressure(mut self, policy: Backpressure) -> Config {
        self.backpressure = policy;
        self
    }

    /// Offers permessage-deflate to clients that ask for it. Default: off.
    pub fn deflate(mut self, deflate: DeflateConfig) -> Config {
        self.deflate = Some(deflate);
        self
    }

    /// The subprotocols this server speaks, in its order of preference: the first one
    /// a client offers is chosen ([`WsConn::subprotocol`](super::WsConn::subprotocol)).
    /// Default: none.
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Config
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Admits only handshakes whose `Origin` header `check` accepts (`None` if there is
    /// no header, as from non-browser clients); others get `403`. Default: any origin.
    pub fn check_origin<F>(mut self, check: F) -> Config
    where
        F: Fn(Option<&[u8]>) -> bool + Send + Sync + 'static,
    {
        self.origin = Some(Arc::new(check));
        self
    }
}
