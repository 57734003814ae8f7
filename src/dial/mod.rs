//! Outbound connections: the [`Dialer`], and the resolver thread that turns host names
//! into addresses off the poller threads.
//!
//! A dial never blocks its caller or a poller. [`Dialer::dial`] picks a poller, creates
//! the connection's handle and queues the dial there (a host name goes by way of the
//! resolver thread first); the poller opens a non-blocking socket and connects, trying
//! each address in turn under one connect timeout. The outcome reaches the handler:
//! `on_connect` once connected, or [`Handler::on_connect_failed`]. A caller that wants
//! to wait blocks on [`ConnHandle::wait_open`].

mod resolve;
mod target;

pub use target::{IntoTarget, Target};

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::conn::ConnShared;
use crate::poller::{Balancer, Command, Outbound};
use crate::transport::{Transport, TransportFactory};
use crate::{session, ConnHandle, ConnInfo, Error, Handler};

/// What every [`Dialer`] of one runtime shares with its [`ServerHandle`](crate::ServerHandle).
pub(crate) struct DialShared {
    pub(crate) balancer: Arc<Balancer>,
    /// `true` once a shutdown began; dials hold the read side while queuing, so none is
    /// queued after the pollers were told to drain.
    pub(crate) stopping: RwLock<bool>,
    pub(crate) output_high_water: usize,
    resolver: OnceLock<resolve::Resolver>,
}

impl DialShared {
    pub(crate) fn new(balancer: Arc<Balancer>, output_high_water: usize) -> DialShared {
        DialShared {
            balancer,
            stopping: RwLock::new(false),
            output_high_water,
            resolver: OnceLock::new(),
        }
    }
}

/// Opens outbound connections on a runtime's pollers. Cheap to clone, `Send + Sync`, and
/// usable from any thread, a handler included; it outlives nothing: once its runtime has
/// shut down, dials fail with [`Error::ShuttingDown`].
///
/// Get one from [`ServerHandle::dialer`](crate::ServerHandle::dialer); a runtime with no
/// listeners (a client, a load generator) is started with
/// [`Builder::start`](crate::Builder::start). The settings are builder-style and apply
/// to the dials of that `Dialer` value.
///
/// ```no_run
/// use std::time::Duration;
/// use netloop::{handler_fn, Server};
///
/// let runtime = Server::builder().pollers(1).start()?;
/// let dialer = runtime.dialer().connect_timeout(Duration::from_secs(2));
/// let conn = dialer.dial("localhost:7000", handler_fn(|conn| {
///     let n = conn.input().len();
///     conn.input().skip(n);
/// }))?;
/// conn.wait_open(Duration::from_secs(3))?;
/// conn.send(netloop::Bytes::from_static(b"hello\n"))?;
/// # Ok::<(), netloop::Error>(())
/// ```
#[derive(Clone)]
pub struct Dialer {
    shared: Arc<DialShared>,
    connect_timeout: Duration,
    delay: Duration,
    transport: Option<TransportFactory>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("connect_timeout", &self.connect_timeout)
            .field("delay", &self.delay)
            .field("transport", &self.transport.is_some())
            .finish()
    }
}

impl Dialer {
    pub(crate) fn new(shared: Arc<DialShared>, connect_timeout: Duration) -> Dialer {
        Dialer {
            shared,
            connect_timeout,
            delay: Duration::ZERO,
            transport: None,
        }
    }

