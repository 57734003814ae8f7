//! Type erasure between the generic [`Handler`] API and the non-generic poller, and the
//! protocol switch.
//!
//! A poller owns connections driven by different handler types (a server's accepted
//! connections, dialed ones, connections switched to another protocol) side by side. It
//! stores each as a boxed [`Session`]: the [`Conn`] as a plain field (the poller touches
//! it on every turn, so reaching it costs no virtual call) and the handler with its
//! per-connection state behind a `dyn` [`Behaviour`] (one virtual call per callback). The
//! box moves, not shared, to a worker and back in Pool mode. A protocol switch replaces
//! the behaviour in place; the `Conn` stays where it is.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::{CloseReason, Conn, ConnHandle, ConnInfo, Handler, TimerKey};

/// A connection together with the handler driving it and its state.
pub(crate) struct Session {
    pub(crate) conn: Conn,
    behaviour: Box<dyn Behaviour>,
}

impl Session {
    /// Runs `on_connect` and keeps the state it returns.
    pub(crate) fn connect(&mut self) {
        self.behaviour.connect(&mut self.conn)
    }

    /// Runs one `on_request`.
    pub(crate) fn request(&mut self) {
        self.behaviour.request(&mut self.conn)
    }

    /// Runs `on_timer` for `key`.
    pub(crate) fn timer(&mut self, key: TimerKey) {
        self.behaviour.timer(&mut self.conn, key)
    }

    /// Runs `on_wake`.
    pub(crate) fn wake(&mut self) {
        self.behaviour.wake(&mut self.conn)
    }

    /// Runs `on_drain`.
    pub(crate) fn drain(&mut self) {
        self.behaviour.drain(&mut self.conn)
    }

    /// Runs `on_close` (if `on_connect` completed) and drops everything.
    /// Whether `on_connect` has run (the handler has state to close).
    pub(crate) fn opened(&self) -> bool {
        self.behaviour.opened()
    }

    pub(crate) fn close(self: Box<Self>, reason: CloseReason) {
        let Session { conn, behaviour } = *self;
        drop(conn);
        behaviour.close(reason);
    }

    /// Carries out the protocol switch the handler asked for ([`Conn::switch_to`]), if
    /// it did: the new handler's behaviour replaces the old one, whose state is dropped
    /// (without `on_close`). Returns whether it switched.
    pub(crate) fn switch(&mut self) -> bool {
        let Some(to) = self.conn.requests.switch.take() else {
            return false;
        };
        let old = std::mem::replace(&mut self.behaviour, to.into_behaviour());
        // A panic in the old state's drop must not take the connection with it.
        if catch_unwind(AssertUnwindSafe(move || drop(old))).is_err() {
            tracing::warn!("dropping the previous handler's state panicked");
        }
        true
    }

    /// The handler's connection-level callbacks, for the poller to run while the session
    /// may be away.
    pub(crate) fn hooks(&self) -> Arc<dyn Hooks> {
        self.behaviour.hooks()
    }
}

/// A handler and its per-connection state, type-erased.
pub(crate) trait Behaviour: Send {
    fn connect(&mut self, conn: &mut Conn);
    fn request(&mut self, conn: &mut Conn);
    fn timer(&mut self, conn: &mut Conn, key: TimerKey);
    fn wake(&mut self, conn: &mut Conn);
    fn drain(&mut self, conn: &mut Conn);
    fn close(self: Box<Self>, reason: CloseReason);
    fn opened(&self) -> bool;
    fn hooks(&self) -> Arc<dyn Hooks>;
}

/// The callbacks a poller runs for a connection without its session: admitting it,
/// creating its session, the peer hanging up, a dial failing. Every [`Handler`] is one.
pub(crate) trait Hooks: Send + Sync {
    fn prepare(&self, info: &ConnInfo) -> bool;
    fn session(self: Arc<Self>, conn: Conn) -> Box<Session>;
    fn disconnected(&self, handle: &ConnHandle);
    fn connect_failed(&self, handle: &ConnHandle, error: &io::Error);
}

impl<H: Handler> Hooks for H {
    fn prepare(&self, info: &ConnInfo) -> bool {
        self.on_prepare(info)
    }

    fn session(self: Arc<Self>, conn: Conn) -> Box<Session> {
        Box::new(Session {
            conn,
            behaviour: Box::new(Typed {
                handler: self,
                state: None,
            }),
        })
    }

    fn disconnected(&self, handle: &ConnHandle) {
        self.on_disconnect(handle)
    }

    fn connect_failed(&self, handle: &ConnHandle, error: &io::Error) {
        self.on_connect_failed(handle, error)
    }
}

/// The hooks of `handler`, type-erased.
pub(crate) fn hooks<H: Handler>(handler: H) -> Arc<dyn Hooks> {
    Arc::new(handler)
}

/// The behaviour of handler type `H`.
struct Typed<H: Handler> {
    handler: Arc<H>,
    /// `None` until on_connect returns (and forever if it panicked).
    state: Option<H::State>,
}

impl<H: Handler> Behaviour for Typed<H> {
    fn connect(&mut self, conn: &mut Conn) {
        self.state = Some(self.handler.on_connect(conn));
    }

    fn request(&mut self, conn: &mut Conn) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_request(state, conn);
        }
    }

    fn timer(&mut self, conn: &mut Conn, key: TimerKey) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_timer(state, conn, key);
        }
    }

    fn wake(&mut self, conn: &mut Conn) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_wake(state, conn);
        }
    }

    fn drain(&mut self, conn: &mut Conn) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_drain(state, conn);
        }
    }

    fn close(self: Box<Self>, reason: CloseReason) {
        let Typed { handler, state } = *self;
        if let Some(state) = state {
            handler.on_close(state, reason);
        }
    }

    fn opened(&self) -> bool {
        self.state.is_some()
    }

    fn hooks(&self) -> Arc<dyn Hooks> {
        self.handler.clone()
    }
}

/// A protocol switch asked for with [`Conn::switch_to`], waiting for the callback to
/// return.
pub(crate) trait Switch: Send {
    fn into_behaviour(self: Box<Self>) -> Box<dyn Behaviour>;
}

pub(crate) struct PendingSwitch<H: Handler> {
    pub(crate) handler: Arc<H>,
    pub(crate) state: H::State,
}

impl<H: Handler> Switch for PendingSwitch<H> {
    fn into_behaviour(self: Box<Self>) -> Box<dyn Behaviour> {
        let PendingSwitch { handler, state } = *self;
        Box::new(Typed {
            handler,
            state: Some(state),
        })
    }
}
