//! [`Builder`]: every server setting, with its default.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::{ListenerTransports, Transport, TransportFactory};
use crate::{Addr, AddrParseError, Balance, ConnInfo, Dispatch, Error, Handler, ServerHandle};

use super::listen::ListenSpec;
use super::start;

/// Something [`Builder::listen`] accepts as an address: an [`Addr`], a
/// [`SocketAddr`], or a string such as `"127.0.0.1:7000"` or `"unix:/tmp/app.sock"`.
pub trait IntoAddr {
    /// Converts into an address, or says why the text is not one.
    fn into_addr(self) -> Result<Addr, AddrParseError>;
}

impl IntoAddr for Addr {
    fn into_addr(self) -> Result<Addr, AddrParseError> {
        Ok(self)
    }
}

impl IntoAddr for SocketAddr {
    fn into_addr(self) -> Result<Addr, AddrParseError> {
        Ok(Addr::Tcp(self))
    }
}

impl IntoAddr for &str {
    fn into_addr(self) -> Result<Addr, AddrParseError> {
        self.parse()
    }
}

impl IntoAddr for String {
    fn into_addr(self) -> Result<Addr, AddrParseError> {
        self.parse()
    }
}

/// Configures and starts a server. Obtained from [`Server::builder`](crate::Server::builder).
///
/// ```no_run
/// use std::time::Duration;
/// use netloop::{handler_fn, Dispatch, Server};
///
/// let server = Server::builder()
///     .listen("127.0.0.1:7000")
///     .listen("[::1]:7000")
///     .dispatch(Dispatch::Pool { threads: 4 })
///     .serve(handler_fn(|conn| {
///         let n = conn.input().len();
///         let data = conn.input().next(n);
///         conn.output().write_bytes(data);
///     }))
///     .expect("listen");
/// println!("listening on {:?}", server.local_addrs());
/// let report = server.shutdown(Duration::from_secs(5));
/// println!("{report:?}");
/// ```
#[derive(Clone)]
pub struct Builder {
    pub(super) listeners: Vec<ListenSpec>,
    pub(super) bad_addrs: Vec<AddrParseError>,
    pub(super) pollers: Option<usize>,
    pub(super) pin_cpus: bool,
    pub(super) dispatch: Dispatch,
    pub(super) balance: Balance,
    pub(super) backlog: i32,
    pub(super) nodelay: bool,
    pub(super) read_buffer_size: usize,
    pub(super) pooled_buffers: usize,
    pub(super) input_high_water: usize,
    pub(super) input_low_water: Option<usize>,
    pub(super) output_high_water: usize,
    pub(super) queue_capacity: usize,
    pub(super) read_timeout: Option<Duration>,
    pub(super) write_timeout: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) max_connections: Option<usize>,
    pub(super) tcp_keepalive: Option<Duration>,
    pub(super) backend: crate::Backend,
    pub(super) fail_io_uring_probe: bool,
    pub(super) zero_copy_send: Option<usize>,
    pub(super) max_want: usize,
    pub(super) handshake_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) transport: Option<TransportFactory>,
    /// TLS for every listener (`None`) or for one (its index).
    #[cfg(feature = "tls")]
    pub(super) tls: Vec<(Option<usize>, Arc<rustls::ServerConfig>)>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("listeners", &self.listeners)
            .field("pollers", &self.pollers)
            .field("dispatch", &self.dispatch)
            .field("balance", &self.balance)
            .field("backend", &self.backend)
            .field("transport", &self.transport.is_some())
            .finish_non_exhaustive()
    }
}

