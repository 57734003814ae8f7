//! The engine's callbacks: the [`EngineHandler`] trait, the [`Session`] each callback
//! gets, and the closure adapter the builder fills in.

use std::sync::Arc;

use bytes::Bytes;

use super::engine::{Ask, Core, EngineHandle};
use super::error::{EngineError, SendError};
use super::link::Proto;
use crate::ws::Message;
use crate::Conn;

/// Why a session is ending, as [`EngineHandler::on_close`] is told.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Ending {
    /// [`Engine::stop`](super::Engine::stop) was called.
    Stop,
    /// A callback or a handle asked for a restart.
    Restart,
    /// A callback asked the engine to exit.
    Exit,
    /// The server sent a Close (already answered).
    Server {
        /// Its close code (1005 if it sent none).
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The session failed: the connection broke, the server went silent or broke the
    /// protocol ([`EngineHandler::on_read_error`] was told first).
    Error(EngineError),
}

/// The callbacks of an engine. Every method but `on_message` has a default that does
/// nothing (`on_close`: close with 1000).
///
/// Where they run: on the connection's turn (its poller, or a worker of the runtime's
/// [`Dispatch::Pool`](crate::Dispatch::Pool)), so callbacks of one engine do not run
/// at the same time, except `on_message` with
/// [`workers(n)`](super::EngineBuilder::workers) above 1, which runs on the client's
/// message workers, up to `n` at once. A callback that blocks holds up its engine (and,
/// with inline dispatch, its poller); [`Engine::stop`](super::Engine::stop) still
/// returns at its timeout.
///
/// Each callback can end the session: [`Session::restart`] or [`Session::exit`].
pub trait EngineHandler: Send + Sync + 'static {
    /// A session opened (the handshake succeeded); `restart` is `false` for the first
    /// one. Runs before any message of the session and before messages buffered while
    /// offline are flushed (what it sends goes first).
    fn on_open(&self, session: &mut Session<'_>, restart: bool) {
        let _ = (session, restart);
    }

    /// A message arrived.
    fn on_message(&self, session: &mut Session<'_>, msg: Message);

    /// Reading failed: the server broke the protocol, went silent (pong timeout) or the
    /// connection broke. The session is over; the engine restarts unless this (or
    /// anything else) asks it to exit.
    fn on_read_error(&self, session: &mut Session<'_>, error: &EngineError) {
        let _ = (session, error);
    }

    /// The session is ending, exactly once per opened session. When this side closes
    /// (a stop, a restart or exit asked for), the code and reason returned go in its
    /// Close frame; otherwise they are not used.
    fn on_close(&self, session: &mut Session<'_>, ending: &Ending) -> (u16, String) {
        let _ = (session, ending);
        (crate::ws::close::NORMAL, String::new())
    }

    /// A restart attempt failed (`attempt` failures in a row). The next attempt comes
    /// after the backoff's delay unless this asks to exit or the cap is reached.
    fn on_restart_error(&self, session: &mut Session<'_>, error: &EngineError, attempt: u32) {
        let _ = (session, error, attempt);
    }
}

/// What a callback can do: send on this session, ask for a restart or an exit.
pub struct Session<'a> {
    pub(crate) core: &'a Arc<Core>,
    pub(crate) id: u64,
    /// The connection's turn: sends go straight into its output.
    pub(crate) live: Option<(&'a mut Conn, &'a mut Proto)>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("on_connection_turn", &self.live.is_some())
            .finish()
    }
}

impl Session<'_> {
    /// The session's id: a new one for every connection the engine opens.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends a message, as [`EngineHandle::send`] does; on the connection's own turn it
    /// is written to the output directly.
    ///
    /// # Errors
    /// As [`EngineHandle::send`].
    pub fn send(&mut self, msg: impl Into<Message>) -> Result<(), SendError> {
        let msg = msg.into();
        match &mut self.live {
            Some((conn, proto)) if proto.is_open() && !self.core.is_stopping() => {
                proto.send(conn, &msg);
                self.core.count_out(1);
                Ok(())
            }
            _ => self.core.send(msg),
        }
    }

    /// Sends a text message (copied).
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send(Message::from(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: Bytes) -> Result<(), SendError> {
        self.send(Message::Binary(data))
    }

    /// Ends this session and starts a new one (through the backoff's first delay).
    pub fn restart(&mut self) {
        self.core.ask(self.id, Ask::Restart);
    }

    /// Ends this session and stops the engine.
    pub fn exit(&mut self) {
        self.core.ask(self.id, Ask::Exit);
    }

    /// A handle to the engine, for other threads.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle::new(self.core.clone())
    }

    /// The subprotocol the server chose, on the connection's turn (`None` elsewhere or
    /// if none was chosen).
    pub fn subprotocol(&self) -> Option<&str> {
        self.live.as_ref().and_then(|(_, p)| p.subprotocol())
    }
}

type OpenFn = dyn Fn(&mut Session<'_>, bool) + Send + Sync;
type MessageFn = dyn Fn(&mut Session<'_>, Message) + Send + Sync;
type ErrorFn = dyn Fn(&mut Session<'_>, &EngineError) + Send + Sync;
type CloseFn = dyn Fn(&mut Session<'_>, &Ending) -> (u16, String) + Send + Sync;
type RestartErrorFn = dyn Fn(&mut Session<'_>, &EngineError, u32) + Send + Sync;

/// The callbacks given to the builder as closures.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) open: Option<Box<OpenFn>>,
    pub(crate) message: Option<Box<MessageFn>>,
    pub(crate) read_error: Option<Box<ErrorFn>>,
    pub(crate) close: Option<Box<CloseFn>>,
    pub(crate) restart_error: Option<Box<RestartErrorFn>>,
}

impl EngineHandler for Callbacks {
    fn on_open(&self, session: &mut Session<'_>, restart: bool) {
        if let Some(f) = &self.open {
            f(session, restart)
        }
    }

    fn on_message(&self, session: &mut Session<'_>, msg: Message) {
        if let Some(f) = &self.message {
            f(session, msg)
        }
    }

    fn on_read_error(&self, session: &mut Session<'_>, error: &EngineError) {
        if let Some(f) = &self.read_error {
            f(session, error)
        }
    }

    fn on_close(&self, session: &mut Session<'_>, ending: &Ending) -> (u16, String) {
        match &self.close {
            Some(f) => f(session, ending),
            None => (crate::ws::close::NORMAL, String::new()),
        }
    }

    fn on_restart_error(&self, session: &mut Session<'_>, error: &EngineError, attempt: u32) {
        if let Some(f) = &self.restart_error {
            f(session, error, attempt)
        }
    }
}
