//! Type erasure between the generic [`Handler`] API and the non-generic poller, and the
//! protocol switch.
//!
//! A poller owns connections driven by different handler types (a server's accepted
//! connections, dialed ones, connections switched to another protocol) side by side, so
//! it stores each as a `Box<dyn Session>`: the handler, its per-connection state and the
//! [`Conn`] in one allocation per connection, moved (not shared) to a worker and back in
//! Pool mode. A protocol switch replaces the box by one of the new handler's type, with
//! the same `Conn` inside.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::{CloseReason, Conn, ConnHandle, ConnInfo, Handler, TimerKey};

/// A connection together with the handler driving it and its state.
pub(crate) trait Session: Send {
    fn conn(&mut self) -> &mut Conn;
    /// Runs `on_connect` and keeps the state it returns.
    fn connect(&mut self);
    /// Runs one `on_request`.
    fn request(&mut self);
    /// Runs `on_timer` for `key`.
    fn timer(&mut self, key: TimerKey);
    /// Runs `on_wake`.
    fn wake(&mut self);
    /// Runs `on_drain`.
    fn drain(&mut self);
    /// Runs `on_close` (if `on_connect` completed) and drops everything.
    fn close(self: Box<Self>, reason: CloseReason);
    /// Carries out the protocol switch the handler asked for ([`Conn::switch_to`]): the
    /// `Conn` moves into a session of the new handler; this one's state is dropped.
    fn switch(self: Box<Self>) -> Box<dyn Session>;
    /// The handler's connection-level callbacks, for the poller to run while the session
    /// may be away.
    fn hooks(&self) -> Arc<dyn Hooks>;
}

/// The callbacks a poller runs for a connection without its session: admitting it,
/// creating its session, the peer hanging up, a dial failing. Every [`Handler`] is one.
pub(crate) trait Hooks: Send + Sync {
    fn prepare(&self, info: &ConnInfo) -> bool;
    fn session(self: Arc<Self>, conn: Conn) -> Box<dyn Session>;
    fn disconnected(&self, handle: &ConnHandle);
    fn connect_failed(&self, handle: &ConnHandle, error: &io::Error);
}

impl<H: Handler> Hooks for H {
    fn prepare(&self, info: &ConnInfo) -> bool {
        self.on_prepare(info)
    }

    fn session(self: Arc<Self>, conn: Conn) -> Box<dyn Session> {
        Box::new(TypedSession {
            handler: self,
            state: None,
            conn,
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

struct TypedSession<H: Handler> {
    handler: Arc<H>,
    /// `None` until on_connect returns (and forever if it panicked).
    state: Option<H::State>,
    conn: Conn,
}

impl<H: Handler> Session for TypedSession<H> {
    fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    fn connect(&mut self) {
        self.state = Some(self.handler.on_connect(&mut self.conn));
    }

    fn request(&mut self) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_request(state, &mut self.conn);
        }
    }

    fn timer(&mut self, key: TimerKey) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_timer(state, &mut self.conn, key);
        }
    }

    fn wake(&mut self) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_wake(state, &mut self.conn);
        }
    }

    fn drain(&mut self) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_drain(state, &mut self.conn);
        }
    }

    fn close(self: Box<Self>, reason: CloseReason) {
        let TypedSession {
            handler,
            state,
            conn,
        } = *self;
        drop(conn);
        if let Some(state) = state {
            handler.on_close(state, reason);
        }
    }

    fn switch(mut self: Box<Self>) -> Box<dyn Session> {
        let Some(to) = self.conn.requests.switch.take() else {
            return self;
        };
        let TypedSession { state, conn, .. } = *self;
        let new = to.into_session(conn);
        // The old protocol's state goes without on_close; a panic in its drop must not
        // leave the connection without a session.
        if catch_unwind(AssertUnwindSafe(move || drop(state))).is_err() {
            tracing::warn!("dropping the previous handler's state panicked");
        }
        new
    }

    fn hooks(&self) -> Arc<dyn Hooks> {
        self.handler.clone()
    }
}

/// A protocol switch asked for with [`Conn::switch_to`], waiting for the callback to
/// return.
pub(crate) trait Switch: Send {
    fn into_session(self: Box<Self>, conn: Conn) -> Box<dyn Session>;
}

pub(crate) struct PendingSwitch<H: Handler> {
    pub(crate) handler: Arc<H>,
    pub(crate) state: H::State,
}

impl<H: Handler> Switch for PendingSwitch<H> {
    fn into_session(self: Box<Self>, conn: Conn) -> Box<dyn Session> {
        let PendingSwitch { handler, state } = *self;
        Box::new(TypedSession {
            handler,
            state: Some(state),
            conn,
        })
    }
}

/// Holds a session's place while [`Session::switch`] builds its successor; never called.
pub(crate) struct Switching;

impl Session for Switching {
    fn conn(&mut self) -> &mut Conn {
        unreachable!("a session is switching")
    }
    fn connect(&mut self) {}
    fn request(&mut self) {}
    fn timer(&mut self, _: TimerKey) {}
    fn wake(&mut self) {}
    fn drain(&mut self) {}
    fn close(self: Box<Self>, _: CloseReason) {}
    fn switch(self: Box<Self>) -> Box<dyn Session> {
        self
    }
    fn hooks(&self) -> Arc<dyn Hooks> {
        unreachable!("a session is switching")
    }
}
