//! The WebSocket client: engines that keep a connection to a server open across
//! failures, on netloop's pollers.
//!
//! An [`Engine`] is one logical connection. [`EngineBuilder::start`] returns once the
//! first session is open and its `on_open` has run; from then on the engine reads
//! messages and hands them to `on_message` (in order, or up to
//! [`workers(n)`](EngineBuilder::workers) at once), pings the server and restarts the
//! session when it fails, after a jittered exponential [`Backoff`]. Other threads send
//! through an [`EngineHandle`]; while the engine reconnects, sends are buffered (up to a
//! bound) and flushed in order on reopen, or refused at once ([`Offline`]).
//! [`Engine::stop`] runs the closing handshake and returns when stopped or at its
//! timeout, whatever the callbacks are doing.
//!
//! A [`Client`] owns (or borrows) a netloop runtime with no listeners; one runtime can
//! carry thousands of engines, since an engine is a connection on a poller, not a
//! thread. Host names are resolved on the runtime's resolver thread, never on a poller.
//!
//! ```no_run
//! use std::time::Duration;
//! use netloop::ws::client::Client;
//!
//! let client = Client::start()?;
//! let engine = client
//!     .engine("ws://127.0.0.1:9001/echo")
//!     .on_open(|s, restart| {
//!         let _ = s.send_text(if restart { "hello again" } else { "hello" });
//!     })
//!     .on_message(|_s, msg| println!("got {} bytes", msg.len()))
//!     .start(Duration::from_secs(5))?;
//! engine.handle().send_text("from another thread")?;
//! engine.stop(Duration::from_secs(2))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The engine's states are in [`EngineState`]; the table of their transitions is in
//! the source of `engine.rs`, and that of one session's connection in `link.rs`.
//!
//! `wss://` URLs speak TLS through the core's transport seam
//! ([`netloop::tls`](crate::tls)): the server's certificate must be valid for the URL's
//! host and chain to the system's roots, or to those of
//! [`EngineBuilder::tls`]. Without the `tls` feature they are refused with
//! [`EngineError::TlsUnsupported`].

mod backoff;
mod engine;
mod error;
mod handler;
pub mod handshake;
mod link;
mod url;

pub use backoff::{Backoff, BackoffRng};
pub use engine::{Engine, EngineBuilder, EngineHandle, EngineState, EngineStats, Offline};
pub use error::{EngineError, SendError, StopTimeout};
pub use handler::{Ending, EngineHandler, Session};
pub use handshake::HandshakeError;
pub use url::{UrlError, WsUrl};

use std::sync::{Arc, OnceLock};

use crate::workers::Pool;

use crate::{Dialer, Error, Server, ServerHandle};

/// The runtime engines run on: a netloop runtime's pollers and dialer, and the
/// message workers of engines with `workers > 1`. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    dialer: Dialer,
    /// The runtime, where the client owns it (shut down with the last clone).
    runtime: Option<ServerHandle>,
    pool: OnceLock<Arc<Pool>>,
    message_workers: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("owns_runtime", &self.inner.runtime.is_some())
            .field("message_workers", &self.inner.message_workers)
            .finish()
    }
}

impl Client {
    /// A client on a runtime of its own: one poller, netloop's defaults otherwise.
    ///
    /// # Errors
    /// If the runtime cannot start.
    pub fn start() -> Result<Client, Error> {
        Client::with_runtime(Server::builder().pollers(1))
    }

    /// A client on a runtime built from `builder` (pollers, backend, dispatch, timeouts;
    /// its listeners, if any, are served by no one: give it none).
    ///
    /// # Errors
    /// If the runtime cannot start.
    pub fn with_runtime(builder: crate::Builder) -> Result<Client, Error> {
        let runtime = builder.start()?;
        Ok(Client::new(runtime.dialer(), Some(runtime)))
    }

    /// A client on someone else's runtime (a server's, say), through its dialer.
    pub fn on(runtime: &ServerHandle) -> Client {
        Client::new(runtime.dialer(), None)
    }

    fn new(dialer: Dialer, runtime: Option<ServerHandle>) -> Client {
        let message_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Client {
            inner: Arc::new(ClientInner {
                dialer,
                runtime,
                pool: OnceLock::new(),
                message_workers,
            }),
        }
    }

    /// An engine for `url` (`ws://host[:port]/path?query`), to configure and start.
    pub fn engine(&self, url: impl Into<String>) -> EngineBuilder {
        EngineBuilder::new(self.clone(), url.into())
    }

    /// The runtime, where this client owns it.
    pub fn runtime(&self) -> Option<&ServerHandle> {
        self.inner.runtime.as_ref()
    }

    pub(crate) fn dialer(&self) -> &Dialer {
        &self.inner.dialer
    }

    /// The message workers, with at least `threads` threads (so an engine's
    /// `workers(n)` can have `n` messages in progress).
    pub(crate) fn pool(&self, threads: usize) -> Arc<Pool> {
        let pool = self
            .inner
            .pool
            .get_or_init(|| Arc::new(Pool::new("netloop-ws-worker", self.inner.message_workers)))
            .clone();
        pool.grow_to(threads);
        pool
    }
}
