//! The server side: the upgrade that opens a connection, and its life after it.
//!
//! After the handshake the connection is switched ([`Conn::switch_to`]) to [`Socket`],
//! a core handler whose per-connection state holds the handler's state and the
//! protocol's: the decoder and encoder, the deflate contexts, where the closing
//! handshake is, and what `on_close` will be told. The protocol's phases:
//!
//! | phase | entered when | data frames | leaves to |
//! |---|---|---|---|
//! | `Open` | the 101 is sent | delivered to `on_message` | `CloseSent` (this side's close), `Closed` (the peer's close, a protocol error) |
//! | `CloseSent` | this side sent Close | ignored | `Closed` (the peer's Close, or the close timeout) |
//! | `Closed` | the handshake is over or the connection failed | ignored | the socket closes, `on_close` runs |

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::close;
use super::codec::{Decoder, Encoder, Incoming, Limits, ProtocolError, Role};
use super::config::Config;
use super::deflate::Deflate;
use super::frame::OpCode;
use super::handle::{Outgoing, WsHandle, WsShared};
use super::handshake;
use super::message::Message;
use crate::http::{switching_protocols, Http, Request, Response, Service, Upgrade};
use crate::{Addr, CloseReason, Conn, Handler, TimerKey};

/// The timer keys this layer uses; handlers keep to the keys below.
const PING: TimerKey = TimerKey(0xFF00);
const PONG: TimerKey = TimerKey(0xFF01);
const CLOSE: TimerKey = TimerKey(0xFF02);
/// The first key this layer reserves.
pub(crate) const RESERVED_KEYS: u16 = 0xFF00;

/// The callbacks of a WebSocket server.
///
/// One value serves every connection; the per-connection state is what
/// [`on_open`](WsHandler::on_open) returns. Callbacks of one connection never run at
/// the same time (netloop's one-in-flight rule), on its poller or, with
/// [`Dispatch::Pool`](crate::Dispatch::Pool), a worker.
pub trait WsHandler: Send + Sync + 'static {
    /// Per-connection state.
    type State: Send + 'static;

    /// The handshake succeeded (the 101 is queued): creates the state. `req` is the
    /// upgrade request (path, query, headers, cookies). May send messages.
    fn on_open(&self, ws: &mut WsConn<'_>, req: &Request) -> Self::State;

    /// A complete message arrived.
    fn on_message(&self, state: &mut Self::State, ws: &mut WsConn<'_>, msg: Message);

    /// A ping arrived (the pong is already queued).
    fn on_ping(&self, state: &mut Self::State, ws: &mut WsConn<'_>, payload: &Bytes) {
        let _ = (state, ws, payload);
    }

    /// A pong arrived (answering this side's ping, or unsolicited).
    fn on_pong(&self, state: &mut Self::State, ws: &mut WsConn<'_>, payload: &Bytes) {
        let _ = (state, ws, payload);
    }

    /// The connection had reached the output mark and has room again.
    fn on_drain(&self, state: &mut Self::State, ws: &mut WsConn<'_>) {
        let _ = (state, ws);
    }

    /// `count` messages sent from other threads were dropped since the last call
    /// (the [`Backpressure::Drop`](super::Backpressure::Drop) policy).
    fn on_dropped(&self, state: &mut Self::State, ws: &mut WsConn<'_>, count: u64) {
        let _ = (state, ws, count);
    }

    /// A timer the handler armed with [`WsConn::set_timer`] expired.
    fn on_timer(&self, state: &mut Self::State, ws: &mut WsConn<'_>, key: TimerKey) {
        let _ = (state, ws, key);
    }

    /// The connection ended: exactly once, last.
    fn on_close(&self, state: Self::State, closed: Closed) {
        let _ = (state, closed);
    }
}

/// How a connection ended, as [`WsHandler::on_close`] is told.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// The close code: the peer's if it closed first, this side's if it did,
    /// [`close::ABNORMAL`] (1006) if the connection ended without a closing handshake.
    pub code: u16,
    /// The reason text that came with the code.
    pub reason: String,
    /// Close frames went both ways.
    pub clean: bool,
    /// What ended it.
    pub cause: Cause,
}

/// What ended a WebSocket connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The peer started the closing handshake.
    Peer,
    /// This side did ([`WsConn::close`], [`WsHandle::close`]) and the peer answered.
    Local,
    /// This side closed and the peer did not answer within the close timeout.
    CloseTimeout,
    /// The peer did not answer a ping within the pong timeout.
    PongTimeout,
    /// The peer broke the protocol; the connection was failed with `code`.
    ProtocolError,
    /// The connection ended underneath (the peer vanished, an error, a server timeout,
    /// the server shutting down): the core's reason.
    Lost(CloseReason),
}

