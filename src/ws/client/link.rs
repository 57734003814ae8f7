//! One session's connection: a core [`Handler`] on the runtime's pollers that does the
//! opening handshake, then frames, liveness and the closing handshake, and tells the
//! engine how it ended.
//!
//! | stage | entered when | data frames | leaves to |
//! |---|---|---|---|
//! | `Handshake` | connected; the upgrade request is queued | (the answer is awaited) | `Open` (a good 101), `Closed` (a bad answer, the handshake timeout, a stop) |
//! | `Open` | the 101 checked, `on_open` returned | delivered to `on_message` | `CloseSent` (stop, restart or exit asked), `Closed` (the server's Close, a protocol error, the pong timeout) |
//! | `CloseSent` | this side sent Close | ignored | `Closed` (the server's Close, or the close timeout) |
//! | `Closed` | it is over | ignored | the socket closes; the engine restarts or stops |

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::engine::Core;
use super::error::EngineError;
use super::handler::{Ending, Session};
use super::handshake::{self, Opened};
use crate::ws::close;
use crate::ws::codec::{Decoder, Encoder, Incoming, Limits, ProtocolError, Role};
use crate::ws::deflate::Deflate;
use crate::ws::frame::OpCode;
use crate::ws::Message;
use crate::{CloseReason, Conn, ConnHandle, Handler, TimerKey};

const PING: TimerKey = TimerKey(0xFF00);
const PONG: TimerKey = TimerKey(0xFF01);
const CLOSE: TimerKey = TimerKey(0xFF02);
const HANDSHAKE: TimerKey = TimerKey(0xFF03);

/// An open session's protocol state.
pub(crate) struct Proto {
    decoder: Decoder,
    encoder: Encoder,
    deflate: Option<Deflate>,
    subprotocol: Option<String>,
    open: bool,
    awaiting_pong: bool,
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
}

impl Proto {
    fn new(core: &Core, opened: Opened) -> Proto {
        let config = &core.opts.config;
        let limits = Limits {
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
        };
        Proto {
            decoder: Decoder::new(Role::Client, limits, opened.deflate.is_some()),
            encoder: Encoder::masking(),
            deflate: opened.deflate.map(Deflate::client),
            subprotocol: opened.subprotocol,
            open: true,
            awaiting_pong: false,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    pub(crate) fn compressed(&self) -> bool {
        self.deflate.is_some()
    }

    pub(crate) fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Writes a message, compressed where it was negotiated and worth it.
    pub(crate) fn send(&mut self, conn: &mut Conn, msg: &Message) {
        if self.open {
            self.encoder
                .message(conn.output(), msg, self.deflate.as_mut());
        }
    }

    fn control(&mut self, conn: &mut Conn, opcode: OpCode, payload: &[u8]) {
        self.encoder.control(conn.output(), opcode, payload);
    }
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Handshake,
    Open,
    CloseSent,
    Closed,
}

/// The core handler of one session's connection.
pub(crate) struct Link {
    core: Arc<Core>,
    session: u64,
}

impl Link {
    pub(crate) fn new(core: Arc<Core>, session: u64) -> Link {
        Link { core, session }
    }
}

/// The connection's state.
pub(crate) struct LinkState {
    stage: Stage,
    key: String,
    proto: Option<Proto>,
    /// The handshake succeeded (the engine counts a session, not a failed attempt).
    opened: bool,
    /// `on_close` ran for this session.
    told_close: bool,
    /// Why it ended, for the engine (`None`: this side closed it cleanly).
    end: Option<EngineError>,
    /// It ended because this side asked (stop, restart, exit): not an error.
    local: bool,
}

impl Link {
    fn session<'a>(&'a self, conn: &'a mut Conn, proto: &'a mut Proto) -> Session<'a> {
        Session {
            core: &self.core,
            id: self.session,
            live: Some((conn, proto)),
        }
    }

    /// Runs `on_close` (once) on the connection's turn; the code and reason to send.
    fn tell_close(&self, st: &mut LinkState, conn: &mut Conn, ending: &Ending) -> (u16, String) {
        if std::mem::replace(&mut st.told_close, true) {
            return (close::NORMAL, String::new());
        }
        match st.proto.as_mut() {
            Some(proto) => self
                .core
                .handler
                .on_close(&mut self.session(conn, proto), ending),
            None => (close::NORMAL, String::new()),
        }
    }

