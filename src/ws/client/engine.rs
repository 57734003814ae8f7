//! The engine: one logical WebSocket connection that stays up. Its state lives here,
//! under one lock per engine; the connection of each session is a [`Link`] on the
//! runtime's pollers.
//!
//! The engine's states and what moves it:
//!
//! | state | entered when | sends from handles | leaves to |
//! |---|---|---|---|
//! | `Connecting` | `start` dials the first time | buffered (or refused, per [`Offline`]) | `Open` (handshake done, `on_open` returned), `Stopped` (the first attempt failed and is not retried) |
//! | `Open` | a session opened | framed and queued on its connection | `Closing` (stop, restart or exit asked), `Restarting` (the session ended), `Stopped` |
//! | `Closing` | this side sent its Close | buffered for the next session; refused after `stop` | `Restarting`, `Stopped` |
//! | `Restarting` | a session ended or an attempt failed; the next dial waits out the backoff's delay | buffered | `Open`, `Stopped` (stop, exit, the attempt cap) |
//! | `Stopped` | stop, exit, the cap, or a first start that failed | refused | — |
//!
//! Exactly one connection attempt or session is in flight per engine: a new dial is
//! made only when the previous connection has reported its end (`on_close` or
//! `on_connect_failed` of its link), under the engine's lock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::backoff::{Backoff, BackoffRng};
use super::error::{EngineError, SendError, StopTimeout};
use super::handler::{Callbacks, Ending, EngineHandler, Session};
use super::handshake::Offer;
use super::link::{Link, Proto};
use super::url::WsUrl;
use super::Client;
use crate::workers::Pool;
use crate::ws::codec::Encoder;
use crate::ws::{Config, DeflateConfig, Message};
use crate::{Conn, ConnHandle, Dialer, Error};

/// Where an engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineState {
    /// The first connection is being made.
    Connecting,
    /// A session is open.
    Open,
    /// This side's closing handshake is under way.
    Closing,
    /// Between sessions: waiting out the backoff, or reconnecting.
    Restarting,
    /// Stopped for good.
    Stopped,
}

/// What an engine does with sends while it has no open session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offline {
    /// Keeps up to `messages` messages and `bytes` bytes of payload, sent in order once
    /// the next session opens (after what its `on_open` sends); a send past either
    /// bound fails with [`SendError::BufferFull`]. Stopping discards them (counted in
    /// [`EngineStats::discarded`]).
    Buffer {
        /// The most messages kept.
        messages: usize,
        /// The most payload bytes kept.
        bytes: usize,
    },
    /// Fails at once with [`SendError::NotConnected`].
    Fail,
}

impl Default for Offline {
    /// Buffer up to 1,024 messages and 1 MiB.
    fn default() -> Offline {
        Offline::Buffer {
            messages: 1024,
            bytes: 1 << 20,
        }
    }
}

/// An engine's counters, from [`Engine::stats`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineStats {
    /// Where the engine is.
    pub state: EngineState,
    /// Sessions opened.
    pub sessions: u64,
    /// Restart attempts scheduled (dials after the first).
    pub restarts: u64,
    /// Connection attempts that failed in a row (0 once one opens).
    pub failures: u32,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent (queued on a connection).
    pub messages_out: u64,
    /// Messages waiting in the offline buffer.
    pub buffered: usize,
    /// Buffered messages discarded by a stop.
    pub discarded: u64,
    /// Why the last session or attempt ended, if it ended badly.
    pub last_error: Option<EngineError>,
    /// The backoff delay drawn for the latest restart.
    pub last_delay: Option<Duration>,
}

/// What a callback asked of its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    Restart,
    Exit,
}

/// The engine's settings, fixed at start.
pub(crate) struct Opts {
    pub(crate) url: WsUrl,
    pub(crate) config: Arc<Config>,
    pub(crate) offer: Offer,
    pub(crate) handshake_timeout: Duration,
    pub(crate) workers: usize,
    pub(crate) backoff: Backoff,
    pub(crate) offline: Offline,
    pub(crate) retry_first_start: bool,
}