/// Where the protocol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    CloseSent,
    Closed,
}

/// One connection's protocol state (besides the handler's own).
pub(crate) struct Protocol {
    config: Arc<Config>,
    decoder: Decoder,
    encoder: Encoder,
    deflate: Option<Deflate>,
    phase: Phase,
    /// The code this side sent in its Close.
    sent_code: u16,
    subprotocol: Option<String>,
    /// What `on_close` will be told, once it is known.
    closed: Option<Closed>,
    /// What handles share with this connection; made when the first is asked for.
    shared: Option<Arc<WsShared>>,
    /// Drops already reported to `on_dropped`.
    dropped_reported: u64,
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    /// A ping is out and its pong has not come.
    awaiting_pong: bool,
}

impl Protocol {
    fn new(config: Arc<Config>, subprotocol: Option<String>, deflate: Option<Deflate>) -> Protocol {
        let limits = Limits {
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
        };
        Protocol {
            decoder: Decoder::new(Role::Server, limits, deflate.is_some()),
            encoder: Encoder::new(),
            deflate,
            phase: Phase::Open,
            sent_code: 0,
            subprotocol,
            closed: None,
            shared: None,
            dropped_reported: 0,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            awaiting_pong: false,
            config,
        }
    }

    /// Arms what an open connection needs: its ping timer and the idle timeout.
    fn start(&mut self, conn: &mut Conn) {
        // HTTP's read deadline was for request heads; frames arrive when they arrive.
        conn.set_read_timeout(None);
        conn.set_idle_timeout(self.config.idle_timeout);
        if let Some(every) = self.ping_interval {
            conn.set_timer(PING, every);
        }
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        if phase != Phase::Open {
            if let Some(shared) = &self.shared {
                shared.mark_closing();
            }
        }
    }

    fn send(&mut self, conn: &mut Conn, msg: &Message) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        self.encoder
            .message(conn.output(), msg, self.deflate.as_mut());
        true
    }

    /// Starts the closing handshake from this side.
    fn close(&mut self, conn: &mut Conn, code: u16, reason: &str) {
        if self.phase != Phase::Open {
            return;
        }
        let code = if close::is_valid_code(code) {
            code
        } else {
            close::NORMAL
        };
        // Nothing may follow the Close: other threads' sends and hub messages stop here.
        conn.seal_output();
        self.encoder
            .control(conn.output(), OpCode::Close, &close::payload(code, reason));
        self.sent_code = code;
        self.set_phase(Phase::CloseSent);
        conn.cancel_timer(PING);
        conn.cancel_timer(PONG);
        conn.set_timer(CLOSE, self.config.close_timeout);
    }

    /// Fails the connection: Close with `e.code`, and the socket closes without waiting.
    fn fail(&mut self, conn: &mut Conn, e: ProtocolError) {
        tracing::debug!(
            code = e.code,
            what = e.what,
            "failing the WebSocket connection"
        );
        if self.phase == Phase::Open {
            conn.seal_output();
            self.encoder.control(
                conn.output(),
                OpCode::Close,
                &close::payload(e.code, e.what),
            );
        }
        self.finish(
            conn,
            e.code,
            e.what.to_string(),
            false,
            Cause::ProtocolError,
        );
    }

    /// The protocol is over: record how, close the socket once the output is sent.
    fn finish(&mut self, conn: &mut Conn, code: u16, reason: String, clean: bool, cause: Cause) {
        self.set_phase(Phase::Closed);
        self.closed.get_or_insert(Closed {
            code,
            reason,
            clean,
            cause,
        });
        conn.cancel_timer(PING);
        conn.cancel_timer(PONG);
        conn.cancel_timer(CLOSE);
        let n = conn.input().len();
        conn.input().skip(n);
        conn.close();
    }

    fn shared(&mut self, conn: &Conn) -> &Arc<WsShared> {
        let compressed = self.deflate.as_ref().map(|d| *d.params());
        let config = &self.config;
        self.shared.get_or_insert_with(|| {
            Arc::new(WsShared::new(
                conn.handle(),
                compressed,
                config.max_backpressure,
                config.backpressure,
            ))
        })
    }
}

/// A WebSocket connection, lent to a [`WsHandler`] for the duration of a callback.
pub struct WsConn<'a> {
    conn: &'a mut Conn,
    proto: &'a mut Protocol,
}

