//! Type erasure between the generic [`Handler`] API and the non-generic poller.
//!
//! A poller can own connections driven by different handler types (a server's accepted
//! connections and outbound dialed ones side by side), so it stores each connection as
//! a `Box<dyn Session>`: the handler, its per-connection state and the [`Conn`] in one
//! allocation per connection, moved (not shared) to a worker and back in Pool mode.

use std::sync::Arc;

use crate::{CloseReason, Conn, ConnHandle, ConnInfo, Handler};

/// A connection together with the handler driving it and its state.
pub(crate) trait Session: Send {
    fn conn(&mut self) -> &mut Conn;
    /// Runs `on_connect` and keeps the state it returns.
    fn connect(&mut self);
    /// Runs one `on_request`.
    fn request(&mut self);
    /// Runs `on_timer`.
    fn timer(&mut self);
    /// Runs `on_close` (if `on_connect` completed) and drops everything.
    fn close(self: Box<Self>, reason: CloseReason);
}

/// Creates sessions for new connections of one handler.
pub(crate) trait Factory: Send + Sync {
    fn prepare(&self, info: &ConnInfo) -> bool;
    fn session(&self, conn: Conn) -> Box<dyn Session>;
    fn disconnected(&self, handle: &ConnHandle);
}

pub(crate) struct HandlerFactory<H>(Arc<H>);

impl<H: Handler> HandlerFactory<H> {
    /// The factory for `handler`, type-erased.
    pub(crate) fn shared(handler: H) -> Arc<dyn Factory> {
        Arc::new(HandlerFactory(Arc::new(handler)))
    }
}

impl<H: Handler> Factory for HandlerFactory<H> {
    fn prepare(&self, info: &ConnInfo) -> bool {
        self.0.on_prepare(info)
    }

    fn session(&self, conn: Conn) -> Box<dyn Session> {
        Box::new(TypedSession {
            handler: self.0.clone(),
            state: None,
            conn,
        })
    }

    fn disconnected(&self, handle: &ConnHandle) {
        self.0.on_disconnect(handle)
    }
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

    fn timer(&mut self) {
        if let Some(state) = self.state.as_mut() {
            self.handler.on_timer(state, &mut self.conn);
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
}