    /// How long a dial may take from its start, name resolution and every address tried
    /// included; past it the dial fails with `TimedOut`. Default:
    /// [`Builder::connect_timeout`](crate::Builder::connect_timeout) (10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Dialer {
        self.connect_timeout = timeout;
        self
    }

    /// Starts each dial only `delay` after the call (a reconnect's backoff); the dial is
    /// queued at once, and closing its handle meanwhile cancels it. Default: none.
    pub fn delay(mut self, delay: Duration) -> Dialer {
        self.delay = delay;
        self
    }

    /// The transport of the dialed connections (TLS, say), made once each is connected;
    /// an error fails the dial. Default: plain TCP.
    pub fn transport<F>(mut self, make: F) -> Dialer
    where
        F: Fn(&ConnInfo) -> std::io::Result<Box<dyn Transport>> + Send + Sync + 'static,
    {
        self.transport = Some(Arc::new(make));
        self
    }

    /// Speaks TLS on the dialed connections: the handshake runs once each is connected
    /// (bounded by the runtime's [`handshake_timeout`](crate::Builder::handshake_timeout)),
    /// and the server's certificate must be valid for `server_name` (a DNS name or an IP
    /// address) and chain to `config`'s roots
    /// ([`tls::client_config`](crate::tls::client_config)). An untrusted certificate or
    /// a name mismatch closes the connection with
    /// [`CloseReason::Error`](crate::CloseReason::Error)`(InvalidData)`, and
    /// [`ConnHandle::transport_error`](crate::ConnHandle::transport_error) says which; a
    /// `server_name` that is neither a DNS name nor an address fails the dial with
    /// `InvalidInput`. Replaces any [`transport`](Dialer::transport).
    #[cfg(feature = "tls")]
    pub fn tls(
        self,
        config: impl Into<Arc<rustls::ClientConfig>>,
        server_name: impl AsRef<str>,
    ) -> Dialer {
        let config = config.into();
        let name = server_name.as_ref().to_owned();
        let parsed = rustls::pki_types::ServerName::try_from(name.clone());
        self.transport(move |_info: &ConnInfo| match &parsed {
            Ok(server_name) => Ok(Box::new(crate::tls::TlsTransport::client(
                config.clone(),
                server_name.clone(),
            )?) as Box<dyn Transport>),
            Err(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("TLS server name {name:?}: {e}"),
            )),
        })
    }

    /// Opens a connection to `target`, driven by `handler` exactly like an accepted
    /// connection (`on_prepare` is not called). Returns at once, with the connection's
    /// handle: sends queue until it is connected. `on_connect` runs once it is, or
    /// [`on_connect_failed`](Handler::on_connect_failed) if it cannot be (refused,
    /// unreachable, the name does not resolve, the connect timeout passes, the runtime
    /// shuts down first); [`ConnHandle::wait_open`] blocks until one or the other.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] once a shutdown began; [`Error::Config`] for a target that
    /// is not an address or `HOST:PORT`.
    pub fn dial<H: Handler>(
        &self,
        target: impl IntoTarget,
        handler: H,
    ) -> Result<ConnHandle, Error> {
        let target = target
            .into_target()
            .map_err(|e| Error::Config(e.to_string()))?;
        let stopping = self
            .shared
            .stopping
            .read()
            .unwrap_or_else(|p| p.into_inner());
        if *stopping {
            return Err(Error::ShuttingDown);
        }
        let remote = self.shared.balancer.choose(None, true).clone();
        let literal = match &target {
            Target::Addr(a) => Some(a.clone()),
            Target::Host { .. } => None,
        };
        let shared = ConnShared::create(&remote, literal, None, self.shared.output_high_water);
        let handle = ConnHandle::new(shared.clone());
        let start = Instant::now() + self.delay;
        let outbound = Outbound {
            shared,
            hooks: session::hooks(handler),
            addrs: Ok(Vec::new()),
            connect_by: start + self.connect_timeout,
            not_before: (!self.delay.is_zero()).then_some(start),
            transport: self.transport.clone(),
        };
        match target {
            Target::Addr(addr) => remote.push(Command::Dial(Outbound {
                addrs: Ok(vec![addr]),
                ..outbound
            })),
            Target::Host { host, port } => self
                .shared
                .resolver
                .get_or_init(resolve::Resolver::start)
                .resolve(host, port, remote, outbound),
        }
        Ok(handle)
    }
}