impl std::fmt::Debug for WsConn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn")
            .field("id", &self.conn.id())
            .field("phase", &self.proto.phase)
            .finish_non_exhaustive()
    }
}

impl WsConn<'_> {
    /// Sends a message (text or binary). Returns `false`, sending nothing, once the
    /// closing handshake has begun.
    pub fn send(&mut self, msg: impl Into<Message>) -> bool {
        let msg = msg.into();
        self.proto.send(self.conn, &msg)
    }

    /// Sends a text message (copied).
    pub fn send_text(&mut self, text: &str) -> bool {
        self.send(Message::from(text))
    }

    /// Sends a binary message without copying it.
    pub fn send_binary(&mut self, data: Bytes) -> bool {
        self.send(Message::Binary(data))
    }

    /// Sends a ping (at most 125 bytes of payload; longer is cut).
    pub fn ping(&mut self, payload: &[u8]) {
        if self.proto.phase == Phase::Open {
            let payload = &payload[..payload.len().min(125)];
            self.proto
                .encoder
                .control(self.conn.output(), OpCode::Ping, payload);
        }
    }

    /// Starts the closing handshake: sends Close with `code` (a valid close code; an
    /// invalid one becomes 1000) and `reason` (cut to 123 bytes), ignores data from then
    /// on, and closes the socket when the peer's Close comes or after
    /// [`Config::close_timeout`].
    pub fn close(&mut self, code: u16, reason: &str) {
        self.proto.close(self.conn, code, reason);
    }

    /// A handle for sending to this connection from any thread.
    pub fn handle(&mut self) -> WsHandle {
        WsHandle::new(self.proto.shared(self.conn).clone())
    }

    /// Bytes queued for this connection and not yet taken by its socket.
    pub fn buffered_amount(&mut self) -> usize {
        self.conn.output().len() + self.conn.handle().queued()
    }

    /// The subprotocol the handshake chose, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.proto.subprotocol.as_deref()
    }

    /// permessage-deflate's negotiated parameters, if it was negotiated.
    pub fn deflate(&self) -> Option<&super::DeflateParams> {
        self.proto.deflate.as_ref().map(|d| d.params())
    }

    /// Overrides the server's liveness settings for this connection: ping every
    /// `ping_interval` (`None`: never), close if a pong takes longer than `pong_timeout`.
    pub fn set_liveness(&mut self, ping_interval: Option<Duration>, pong_timeout: Duration) {
        self.proto.ping_interval = ping_interval;
        self.proto.pong_timeout = pong_timeout;
        match ping_interval {
            Some(every) if self.proto.phase == Phase::Open => self.conn.set_timer(PING, every),
            _ => self.conn.cancel_timer(PING),
        }
    }

    /// Arms the handler's timer `key` ([`WsHandler::on_timer`] runs `after` from now).
    ///
    /// # Panics
    /// If `key` is one of this layer's (0xFF00 and up).
    pub fn set_timer(&mut self, key: TimerKey, after: Duration) {
        assert!(
            key.0 < RESERVED_KEYS,
            "timer keys from 0xFF00 up are the WebSocket layer's"
        );
        self.conn.set_timer(key, after);
    }

    /// Disarms the handler's timer `key`.
    pub fn cancel_timer(&mut self, key: TimerKey) {
        if key.0 < RESERVED_KEYS {
            self.conn.cancel_timer(key);
        }
    }

    /// The connection's id (unique within the process).
    pub fn id(&self) -> u64 {
        self.conn.id()
    }

    /// The remote end's address.
    pub fn peer_addr(&self) -> &Addr {
        self.conn.peer_addr()
    }

    /// Whether the connection is open (the closing handshake has not begun).
    pub fn is_open(&self) -> bool {
        self.proto.phase == Phase::Open
    }
}

/// The state of an open WebSocket connection: the handler's and the protocol's.
pub(crate) struct Live<S> {
    user: S,
    proto: Protocol,
}

/// The core handler a connection is switched to after its handshake.
pub(crate) struct Socket<H> {
    handler: Arc<H>,
}

impl<H: WsHandler> Socket<H> {
    fn ws<'a>(conn: &'a mut Conn, proto: &'a mut Protocol) -> WsConn<'a> {
        WsConn { conn, proto }
    }