    /// The session failed: the server broke the protocol, went silent, or the close
    /// timeout passed. `on_read_error` and `on_close` are told, the socket closes.
    fn fail(
        &self,
        st: &mut LinkState,
        conn: &mut Conn,
        error: EngineError,
        send_close: Option<u16>,
    ) {
        if st.stage == Stage::Open {
            if let (Some(code), Some(proto)) = (send_close, st.proto.as_mut()) {
                conn.seal_output();
                let what = match &error {
                    EngineError::Protocol(e) => e.what,
                    _ => "",
                };
                proto.control(conn, OpCode::Close, &close::payload(code, what));
            }
            if let Some(proto) = st.proto.as_mut() {
                self.core
                    .handler
                    .on_read_error(&mut self.session(conn, proto), &error);
            }
            self.tell_close(st, conn, &Ending::Error(error.clone()));
        }
        st.end.get_or_insert(error);
        self.finish(st, conn);
    }

    /// It is over: timers off, input dropped, the socket closed once the output is out.
    fn finish(&self, st: &mut LinkState, conn: &mut Conn) {
        st.stage = Stage::Closed;
        if let Some(p) = st.proto.as_mut() {
            p.open = false;
        }
        for key in [PING, PONG, CLOSE, HANDSHAKE] {
            conn.cancel_timer(key);
        }
        let n = conn.input().len();
        conn.input().skip(n);
        conn.close();
    }

    /// Starts this side's closing handshake for `ending`.
    fn close_locally(&self, st: &mut LinkState, conn: &mut Conn, ending: Ending) {
        match st.stage {
            Stage::Open => {}
            Stage::Handshake => {
                st.local = true;
                return self.finish(st, conn);
            }
            Stage::CloseSent | Stage::Closed => return,
        }
        let (code, reason) = self.tell_close(st, conn, &ending);
        let code = if close::is_valid_code(code) {
            code
        } else {
            close::NORMAL
        };
        let proto = st.proto.as_mut().expect("an open link has its protocol");
        conn.seal_output();
        proto.control(conn, OpCode::Close, &close::payload(code, &reason));
        proto.open = false;
        st.stage = Stage::CloseSent;
        st.local = true;
        conn.cancel_timer(PING);
        conn.cancel_timer(PONG);
        conn.set_timer(CLOSE, self.core.opts.config.close_timeout);
        self.core.closing(self.session);
    }

    /// After a callback, or on a wake: a stop, restart or exit asked ends the session.
    fn check_asks(&self, st: &mut LinkState, conn: &mut Conn) {
        if st.stage == Stage::Open || st.stage == Stage::Handshake {
            if let Some(ending) = self.core.pending_ending(self.session) {
                self.close_locally(st, conn, ending);
            }
        }
    }

    /// The handshake answer, once it is all there.
    fn handshake(&self, st: &mut LinkState, conn: &mut Conn) {
        let answer =
            handshake::check_response(conn.input().as_slice(), &st.key, &self.core.opts.offer);
        let opened = match answer {
            Ok(None) => return,
            Ok(Some(o)) => o,
            Err(e) => {
                tracing::debug!(error = %e, "handshake refused");
                st.end = Some(EngineError::Handshake(e));
                return self.finish(st, conn);
            }
        };
        conn.input().skip(opened.head_len);
        conn.cancel_timer(HANDSHAKE);
        let mut proto = Proto::new(&self.core, opened);
        st.stage = Stage::Open;
        st.opened = true;
        if let Some(every) = proto.ping_interval {
            conn.set_timer(PING, every);
        }
        conn.set_idle_timeout(self.core.opts.config.idle_timeout);
        if !self.core.opened(self.session, conn, &mut proto) {
            // Stopped while connecting: close without telling a session that never
            // reached on_open.
            st.told_close = true;
            st.proto = Some(proto);
            return self.close_locally(st, conn, Ending::Stop);
        }
        st.proto = Some(proto);
        self.check_asks(st, conn);
    }

    /// Takes frames off the input while the session is open or closing.
    fn pump(&self, st: &mut LinkState, conn: &mut Conn) {
        loop {
            if st.stage == Stage::Closed {
                let n = conn.input().len();
                return conn.input().skip(n);
            }
            if self.core.workers() > 1 && self.core.mailbox_full() {
                return;
            }
            let Some(proto) = st.proto.as_mut() else {
                return;
            };
            let event = match proto.decoder.decode(conn.input(), proto.deflate.as_mut()) {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e @ ProtocolError { code, .. }) => {
                    return self.fail(st, conn, EngineError::Protocol(e), Some(code))
                }
            };
            match event {
                Incoming::Message(msg) => {
                    if st.stage != Stage::Open {
                        continue;
                    }
                    self.core.count_in();
                    if self.core.workers() > 1 {
                        self.core.post(self.session, msg);
                    } else {
                        self.core
                            .handler
                            .on_message(&mut self.session(conn, proto), msg);
                        self.check_asks(st, conn);
                    }
                }
                Incoming::Ping(payload) => {
                    if st.stage == Stage::Open {
                        proto.control(conn, OpCode::Pong, &payload);
                    }
                }
                Incoming::Pong(_) => {
                    if std::mem::take(&mut proto.awaiting_pong) {
                        conn.cancel_timer(PONG);
                    }
                }
                Incoming::Close { code, reason } => self.server_closed(st, conn, code, reason),
            }
        }
    }

    fn server_closed(&self, st: &mut LinkState, conn: &mut Conn, code: u16, reason: Bytes) {
        let reason = String::from_utf8_lossy(&reason).into_owned();
        match st.stage {
            Stage::Open => {
                let ending = Ending::Server {
                    code,
                    reason: reason.clone(),
                };
                self.tell_close(st, conn, &ending);
                let echo = if code == close::NO_STATUS {
                    Bytes::new()
                } else {
                    close::payload(code, "")
                };
                conn.seal_output();
                if let Some(proto) = st.proto.as_mut() {
                    proto.control(conn, OpCode::Close, &echo);
                }
                st.end = Some(EngineError::ClosedByServer { code, reason });
                self.finish(st, conn);
            }
            Stage::CloseSent => self.finish(st, conn),
            Stage::Handshake | Stage::Closed => {}
        }
    }
}