/// [`Builder::read_timeout`]'s default.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// [`Builder::write_timeout`]'s default.
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// [`Builder::idle_timeout`]'s default.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            listeners: Vec::new(),
            bad_addrs: Vec::new(),
            pollers: None,
            pin_cpus: false,
            dispatch: Dispatch::Inline,
            balance: Balance::RoundRobin,
            backlog: 1024,
            nodelay: true,
            read_buffer_size: 16 * 1024,
            pooled_buffers: 1024,
            input_high_water: 4 << 20,
            input_low_water: None,
            output_high_water: 4 << 20,
            queue_capacity: 1024,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connections: None,
            tcp_keepalive: None,
            backend: crate::Backend::default(),
            fail_io_uring_probe: false,
            zero_copy_send: None,
            max_want: crate::conn::DEFAULT_WANT_LIMIT,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            transport: None,
            #[cfg(feature = "tls")]
            tls: Vec::new(),
        }
    }
}

impl Builder {
    /// Adds a listener. Call it several times to listen on several addresses (TCP on
    /// IPv4 and IPv6, Unix domain sockets); port 0 picks a free port, reported by
    /// [`ServerHandle::local_addrs`]. An invalid address string is reported by
    /// [`serve`](Builder::serve).
    pub fn listen(mut self, addr: impl IntoAddr) -> Builder {
        match addr.into_addr() {
            Ok(a) => self.listeners.push(ListenSpec::Bind(a)),
            Err(e) => self.bad_addrs.push(e),
        }
        self
    }