/// What one engine's threads share.
pub(crate) struct Core {
    pub(crate) opts: Opts,
    pub(crate) handler: Arc<dyn EngineHandler>,
    dialer: Dialer,
    pool: Option<Arc<Pool>>,
    inner: Mutex<Inner>,
    changed: Condvar,
    stopping: AtomicBool,
    /// A restart or exit was asked (`Inner::ask` says which): the link looks under the
    /// lock only then, not after every message.
    asked: AtomicBool,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

struct Inner {
    state: EngineState,
    /// The current session's id (or the attempt's that will be it).
    session: u64,
    /// The connection of the attempt or session in flight.
    conn: Option<ConnHandle>,
    ever_opened: bool,
    opened_at: Option<Instant>,
    sessions: u64,
    failures: u32,
    /// The backoff's step: restarts since the last stable session.
    step: u32,
    restarts: u64,
    last_error: Option<EngineError>,
    last_delay: Option<Duration>,
    ask: Option<(u64, Ask)>,
    offline: VecDeque<Message>,
    offline_bytes: usize,
    discarded: u64,
    /// The open session compresses: handle sends go through its turn.
    compressed: bool,
    turn_queue: VecDeque<Message>,
    encoder: Encoder,
    /// `start`'s answer, once there is one.
    started: Option<Result<(), EngineError>>,
    rng: BackoffRng,
    /// Messages for the message workers (`workers > 1`), with their session.
    mailbox: VecDeque<(u64, Message)>,
    running: usize,
    /// The link stopped decoding because the mailbox was full.
    paused: bool,
}

/// Messages the mailbox holds per worker before the link stops decoding.
const MAILBOX_PER_WORKER: usize = 16;

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Core {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn count_out(&self, n: u64) {
        self.messages_out.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn workers(&self) -> usize {
        self.opts.workers
    }

    /// A session for a callback that runs off the connection's turn.
    fn detached(self: &Arc<Self>, id: u64) -> Session<'_> {
        Session {
            core: self,
            id,
            live: None,
        }
    }

    /// Dials the next attempt after `delay`. Called with the lock held.
    fn dial(self: &Arc<Self>, inner: &mut Inner, delay: Duration) {
        inner.session += 1;
        let link = Link::new(self.clone(), inner.session);
        let dialer = self.dialer.clone().delay(delay);
        match dialer.dial(self.opts.url.target.clone(), link) {
            Ok(conn) => inner.conn = Some(conn),
            Err(_) => {
                inner.conn = None;
                self.stopped(inner, Some(EngineError::ShuttingDown));
            }
        }
    }

    /// The engine is stopped. Called with the lock held.
    fn stopped(&self, inner: &mut Inner, error: Option<EngineError>) {
        inner.state = EngineState::Stopped;
        inner.conn = None;
        inner.discarded += inner.offline.len() as u64;
        inner.offline.clear();
        inner.offline_bytes = 0;
        inner.turn_queue.clear();
        if error.is_some() {
            inner.last_error = error.clone();
        }
        if inner.started.is_none() {
            inner.started = Some(Err(error.unwrap_or(EngineError::Stopped)));
        }
        self.changed.notify_all();
    }

    /// The link's handshake succeeded: runs `on_open`, flushes the offline buffer and
    /// opens the engine. `false` if the session is not wanted any more (a stop came
    /// first): the link closes it.
    pub(crate) fn opened(self: &Arc<Self>, id: u64, conn: &mut Conn, proto: &mut Proto) -> bool {
        let restart = {
            let mut inner = self.inner();
            if inner.session != id || self.is_stopping() {
                return false;
            }
            inner.sessions += 1;
            inner.failures = 0;
            std::mem::replace(&mut inner.ever_opened, true)
        };
        self.handler.on_open(
            &mut Session {
                core: self,
                id,
                live: Some((conn, proto)),
            },
            restart,
        );
        let mut inner = self.inner();
        let flushed = inner.offline.len() as u64;
        for msg in inner.offline.drain(..) {
            proto.send(conn, &msg);
        }
        inner.offline_bytes = 0;
        self.count_out(flushed);
        inner.compressed = proto.compressed();
        inner.opened_at = Some(Instant::now());
        if inner.state != EngineState::Closing {
            inner.state = EngineState::Open;
        }
        inner.started.get_or_insert(Ok(()));
        self.changed.notify_all();
        true
    }

    /// What the link must do on its turn: `Some(ending)` to close this session.
    pub(crate) fn pending_ending(&self, id: u64) -> Option<Ending> {
        if self.is_stopping() {
            return Some(Ending::Stop);
        }
        if !self.asked.load(Ordering::Acquire) {
            return None;
        }
        let mut inner = self.inner();
        // The ask stays until the session has ended (`ended` reads an exit from it);
        // the link's closing handshake begins only once.
        match inner.ask {
            Some((sid, ask)) if sid == id => {
                inner.state = EngineState::Closing;
                Some(match ask {
                    Ask::Restart => Ending::Restart,
                    Ask::Exit => Ending::Exit,
                })
            }
            _ => None,
        }
    }

    /// Messages handles queued for the connection's turn (a compressing session).
    pub(crate) fn take_turn_queue(&self) -> VecDeque<Message> {
        std::mem::take(&mut self.inner().turn_queue)
    }

    /// A callback or a handle asks session `id` to end.
    pub(crate) fn ask(&self, id: u64, ask: Ask) {
        let mut inner = self.inner();
        if inner.session != id || inner.state == EngineState::Stopped {
            return;
        }
        // An exit outranks a restart asked before it.
        if !matches!(inner.ask, Some((sid, Ask::Exit)) if sid == id) {
            inner.ask = Some((id, ask));
        }
        self.asked.store(true, Ordering::Release);
        // Sends from now on are for the next session (or refused, on an exit).
        if inner.state == EngineState::Open {
            inner.state = EngineState::Closing;
        }
        if let Some(conn) = &inner.conn {
            let _ = conn.wake();
        }
    }

    /// Sends from a handle (or a callback off the connection's turn).
    pub(crate) fn send(&self, msg: Message) -> Result<(), SendError> {
        let mut inner = self.inner();
        if self.is_stopping() || inner.state == EngineState::Stopped {
            return Err(SendError::Stopped);
        }
        if inner.state == EngineState::Open {
            if let Some(conn) = inner.conn.clone() {
                if inner.compressed {
                    inner.turn_queue.push_back(msg);
                    if conn.wake().is_ok() {
                        self.count_out(1);
                        return Ok(());
                    }
                    let msg = inner.turn_queue.pop_back().expect("just pushed");
                    return self.buffer(&mut inner, msg);
                }
                let frame = inner.encoder.frame(&msg);
                match conn.send(frame) {
                    Ok(()) => {
                        self.count_out(1);
                        return Ok(());
                    }
                    Err(Error::Full) => return Err(SendError::Full),
                    // The session is ending under us: the message waits for the next.
                    Err(_) => {}
                }
            }
        }
        self.buffer(&mut inner, msg)
    }

    fn buffer(&self, inner: &mut Inner, msg: Message) -> Result<(), SendError> {
        match self.opts.offline {
            Offline::Fail => Err(SendError::NotConnected),
            Offline::Buffer { messages, bytes } => {
                let len = msg.len();
                if inner.offline.len() >= messages || inner.offline_bytes + len > bytes {
                    return Err(SendError::BufferFull);
                }
                inner.offline_bytes += len;
                inner.offline.push_back(msg);
                Ok(())
            }
        }
    }

    /// This side began the closing handshake.
    pub(crate) fn closing(&self, id: u64) {
        let mut inner = self.inner();
        if inner.session == id && inner.state == EngineState::Open {
            inner.state = EngineState::Closing;
        }
    }

    /// The connection of session `id` ended: `opened` if the handshake had succeeded,
    /// `end` why (`None`: this side closed it cleanly). Decides between a restart and
    /// a stop.
    pub(crate) fn ended(self: &Arc<Self>, id: u64, opened: bool, end: Option<EngineError>) {
        let mut inner = self.inner();
        if inner.session != id || inner.state == EngineState::Stopped {
            return;
        }
        inner.conn = None;
        inner.compressed = false;
        inner.turn_queue.clear();
        let exit = matches!(inner.ask, Some((sid, Ask::Exit)) if sid == id);
        inner.ask = None;
        self.asked.store(false, Ordering::Release);
        if let Some(e) = &end {
            inner.last_error = Some(e.clone());
        }
        if self.is_stopping() || exit {
            return self.stopped(&mut inner, None);
        }
        if opened {
            let lasted = inner
                .opened_at
                .take()
                .map_or(Duration::ZERO, |t| t.elapsed());
            if lasted >= self.opts.backoff.stable_period() {
                inner.step = 0;
            }
        } else {
            let error = end.unwrap_or(EngineError::Stopped);
            if !inner.ever_opened && !self.opts.retry_first_start {
                return self.stopped(&mut inner, Some(error));
            }
            inner.failures += 1;
            let attempt = inner.failures;
            drop(inner);
            self.handler
                .on_restart_error(&mut self.detached(id), &error, attempt);
            inner = self.inner();
            if inner.session != id || inner.state == EngineState::Stopped {
                return;
            }
            let exit = matches!(inner.ask, Some((sid, Ask::Exit)) if sid == id);
            if self.is_stopping() || exit {
                return self.stopped(&mut inner, None);
            }
            if self.opts.backoff.exhausted(inner.failures) {
                return self.stopped(&mut inner, Some(error));
            }
        }
        inner.step = inner.step.saturating_add(1);
        let step = inner.step;
        let delay = {
            let Inner { rng, .. } = &mut *inner;
            self.opts.backoff.delay(step, rng)
        };
        inner.restarts += 1;
        inner.last_delay = Some(delay);
        inner.state = EngineState::Restarting;
        tracing::debug!(url = %self.opts.url, ?delay, step, "restarting");
        self.dial(&mut inner, delay);
        self.changed.notify_all();
    }

    /// With `workers > 1`: queues a message for the workers. `false` if the mailbox is
    /// full: the link stops decoding until a worker makes room and wakes it.
    pub(crate) fn post(self: &Arc<Self>, id: u64, msg: Message) {
        let spawn = {
            let mut inner = self.inner();
            inner.mailbox.push_back((id, msg));
            let spawn = inner.running < self.opts.workers;
            if spawn {
                inner.running += 1;
            }
            spawn
        };
        if spawn {
            let core = self.clone();
            self.pool
                .as_ref()
                .expect("engines with workers > 1 have a pool")
                .execute(Box::new(move || core.work()));
        }
    }

    /// Whether the mailbox is full; if so the link pauses until a worker wakes it.
    pub(crate) fn mailbox_full(&self) -> bool {
        let mut inner = self.inner();
        let full = inner.mailbox.len() >= MAILBOX_PER_WORKER * self.opts.workers;
        if full {
            inner.paused = true;
        }
        full
    }

    /// A message worker's loop: takes messages until the mailbox is empty.
    fn work(self: Arc<Self>) {
        loop {
            let (id, msg, wake) = {
                let mut inner = self.inner();
                let Some((id, msg)) = inner.mailbox.pop_front() else {
                    inner.running -= 1;
                    self.changed.notify_all();
                    return;
                };
                let limit = MAILBOX_PER_WORKER * self.opts.workers;
                let wake = if inner.paused && inner.mailbox.len() < limit / 2 {
                    inner.paused = false;
                    inner.conn.clone()
                } else {
                    None
                };
                (id, msg, wake)
            };
            if let Some(conn) = wake {
                let _ = conn.wake();
            }
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handler.on_message(&mut self.detached(id), msg)
            }));
            if run.is_err() {
                tracing::error!(url = %self.opts.url, "on_message panicked; restarting the session");
                self.ask(id, Ask::Restart);
            }
        }
    }

    fn stats(&self) -> EngineStats {
        let inner = self.inner();
        EngineStats {
            state: inner.state,
            sessions: inner.sessions,
            restarts: inner.restarts,
            failures: inner.failures,
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            buffered: inner.offline.len(),
            discarded: inner.discarded,
            last_error: inner.last_error.clone(),
            last_delay: inner.last_delay,
        }
    }

    /// Asks the engine to stop; does not wait.
    fn request_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let mut inner = self.inner();
        match inner.state {
            EngineState::Stopped => {}
            EngineState::Open | EngineState::Closing => {
                inner.state = EngineState::Closing;
                if let Some(conn) = &inner.conn {
                    let _ = conn.wake();
                }
            }
            EngineState::Connecting | EngineState::Restarting => match &inner.conn {
                Some(conn) => {
                    let _ = conn.close();
                }
                None => self.stopped(&mut inner, None),
            },
        }
    }

    /// Waits until `done` holds or `deadline` passes; whether it held.
    fn wait_until(&self, deadline: Instant, mut done: impl FnMut(&Inner) -> bool) -> bool {
        let mut inner = self.inner();
        loop {
            if done(&inner) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self
                .changed
                .wait_timeout(inner, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Builds and starts an [`Engine`]. From [`Client::engine`].
pub struct EngineBuilder {
    client: Client,
    url: String,
    config: Config,
    deflate: Option<DeflateConfig>,
    headers: Vec<(String, String)>,
    handshake_timeout: Duration,
    workers: usize,
    backoff: Backoff,
    offline: Offline,
    retry_first_start: bool,
    callbacks: Callbacks,
    handler: Option<Arc<dyn EngineHandler>>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("url", &self.url)
            .field("workers", &self.workers)
            .field("backoff", &self.backoff)
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    pub(crate) fn new(client: Client, url: String) -> EngineBuilder {
        EngineBuilder {
            client,
            url,
            config: Config::default(),
            deflate: None,
            headers: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            workers: 1,
            backoff: Backoff::default(),
            offline: Offline::default(),
            retry_first_start: false,
            callbacks: Callbacks::default(),
            handler: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The TLS settings of `wss://` sessions: trust roots, client certificate, ALPN
    /// (for example `tls::client_config(tls::roots_from_pem("ca.pem")?)`). Default: the
    /// system's trust roots ([`tls::system_roots`](crate::tls::system_roots)), ALPN
    /// `http/1.1`. The server's certificate must be valid for the URL's host; a
    /// certificate that does not verify fails the attempt with
    /// [`EngineError::Connect`] carrying rustls' reason, and the engine restarts as for
    /// any failed attempt. Not used for `ws://`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: impl Into<Arc<rustls::ClientConfig>>) -> EngineBuilder {
        self.tls = Some(config.into());
        self
    }

    /// The dialer of this engine's sessions: the client's, speaking TLS for `wss://`.
    fn dialer(&self, url: &WsUrl) -> Result<Dialer, EngineError> {
        let dialer = self.client.dialer().clone();
        if !url.secure {
            return Ok(dialer);
        }
        #[cfg(feature = "tls")]
        {
            let config = match &self.tls {
                Some(config) => config.clone(),
                None => default_tls()?,
            };
            Ok(dialer.tls(config, &url.server_name))
        }
        #[cfg(not(feature = "tls"))]
        Err(EngineError::TlsUnsupported)
    }

    /// The WebSocket settings the client uses: frame and message limits, liveness
    /// (a ping every [`Config::ping_interval`], the session restarted if no pong
    /// comes within [`Config::pong_timeout`]; on by default: 30 s and 10 s), the close
    /// timeout, the idle timeout and the subprotocols offered (in order of preference).
    /// Its backpressure and origin settings are a server's and are not used: handle
    /// sends are bounded by the runtime's output high-water mark
    /// ([`SendError::Full`]). Default: [`Config::default`].
    pub fn config(mut self, config: Config) -> EngineBuilder {
        self.config = config;
        self
    }

    /// Offers permessage-deflate: `server_*` settings are what the client asks of the
    /// server, `client_*` what it offers to honour. Default: no compression.
    pub fn deflate(mut self, deflate: DeflateConfig) -> EngineBuilder {
        self.deflate = Some(deflate);
        self
    }

    /// An extra header for the upgrade request (an `Authorization` or `Origin`, say).
    pub fn header(mut self, name: &str, value: &str) -> EngineBuilder {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// How long the upgrade may take once the TCP connection is up. Default: 10 s. The
    /// TCP connect itself is bounded by the runtime's
    /// [`connect_timeout`](crate::Builder::connect_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> EngineBuilder {
        self.handshake_timeout = timeout;
        self
    }

    /// Up to `n` messages processed at once by `on_message`, on the client's message
    /// workers; one reader (the connection) decodes them in order. `1` (the default):
    /// strictly in order, on the connection's turn.
    pub fn workers(mut self, n: usize) -> EngineBuilder {
        self.workers = n.max(1);
        self
    }

    /// The restart loop's schedule. Default: [`Backoff::default`].
    pub fn backoff(mut self, backoff: Backoff) -> EngineBuilder {
        self.backoff = backoff;
        self
    }

    /// What sends do while no session is open. Default: [`Offline::default`].
    pub fn offline(mut self, offline: Offline) -> EngineBuilder {
        self.offline = offline;
        self
    }

    /// Whether a first start that fails goes into the restart loop (`start` then waits
    /// for a later attempt, up to its timeout) instead of returning the error. Default:
    /// no.
    pub fn retry_first_start(mut self, retry: bool) -> EngineBuilder {
        self.retry_first_start = retry;
        self
    }

    /// The callbacks as a trait implementation; replaces any closures given.
    pub fn handler(mut self, handler: impl EngineHandler) -> EngineBuilder {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// [`EngineHandler::on_open`] as a closure.
    pub fn on_open<F>(mut self, f: F) -> EngineBuilder
    where
        F: Fn(&mut Session<'_>, bool) + Send + Sync + 'static,
    {
        self.callbacks.open = Some(Box::new(f));
        self
    }

    /// [`EngineHandler::on_message`] as a closure.
    pub fn on_message<F>(mut self, f: F) -> EngineBuilder
    where
        F: Fn(&mut Session<'_>, Message) + Send + Sync + 'static,
    {
        self.callbacks.message = Some(Box::new(f));
        self
    }

    /// [`EngineHandler::on_read_error`] as a closure.
    pub fn on_read_error<F>(mut self, f: F) -> EngineBuilder
    where
        F: Fn(&mut Session<'_>, &EngineError) + Send + Sync + 'static,
    {
        self.callbacks.read_error = Some(Box::new(f));
        self
    }

    /// [`EngineHandler::on_close`] as a closure.
    pub fn on_close<F>(mut self, f: F) -> EngineBuilder
    where
        F: Fn(&mut Session<'_>, &Ending) -> (u16, String) + Send + Sync + 'static,
    {
        self.callbacks.close = Some(Box::new(f));
        self
    }

    /// [`EngineHandler::on_restart_error`] as a closure.
    pub fn on_restart_error<F>(mut self, f: F) -> EngineBuilder
    where
        F: Fn(&mut Session<'_>, &EngineError, u32) + Send + Sync + 'static,
    {
        self.callbacks.restart_error = Some(Box::new(f));
        self
    }

    /// Connects and returns once the first session is open, its `on_open` has returned
    /// and messages are being processed.
    ///
    /// # Errors
    /// A URL that cannot be dialed ([`EngineError::Url`]; `wss://` without trust roots,
    /// [`EngineError::Tls`]);
    /// the first attempt's failure (unless [`retry_first_start`](Self::retry_first_start));
    /// [`EngineError::StartTimeout`] if it is not open within `timeout` (the engine is
    /// then stopped); [`EngineError::ShuttingDown`].
    pub fn start(self, timeout: Duration) -> Result<Engine, EngineError> {
        let url = WsUrl::parse(&self.url).map_err(EngineError::Url)?;
        let dialer = self.dialer(&url)?;
        let mut subprotocols = self.config.subprotocols.clone();
        subprotocols.retain(|p| !p.is_empty());
        let offer = Offer {
            subprotocols,
            deflate: self.deflate,
            headers: self.headers,
        };
        let handler: Arc<dyn EngineHandler> = match self.handler {
            Some(h) => h,
            None => Arc::new(self.callbacks),
        };
        let pool = (self.workers > 1).then(|| self.client.pool(self.workers));
        let core = Arc::new(Core {
            opts: Opts {
                url,
                config: Arc::new(self.config),
                offer,
                handshake_timeout: self.handshake_timeout,
                workers: self.workers,
                backoff: self.backoff,
                offline: self.offline,
                retry_first_start: self.retry_first_start,
            },
            handler,
            dialer,
            pool,
            inner: Mutex::new(Inner {
                state: EngineState::Connecting,
                session: 0,
                conn: None,
                ever_opened: false,
                opened_at: None,
                sessions: 0,
                failures: 0,
                step: 0,
                restarts: 0,
                last_error: None,
                last_delay: None,
                ask: None,
                offline: VecDeque::new(),
                offline_bytes: 0,
                discarded: 0,
                compressed: false,
                turn_queue: VecDeque::new(),
                encoder: Encoder::masking(),
                started: None,
                rng: self.backoff.rng(),
                mailbox: VecDeque::new(),
                running: 0,
                paused: false,
            }),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            asked: AtomicBool::new(false),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
        });
        {
            let mut inner = core.inner();
            core.dial(&mut inner, Duration::ZERO);
        }
        let deadline = Instant::now() + timeout;
        core.wait_until(deadline, |i| i.started.is_some());
        let started = core.inner().started.clone();
        match started {
            Some(Ok(())) => Ok(Engine { core }),
            Some(Err(e)) => Err(e),
            None => {
                core.request_stop();
                Err(EngineError::StartTimeout)
            }
        }
    }
}

/// A running engine: one WebSocket connection kept open across failures.
///
/// Dropping it asks the engine to stop (without waiting); [`stop`](Engine::stop) waits.
#[derive(Debug)]
pub struct Engine {
    core: Arc<Core>,
}

impl Engine {
    /// A handle for sending from any thread.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle::new(self.core.clone())
    }

    /// Where the engine is.
    pub fn state(&self) -> EngineState {
        self.core.inner().state
    }

    /// Its counters.
    pub fn stats(&self) -> EngineStats {
        self.core.stats()
    }

    /// Stops the engine: runs the closing handshake if a session is open (bounded by
    /// the close timeout), cancels a pending restart, waits for the message workers.
    /// Returns once stopped, or at `timeout` whatever the callbacks are doing (the
    /// engine then finishes stopping by itself). Messages still in the offline buffer
    /// are discarded.
    ///
    /// Calling it from one of the engine's own callbacks waits for that callback:
    /// there, use [`Session::exit`].
    ///
    /// # Errors
    /// [`StopTimeout`] if the engine had not stopped by `timeout`.
    pub fn stop(&self, timeout: Duration) -> Result<(), StopTimeout> {
        let deadline = Instant::now() + timeout;
        self.core.request_stop();
        let stopped = self.core.wait_until(deadline, |i| {
            i.state == EngineState::Stopped && i.running == 0
        });
        if stopped {
            Ok(())
        } else {
            Err(StopTimeout)
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.core.request_stop();
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("url", &self.opts.url.text)
            .finish_non_exhaustive()
    }
}

/// Sends to an engine from any thread; `Clone + Send + Sync`. Messages go to the open
/// session, or the offline buffer while there is none ([`Offline`]).
#[derive(Clone, Debug)]
pub struct EngineHandle {
    core: Arc<Core>,
}

impl EngineHandle {
    pub(crate) fn new(core: Arc<Core>) -> EngineHandle {
        EngineHandle { core }
    }

    /// Sends a message: framed (and masked) on this thread and queued on the open
    /// session's connection, or buffered while the engine reconnects. Messages from one
    /// thread arrive in the order sent, those buffered while offline included.
    ///
    /// # Errors
    /// [`SendError::Stopped`] once the engine is stopping; [`SendError::NotConnected`]
    /// or [`SendError::BufferFull`] while reconnecting, per [`Offline`];
    /// [`SendError::Full`] if the connection's output is at its high-water mark.
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), SendError> {
        self.core.send(msg.into())
    }

    /// Sends a text message (copied).
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send(Message::from(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: Bytes) -> Result<(), SendError> {
        self.send(Message::Binary(data))
    }

    /// Ends the open session (closing handshake first) and starts a new one through
    /// the restart loop. Does nothing unless a session is open: an engine that is
    /// connecting or restarting is on its way to a new session already.
    pub fn restart(&self) {
        let id = {
            let inner = self.core.inner();
            if inner.state != EngineState::Open {
                return;
            }
            inner.session
        };
        self.core.ask(id, Ask::Restart);
    }

    /// Where the engine is.
    pub fn state(&self) -> EngineState {
        self.core.inner().state
    }

    /// Its counters.
    pub fn stats(&self) -> EngineStats {
        self.core.stats()
    }

    /// Blocks until the engine is open or stopped, or `timeout` passes; whether it is
    /// open.
    pub fn wait_open(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.core.wait_until(deadline, |i| {
            matches!(i.state, EngineState::Open | EngineState::Stopped)
        });
        self.state() == EngineState::Open
    }

    /// Blocks until the engine has stopped or `timeout` passes; whether it stopped.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.core
            .wait_until(deadline, |i| i.state == EngineState::Stopped)
    }
}

/// The TLS config of `wss://` engines given none: the system's roots, loaded once per
/// process, ALPN `http/1.1`.
#[cfg(feature = "tls")]
fn default_tls() -> Result<Arc<rustls::ClientConfig>, EngineError> {
    static DEFAULT: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots = crate::tls::system_roots().map_err(|e| e.to_string())?;
            let mut config = crate::tls::client_config(roots);
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(EngineError::Tls)
}