    /// Hands `on_dropped` what was dropped since it last ran.
    fn report_drops(&self, st: &mut Live<H::State>, conn: &mut Conn) {
        let dropped = st.proto.shared.as_ref().map_or(0, |s| s.dropped());
        if dropped > st.proto.dropped_reported {
            let count = dropped - st.proto.dropped_reported;
            st.proto.dropped_reported = dropped;
            self.handler
                .on_dropped(&mut st.user, &mut Self::ws(conn, &mut st.proto), count);
        }
    }
}

impl<H: WsHandler> Handler for Socket<H> {
    type State = Live<H::State>;

    fn on_connect(&self, _conn: &mut Conn) -> Live<H::State> {
        unreachable!("a WebSocket connection starts by a protocol switch")
    }

    fn on_request(&self, st: &mut Live<H::State>, conn: &mut Conn) {
        loop {
            if st.proto.phase == Phase::Closed {
                let n = conn.input().len();
                return conn.input().skip(n);
            }
            let event = match st
                .proto
                .decoder
                .decode(conn.input(), st.proto.deflate.as_mut())
            {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => return st.proto.fail(conn, e),
            };
            match event {
                Incoming::Message(msg) => {
                    if st.proto.phase == Phase::Open {
                        self.handler.on_message(
                            &mut st.user,
                            &mut Self::ws(conn, &mut st.proto),
                            msg,
                        );
                    }
                }
                Incoming::Ping(payload) => {
                    if st.proto.phase == Phase::Open {
                        st.proto
                            .encoder
                            .control(conn.output(), OpCode::Pong, &payload);
                        self.handler.on_ping(
                            &mut st.user,
                            &mut Self::ws(conn, &mut st.proto),
                            &payload,
                        );
                    }
                }
                Incoming::Pong(payload) => {
                    if std::mem::take(&mut st.proto.awaiting_pong) {
                        conn.cancel_timer(PONG);
                    }
                    if st.proto.phase == Phase::Open {
                        self.handler.on_pong(
                            &mut st.user,
                            &mut Self::ws(conn, &mut st.proto),
                            &payload,
                        );
                    }
                }
                Incoming::Close { code, reason } => {
                    let reason = String::from_utf8_lossy(&reason).into_owned();
                    match st.proto.phase {
                        Phase::Open => {
                            // Answer with the same code (none if it sent none).
                            let echo = if code == close::NO_STATUS {
                                Bytes::new()
                            } else {
                                close::payload(code, "")
                            };
                            conn.seal_output();
                            st.proto
                                .encoder
                                .control(conn.output(), OpCode::Close, &echo);
                            st.proto.finish(conn, code, reason, true, Cause::Peer);
                        }
                        Phase::CloseSent => {
                            let sent = st.proto.sent_code;
                            st.proto.finish(conn, sent, reason, true, Cause::Local);
                        }
                        Phase::Closed => {}
                    }
                }
            }
        }
    }

    fn on_timer(&self, st: &mut Live<H::State>, conn: &mut Conn, key: TimerKey) {
        match key {
            PING => {
                if st.proto.phase != Phase::Open {
                    return;
                }
                if !st.proto.awaiting_pong {
                    st.proto.encoder.control(conn.output(), OpCode::Ping, b"");
                    st.proto.awaiting_pong = true;
                    conn.set_timer(PONG, st.proto.pong_timeout);
                }
                if let Some(every) = st.proto.ping_interval {
                    conn.set_timer(PING, every);
                }
            }
            PONG if st.proto.awaiting_pong => {
                tracing::debug!("no pong within the pong timeout; closing");
                st.proto.finish(
                    conn,
                    close::ABNORMAL,
                    "no pong within the pong timeout".into(),
                    false,
                    Cause::PongTimeout,
                );
            }
            CLOSE if st.proto.phase == Phase::CloseSent => {
                let sent = st.proto.sent_code;
                st.proto
                    .finish(conn, sent, String::new(), false, Cause::CloseTimeout);
            }
            key if key.0 < RESERVED_KEYS => {
                self.handler
                    .on_timer(&mut st.user, &mut Self::ws(conn, &mut st.proto), key);
            }
            _ => {}
        }
    }

    fn on_wake(&self, st: &mut Live<H::State>, conn: &mut Conn) {
        // Sends and closes from other threads that need this connection's turn.
        let queued = st.proto.shared.as_ref().map(|s| s.take_queue());
        for item in queued.into_iter().flatten() {
            match item {
                Outgoing::Message(msg) => {
                    st.proto.send(conn, &msg);
                }
                Outgoing::Ping(payload) => {
                    Self::ws(conn, &mut st.proto).ping(&payload);
                }
                Outgoing::Close(code, reason) => st.proto.close(conn, code, &reason),
            }
        }
        self.report_drops(st, conn);
    }