    /// Adds a listener on a socket that is already bound and listening: one inherited
    /// from systemd ([`restart::systemd_listeners`](crate::restart::systemd_listeners)),
    /// from a supervisor, or bound by the program itself. TCP and Unix stream sockets
    /// are accepted; [`serve`](Builder::serve) checks that it is one on which
    /// `listen(2)` was called (else [`Error::Config`] saying what it is not), makes it
    /// non-blocking, and reports its address in [`ServerHandle::local_addrs`] in
    /// builder order with the others. The backlog, `SO_REUSEPORT` and other socket
    /// options are whatever its creator set.
    ///
    /// The server serves on a duplicate of `fd`; this one is closed when the builder
    /// (and any clone of it) is dropped. A Unix socket's file is left in place at
    /// shutdown: this server did not create it.
    ///
    /// ```no_run
    /// use std::os::fd::OwnedFd;
    /// use netloop::{handler_fn, Server};
    ///
    /// let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let server = Server::builder()
    ///     .listen_fd(OwnedFd::from(socket))
    ///     .serve(handler_fn(|conn| conn.close()))?;
    /// println!("serving on {}", server.local_addrs()[0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_fd(self, fd: OwnedFd) -> Builder {
        self.listen_fds(vec![fd])
    }

    /// Adds one listener served by several already-listening sockets bound to the same
    /// address (a set of `SO_REUSEPORT` sockets, such as a predecessor's
    /// [`Balance::ReusePort`] listener). With [`Balance::ReusePort`] and as many sockets
    /// as pollers, each poller accepts on its own; otherwise every socket is shared and
    /// its connections are spread by the balancer. Checked as in
    /// [`listen_fd`](Builder::listen_fd); sockets bound to different addresses are an
    /// [`Error::Config`].
    pub fn listen_fds(mut self, fds: Vec<OwnedFd>) -> Builder {
        self.listeners.push(ListenSpec::Adopt {
            fds: Arc::new(fds),
            owns_path: false,
        });
        self
    }

    /// Adds every listener a predecessor handed over
    /// ([`restart::inherited_listeners`](crate::restart::inherited_listeners)), in its
    /// builder order. Unlike [`listen_fds`](Builder::listen_fds), a Unix socket file the
    /// predecessor created is removed by this server at shutdown (unless it hands the
    /// listeners on in turn). See [`netloop::restart`](crate::restart).
    pub fn listen_handover(mut self, handover: &mut crate::restart::Handover) -> Builder {
        for l in handover.take_listeners() {
            self.listeners.push(ListenSpec::Adopt {
                owns_path: l.owns_path,
                fds: Arc::new(l.fds),
            });
        }
        self
    }

    /// Number of poller threads. Default: the number of CPUs this process may use.
    pub fn pollers(mut self, n: usize) -> Builder {
        self.pollers = Some(n);
        self
    }

    /// Pins poller `i` to the `i`-th CPU this process may run on (wrapping around).
    /// Default: off.
    pub fn pin_cpus(mut self, pin: bool) -> Builder {
        self.pin_cpus = pin;
        self
    }

    /// Where handlers run. Default: [`Dispatch::Inline`].
    pub fn dispatch(mut self, dispatch: Dispatch) -> Builder {
        self.dispatch = dispatch;
        self
    }

    /// How connections are spread over pollers. Default: [`Balance::RoundRobin`].
    pub fn balance(mut self, balance: Balance) -> Builder {
        self.balance = balance;
        self
    }

    /// The listen backlog. Default: 1024.
    pub fn backlog(mut self, backlog: u32) -> Builder {
        self.backlog = backlog.min(i32::MAX as u32) as i32;
        self
    }

    /// Sets `TCP_NODELAY` on accepted and dialed TCP connections. Default: on (this is a
    /// latency-first library).
    pub fn nodelay(mut self, nodelay: bool) -> Builder {
        self.nodelay = nodelay;
        self
    }

    /// Size of the pooled read buffers. Default: 16 KiB.
    pub fn read_buffer_size(mut self, bytes: usize) -> Builder {
        self.read_buffer_size = bytes;
        self
    }

    /// Read buffers each poller keeps for reuse. Default: 1024.
    pub fn pooled_buffers(mut self, n: usize) -> Builder {
        self.pooled_buffers = n;
        self
    }

    /// Input high-water mark: with this many bytes buffered and not consumed, the
    /// poller stops reading the connection until the handler drains it (a handler's
    /// [`Input::want`](crate::Input::want) raises it for its connection). The read that
    /// reaches it ends at most one [`read_buffer_size`](Builder::read_buffer_size) past
    /// it (on io_uring a multishot receive can bring one completion batch). Default:
    /// 4 MiB.
    pub fn input_high_water(mut self, bytes: usize) -> Builder {
        self.input_high_water = bytes;
        self
    }

    /// Input low-water mark: a connection paused at the high-water mark resumes reading
    /// once its buffered input is at or below this. Default: half the high-water mark.
    pub fn input_low_water(mut self, bytes: usize) -> Builder {
        self.input_low_water = Some(bytes);
        self
    }

    /// The most input a handler may ask to have buffered with
    /// [`Input::want`](crate::Input::want): a `want` above it closes the connection with
    /// [`CloseReason::InputLimit`](crate::CloseReason::InputLimit), so a length a peer
    /// declares can never make the server buffer without bound. Protocol layers check
    /// their own limits below it (and answer with their own error). Default: 64 MiB.
    ///
    /// ```no_run
    /// // Frames of at most 1 MiB: a peer declaring more is disconnected.
    /// let server = netloop::Server::builder()
    ///     .listen("127.0.0.1:7000")
    ///     .max_want(1 << 20)
    ///     .serve(netloop::handler_fn(|conn| {
    ///         let n = conn.input().len();
    ///         conn.input().skip(n);
    ///     }))?;
    /// # Ok::<(), netloop::Error>(())
    /// ```
    pub fn max_want(mut self, bytes: usize) -> Builder {
        self.max_want = bytes;
        self
    }

    /// The transport of every accepted connection (TLS, say): `make` is called for each
    /// one after [`on_prepare`](crate::Handler::on_prepare) admitted it; an error refuses
    /// the connection (counted in [`Stats::rejected`](crate::Stats::rejected)). See
    /// [`netloop::transport`](crate::transport). Default: plain TCP.
    pub fn transport<F>(mut self, make: F) -> Builder
    where
        F: Fn(&ConnInfo) -> std::io::Result<Box<dyn Transport>> + Send + Sync + 'static,
    {
        self.transport = Some(Arc::new(make));
        self
    }

    /// Serves TLS on every listener (HTTPS, `wss://`, TLS for the task protocol): the
    /// handshake runs on the poller before [`on_connect`](crate::Handler::on_connect)
    /// (after [`on_prepare`](crate::Handler::on_prepare)), bounded by
    /// [`handshake_timeout`](Builder::handshake_timeout); handlers read and write
    /// plaintext, and see what was negotiated (ALPN, SNI, client certificates) with
    /// [`Conn::tls`](crate::Conn::tls). A certificate and key in PEM files make a config
    /// with [`tls::server_config`](crate::tls::server_config). Cannot be combined with
    /// [`transport`](Builder::transport).
    ///
    /// ```no_run
    /// let tls = netloop::tls::server_config("cert.pem", "key.pem")?;
    /// let server = netloop::Server::builder()
    ///     .listen("127.0.0.1:8443")
    ///     .tls(tls)
    ///     .serve(netloop::handler_fn(|conn| {
    ///         let n = conn.input().len();
    ///         let data = conn.input().next(n);
    ///         conn.output().write_bytes(data);
    ///     }))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: impl Into<Arc<rustls::ServerConfig>>) -> Builder {
        self.tls.push((None, config.into()));
        self
    }

    /// Adds a listener that serves TLS with `config` (the others stay as they are): plain
    /// HTTP on one port and HTTPS on another, or a certificate per listener. See
    /// [`tls`](Builder::tls).
    #[cfg(feature = "tls")]
    pub fn listen_tls(
        mut self,
        addr: impl IntoAddr,
        config: impl Into<Arc<rustls::ServerConfig>>,
    ) -> Builder {
        let index = self.listeners.len();
        let before = self.bad_addrs.len();
        self = self.listen(addr);
        if self.bad_addrs.len() == before {
            self.tls.push((Some(index), config.into()));
        }
        self
    }

    /// The transports of accepted connections: the one given to
    /// [`transport`](Builder::transport), or TLS where it was asked for.
    pub(super) fn listener_transports(&self) -> Result<Option<ListenerTransports>, Error> {
        #[cfg(feature = "tls")]
        if !self.tls.is_empty() {
            if self.transport.is_some() {
                return Err(Error::Config(
                    "tls() and transport() cannot both be set: TLS is the transport".into(),
                ));
            }
            let mut all = None;
            let mut per_listener = vec![None; self.listeners.len()];
            for (index, config) in &self.tls {
                let acceptor = crate::tls::TlsAcceptor::new(config.clone());
                match index {
                    None => all = Some(acceptor),
                    Some(i) => per_listener[*i] = Some(acceptor),
                }
            }
            let make: ListenerTransports = Arc::new(move |info: &ConnInfo| {
                let acceptor = info
                    .listener
                    .and_then(|i| per_listener.get(i).and_then(Option::as_ref))
                    .or(all.as_ref());
                match acceptor {
                    Some(acceptor) => Ok(Some(Box::new(acceptor.accept()?) as Box<dyn Transport>)),
                    None => Ok(None),
                }
            });
            return Ok(Some(make));
        }
        Ok(self.transport.clone().map(|make| {
            Arc::new(move |info: &ConnInfo| make(info).map(Some)) as ListenerTransports
        }))
    }

    /// How long a transport's handshake may take (from the connection's start) before
    /// the connection closes with
    /// [`CloseReason::HandshakeTimeout`](crate::CloseReason::HandshakeTimeout). Plain TCP
    /// has no handshake. Default: 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Builder {
        self.handshake_timeout = timeout;
        self
    }

    /// The default connect timeout of dials ([`Dialer::connect_timeout`](crate::Dialer::connect_timeout)).
    /// Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Builder {
        self.connect_timeout = timeout;
        self
    }

    /// Closes a connection ([`CloseReason::ReadTimeout`](crate::CloseReason::ReadTimeout))
    /// whose handler has had unconsumed input (an incomplete request) for this long
    /// without consuming any of it — a slow-loris peer: bytes trickling in do not reset
    /// it, only the handler consuming some. `None` turns it off. A handler can override
    /// it per connection with [`Conn::set_read_timeout`](crate::Conn::set_read_timeout)
    /// (the HTTP layer replaces it with its own head and body deadlines).
    ///
    /// Default 60 s, so that a server built with no options cannot be held by peers
    /// that start a request and never finish it; long enough for a 4 MiB frame
    /// ([`max_want`](Builder::max_want)) over a slow link.
    pub fn read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.read_timeout = timeout.into();
        self
    }

    /// Closes a connection ([`CloseReason::WriteTimeout`](crate::CloseReason::WriteTimeout))
    /// whose queued output has not moved for this long — a peer that does not read.
    /// `None` turns it off.
    ///
    /// Default 60 s (nginx's `send_timeout`): a peer that reads nothing for a minute is
    /// gone or hostile, and what it holds meanwhile is bounded by the output mark.
    pub fn write_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.write_timeout = timeout.into();
        self
    }

    /// Closes a connection ([`CloseReason::IdleTimeout`](crate::CloseReason::IdleTimeout))
    /// with no traffic in either direction for this long. This is an application-level
    /// timeout, not TCP keepalive (see [`tcp_keepalive`](Builder::tcp_keepalive)).
    /// `None` turns it off (for protocols whose connections stay silent for long on
    /// purpose; the WebSocket layer sets its own, and pings).
    ///
    /// Default 120 s: a silent connection costs a slot and a descriptor, and peers that
    /// open connections and send nothing must not keep them forever; two minutes spare
    /// protocols with a heartbeat of a minute or less.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Builder {
        self.idle_timeout = timeout.into();
        self
    }

    /// At most this many connections open at once (accepted and dialed); connections
    /// accepted beyond it are closed at once and counted in
    /// [`Stats::over_limit`](crate::Stats::over_limit). Default: no limit.
    pub fn max_connections(mut self, n: usize) -> Builder {
        self.max_connections = Some(n);
        self
    }

    /// Enables TCP keepalive probes on accepted and dialed TCP connections after this
    /// much idleness, so the kernel notices a peer that vanished without closing. It
    /// closes nothing by itself while the peer answers; see
    /// [`idle_timeout`](Builder::idle_timeout) for that. Default: off.
    pub fn tcp_keepalive(mut self, idle: Duration) -> Builder {
        self.tcp_keepalive = Some(idle);
        self
    }

    /// The I/O backend: [`Backend::Epoll`](crate::Backend::Epoll) (the default), [`Backend::IoUring`](crate::Backend::IoUring), or
    /// [`Backend::Auto`](crate::Backend::Auto) (io_uring where the start-up probe finds it usable, else epoll).
    /// The `NETLOOP_BACKEND` environment variable overrides this;
    /// [`ServerHandle::backend`](crate::ServerHandle::backend) reports the outcome.
    pub fn backend(mut self, backend: crate::Backend) -> Builder {
        self.backend = backend;
        self
    }

    /// On io_uring with inline dispatch, sends of at least `min_bytes` use zero-copy send
    /// (`SENDMSG_ZC`): the kernel transmits from the reply's own pages instead of copying
    /// them, and netloop keeps the bytes alive until the kernel's notification that it is
    /// done with them. It pays for large replies on a real network interface; on loopback
    /// the kernel copies anyway and it only adds the notification's cost (see the
    /// `bulk` scenario of `scripts/bench.sh`). Ignored on epoll, in Pool dispatch, and where
    /// the kernel lacks it. Default: off.
    pub fn zero_copy_send(mut self, min_bytes: usize) -> Builder {
        self.zero_copy_send = Some(min_bytes.max(1));
        self
    }

    /// Makes the io_uring probe fail, as on a machine without io_uring: for testing the
    /// fallback. Not part of the stable API.
    #[doc(hidden)]
    pub fn fail_io_uring_probe(mut self) -> Builder {
        self.fail_io_uring_probe = true;
        self
    }

    /// Output high-water mark: [`ConnHandle::send`](crate::ConnHandle::send) returns
    /// [`Error::Full`] once this many bytes are queued for a connection, and no new
    /// `on_request` runs for it until its output drops below the mark (so a peer that
    /// sends without reading stops being read at the input mark). Default: 4 MiB.
    pub fn output_high_water(mut self, bytes: usize) -> Builder {
        self.output_high_water = bytes;
        self
    }

    /// In [`Dispatch::Pool`] mode, how many connections one poller may have on workers
    /// at once; ready connections beyond that wait in the poller's backlog, in order.
    /// Default: 1024.
    pub fn queue_capacity(mut self, n: usize) -> Builder {
        self.queue_capacity = n;
        self
    }

    /// Binds the listeners, starts the pollers (and workers) and serves every accepted
    /// connection with `handler`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting or address, or no listener;
    /// [`Error::Bind`] if a listener cannot be bound; [`Error::Io`] if a thread or an
    /// epoll instance cannot be created.
    pub fn serve<H: Handler>(self, handler: H) -> Result<ServerHandle, Error> {
        if self.listeners.is_empty() && self.bad_addrs.is_empty() {
            return Err(Error::Config(
                "no listener: call listen() before serve(), or start() for a dial-only loop".into(),
            ));
        }
        start::start(self, Some(crate::session::hooks(handler)))
    }

    /// Starts the pollers without listeners: the client runtime, for outbound connections
    /// made with a [`Dialer`](crate::Dialer) ([`ServerHandle::dialer`]). A load generator
    /// or a client with thousands of connections runs on it.
    ///
    /// # Errors
    /// As [`serve`](Builder::serve), except that listeners are not required.
    pub fn start(self) -> Result<ServerHandle, Error> {
        start::start(self, None)
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if let Some(e) = self.bad_addrs.first() {
            return Err(Error::Config(e.to_string()));
        }
        if self.pollers == Some(0) {
            return Err(Error::Config(
                "pollers(0): at least one poller is needed".into(),
            ));
        }
        if let Dispatch::Pool { threads: 0 } = self.dispatch {
            return Err(Error::Config(
                "Dispatch::Pool { threads: 0 }: at least one worker is needed".into(),
            ));
        }
        if self.read_buffer_size < 512 {
            return Err(Error::Config(format!(
                "read_buffer_size({}) is below the 512-byte minimum",
                self.read_buffer_size
            )));
        }
        if self.queue_capacity == 0 {
            return Err(Error::Config(
                "queue_capacity(0): must be at least 1".into(),
            ));
        }
        if self.input_high_water == 0 || self.output_high_water == 0 {
            return Err(Error::Config("high-water marks must be above 0".into()));
        }
        if let Some(low) = self.input_low_water {
            if low >= self.input_high_water {
                return Err(Error::Config(format!(
                    "input_low_water({low}) must be below input_high_water({})",
                    self.input_high_water
                )));
            }
        }
        for (name, t) in [
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
            ("idle_timeout", self.idle_timeout),
            ("handshake_timeout", Some(self.handshake_timeout)),
            ("connect_timeout", Some(self.connect_timeout)),
        ] {
            if t == Some(Duration::ZERO) {
                return Err(Error::Config(format!(
                    "{name}(0) would close every connection at once"
                )));
            }
        }
        if self.max_want == 0 {
            return Err(Error::Config(
                "max_want(0) would refuse every handler that waits for a frame".into(),
            ));
        }
        if self.max_connections == Some(0) {
            return Err(Error::Config(
                "max_connections(0) would refuse every connection".into(),
            ));
        }
        Ok(())
    }
}