impl Handler for Link {
    type State = LinkState;

    fn on_connect(&self, conn: &mut Conn) -> LinkState {
        // Liveness is the WebSocket layer's pings; the core's read timeout is for
        // request heads.
        conn.set_read_timeout(None);
        conn.set_idle_timeout(None);
        let key = handshake::new_key();
        let request = handshake::request(&self.core.opts.url, &key, &self.core.opts.offer);
        conn.output().write(&request);
        conn.set_timer(HANDSHAKE, self.core.opts.handshake_timeout);
        let mut st = LinkState {
            stage: Stage::Handshake,
            key,
            proto: None,
            opened: false,
            told_close: false,
            end: None,
            local: false,
        };
        self.check_asks(&mut st, conn);
        st
    }

    fn on_request(&self, st: &mut LinkState, conn: &mut Conn) {
        if st.stage == Stage::Handshake {
            self.handshake(st, conn);
            if st.stage == Stage::Handshake {
                return;
            }
        }
        self.pump(st, conn);
    }

    fn on_timer(&self, st: &mut LinkState, conn: &mut Conn, key: TimerKey) {
        match key {
            HANDSHAKE if st.stage == Stage::Handshake => {
                st.end = Some(EngineError::HandshakeTimeout);
                self.finish(st, conn);
            }
            PING if st.stage == Stage::Open => {
                let Some(proto) = st.proto.as_mut() else {
                    return;
                };
                if !proto.awaiting_pong {
                    proto.control(conn, OpCode::Ping, b"");
                    proto.awaiting_pong = true;
                    conn.set_timer(PONG, proto.pong_timeout);
                }
                if let Some(every) = proto.ping_interval {
                    conn.set_timer(PING, every);
                }
            }
            PONG if st.stage == Stage::Open
                && st.proto.as_ref().is_some_and(|p| p.awaiting_pong) =>
            {
                tracing::debug!("no pong within the pong timeout; restarting");
                self.fail(st, conn, EngineError::PongTimeout, None);
            }
            CLOSE if st.stage == Stage::CloseSent => {
                if !st.local {
                    st.end = Some(EngineError::CloseTimeout);
                }
                self.finish(st, conn);
            }
            _ => {}
        }
    }

    fn on_wake(&self, st: &mut LinkState, conn: &mut Conn) {
        if st.stage == Stage::Open {
            let queued = self.core.take_turn_queue();
            if let Some(proto) = st.proto.as_mut() {
                for msg in &queued {
                    proto.send(conn, msg);
                }
            }
        }
        self.check_asks(st, conn);
        // A worker made room in the mailbox: frames left in the input go on.
        if matches!(st.stage, Stage::Open | Stage::CloseSent) {
            self.pump(st, conn);
        }
    }

    fn on_connect_failed(&self, _conn: &ConnHandle, error: &std::io::Error) {
        tracing::debug!(%error, url = %self.core.opts.url, "connect failed");
        let error = EngineError::Connect(Arc::new(std::io::Error::new(
            error.kind(),
            error.to_string(),
        )));
        self.core.ended(self.session, false, Some(error));
    }

    fn on_close(&self, mut st: LinkState, reason: CloseReason) {
        if st.opened && !st.told_close {
            // The connection broke underneath an open session.
            let error = EngineError::Lost(reason);
            let mut session = Session {
                core: &self.core,
                id: self.session,
                live: None,
            };
            self.core.handler.on_read_error(&mut session, &error);
            self.core
                .handler
                .on_close(&mut session, &Ending::Error(error.clone()));
            st.end.get_or_insert(error);
        }
        let end = if st.local && st.end.is_none() {
            None
        } else {
            Some(st.end.take().unwrap_or(EngineError::Lost(reason)))
        };
        self.core.ended(self.session, st.opened, end);
    }
}