    fn on_drain(&self, st: &mut Live<H::State>, conn: &mut Conn) {
        self.report_drops(st, conn);
        if st.proto.phase == Phase::Open {
            self.handler
                .on_drain(&mut st.user, &mut Self::ws(conn, &mut st.proto));
        }
    }

    fn on_close(&self, st: Live<H::State>, reason: CloseReason) {
        let Live { user, mut proto } = st;
        if let Some(shared) = &proto.shared {
            shared.mark_closing();
        }
        let closed = proto.closed.take().unwrap_or(Closed {
            code: close::ABNORMAL,
            reason: String::new(),
            clean: false,
            cause: Cause::Lost(reason),
        });
        self.handler.on_close(user, closed);
    }
}

/// The hook for [`Http::on_upgrade`] that accepts WebSocket handshakes (and declines
/// other upgrades, for the service to answer): checks the request, negotiates the
/// subprotocol and permessage-deflate, sends the 101, runs
/// [`WsHandler::on_open`] and switches the connection to WebSocket. Frames the client
/// sent right behind its request are already buffered and handled at once.
///
/// ```no_run
/// use netloop::http::{Http, Request, Response};
/// use netloop::ws::{self, Message, WsConn, WsHandler};
///
/// struct Chat;
/// impl WsHandler for Chat {
///     type State = ();
///     fn on_open(&self, _: &mut WsConn<'_>, req: &Request) {
///         println!("joined from {}", req.path());
///     }
///     fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
///         ws.send(msg);
///     }
/// }
///
/// let site = Http::new(|_: &Request, res: &mut Response<'_>| res.body(b"<html>...</html>"))
///     .on_upgrade(ws::upgrade(Chat, ws::Config::default()));
/// let server = netloop::Server::builder().listen("127.0.0.1:8080").serve(site)?;
/// # Ok::<(), netloop::Error>(())
/// ```
pub fn upgrade<H: WsHandler>(
    handler: H,
    config: Config,
) -> impl Fn(&Request, &mut Conn) -> Upgrade + Send + Sync + 'static {
    let handler = Arc::new(handler);
    let socket = Arc::new(Socket {
        handler: handler.clone(),
    });
    let config = Arc::new(config);
    move |req: &Request, conn: &mut Conn| {
        if !handshake::is_websocket(req) {
            return Upgrade::Declined;
        }
        let origin_ok =
            |origin: Option<&[u8]>| config.origin.as_ref().is_none_or(|check| check(origin));
        let accepted = match handshake::accept(
            req,
            &config.subprotocols,
            config.deflate.as_ref(),
            origin_ok,
        ) {
            Ok(a) => a,
            Err(r) => {
                return Upgrade::Refused {
                    status: r.status,
                    reason: r.reason,
                    headers: r.headers,
                }
            }
        };
        let mut headers: Vec<(&str, &str)> = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", &accepted.accept),
        ];
        if let Some(p) = &accepted.subprotocol {
            headers.push(("Sec-WebSocket-Protocol", p));
        }
        if let Some((_, response)) = &accepted.deflate {
            headers.push(("Sec-WebSocket-Extensions", response));
        }
        switching_protocols(conn.output(), &headers);
        let deflate = accepted.deflate.as_ref().map(|(p, _)| Deflate::new(*p));
        let mut proto = Protocol::new(config.clone(), accepted.subprotocol.clone(), deflate);
        proto.start(conn);
        let user = handler.on_open(
            &mut WsConn {
                conn,
                proto: &mut proto,
            },
            req,
        );
        conn.switch_to(socket.clone(), Live { user, proto });
        Upgrade::Switched
    }
}

/// A handler that serves WebSocket only: every request is a handshake (others get
/// `426 Upgrade Required`). See the [module docs](super) for an example.
pub fn server<H: WsHandler>(handler: H, config: Config) -> Http<NotWebSocket> {
    Http::new(NotWebSocket).on_upgrade(upgrade(handler, config))
}

/// The answer of [`server`] to requests that are not WebSocket handshakes:
/// `426 Upgrade Required`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotWebSocket;

impl Service for NotWebSocket {
    fn call(&self, _req: &Request, res: &mut Response<'_>) {
        res.status(426, "Upgrade Required")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Content-Type", "text/plain")
            .body(b"this server speaks WebSocket only\n");
    }
}
