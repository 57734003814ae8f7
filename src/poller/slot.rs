//! What a poller keeps per connection: the phase, and the facts only the poller owns.
//!
//! Everything the handler owns (its input, output, link and requests) is in the
//! [`Conn`](crate::Conn) inside the session; what other threads may touch is in
//! [`ConnShared`]. Each fact below is written by the poller only.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use bytes::BytesMut;

use super::dial::Dialing;
use super::state::Phase;
use super::timeouts::SlotTimers;
use crate::conn::ConnShared;
use crate::dispatch::{Call, Outcome};
use crate::driver::{Interest, Token};
use crate::session::{Hooks, Session};
use crate::stats::{bump, Counters};
use crate::{sys, CloseReason};

/// A connection in a poller's slab.
pub(crate) struct Slot {
    pub(super) generation: u32,
    pub(super) fd: OwnedFd,
    pub(super) shared: Arc<ConnShared>,
    /// The driving handler's connection-level callbacks (replaced by a protocol switch).
    pub(super) hooks: Arc<dyn Hooks>,
    pub(super) phase: Phase,
    /// Where the handler is.
    pub(super) holder: Holder,
    pub(super) reading: Reading,
    pub(super) sending: Sending,
    /// The write side has been shut down (`Conn::shutdown_write`).
    pub(super) write_shut: bool,
    /// The output reached its high-water mark (or a send was refused): `on_drain` is owed
    /// once it falls below half of it.
    pub(super) backpressured: bool,
    /// What the driver watches the socket for; `None` while it is not registered.
    pub(super) registered: Option<Interest>,
    /// Buffered bytes last added to the poller's gauges.
    pub(super) reported: Gauges,
    pub(super) timers: SlotTimers,
    /// A dial's progress, while `Connecting`.
    pub(super) dialing: Option<Box<Dialing>>,
    /// Made by a dial: one that closes before it opened (its transport's handshake
    /// failed) reports `on_connect_failed`, not `on_close`.
    pub(super) dialed: bool,
    /// Accepted and not sent a byte yet: a drain after a handover serves it rather than
    /// closing it as idle (see `ServerHandle::shutdown`).
    pub(super) fresh: bool,
}

/// Where a connection's handler is: in the slab, or on a worker.
pub(crate) enum Holder {
    Home(Box<Session>),
    Away(Away),
}

/// What the poller keeps for a connection while its handler runs on a worker.
#[derive(Default)]
pub(crate) struct Away {
    /// Bytes read meanwhile (wire bytes: the transport decodes them on return).
    pub(super) incoming: BytesMut,
    /// Input the session took with it (an upper bound while it is away: handlers only
    /// consume).
    pub(super) input_taken: usize,
    /// The poller has news for it: counted by the doorbell so its hand-back wakes the
    /// poller.
    pub(super) wanted_back: bool,
    /// The session has deadlines: counted in `Poller::away_watched`, which keeps the
    /// poller waking to take it back.
    pub(super) watched: bool,
}

/// The read side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    Open,
    /// Paused at the input high-water mark until the low-water mark.
    Paused,
    /// The peer hung up (end-of-file, reset or error); nothing more comes.
    Ended,
}

/// The write side's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sending {
    /// Nothing is waiting on the socket.
    Idle,
    /// The socket took part of the output; the rest waits for it to be writable.
    AwaitingRoom,
    /// A send submitted to the driver is in flight; its completion reports.
    InFlight,
}

/// Bytes a connection has buffered, as last reported to the poller's gauges.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Gauges {
    pub(super) input: usize,
    pub(super) output: usize,
}

impl Gauges {
    /// Nothing reported buffered either way.
    pub(super) fn is_zero(&self) -> bool {
        self.input == 0 && self.output == 0
    }
}

impl Slot {
    pub(super) fn token(&self, index: usize) -> Token {
        Token::conn(index, self.generation)
    }

    pub(super) fn is_home(&self) -> bool {
        matches!(self.holder, Holder::Home(_))
    }

    pub(super) fn session(&mut self) -> Option<&mut Box<Session>> {
        match &mut self.holder {
            Holder::Home(s) => Some(s),
            Holder::Away(_) => None,
        }
    }

    /// Whether [`update_interest`](super::Poller::update_interest) would leave this
    /// connection's interest as it is once it has nothing buffered: open and reading,
    /// nothing waiting for room, registered for reads alone, the server not draining.
    #[inline]
    pub(super) fn reading_settled(&self, server_draining: bool) -> bool {
        self.reading == Reading::Open
            && self.sending == Sending::Idle
            && self.registered == Some(Interest::READ)
            && self.phase == Phase::Open
            && !server_draining
    }

    /// Idle for a graceful shutdown: home, nothing left to send, no handler work under way.
    pub(super) fn is_idle(&mut self) -> bool {
        let connecting = self.phase == Phase::Connecting;
        match self.session() {
            Some(s) => {
                let conn = &mut s.conn;
                connecting || conn.link.pending(&conn.output) == 0
            }
            None => false,
        }
    }

    /// Moves the connection to `phase`, doing what entering it takes.
    pub(super) fn enter(&mut self, phase: Phase) {
        match phase {
            Phase::Opening => {
                self.timers.phase_deadline = None;
                self.shared.mark_open();
            }
            Phase::Draining(_) => {
                // A transport that rejected the peer's bytes has queued its own answer
                // (an alert); it says nothing more.
                if let Some(session) = self.session() {
                    let conn = &mut session.conn;
                    if conn.link.decode_error.is_none() {
                        conn.link.close_transport(&mut conn.output);
                    }
                }
            }
            _ => {}
        }
        self.phase = phase;
    }

    /// Shuts the socket's write side, once the transport's closing message (if it has
    /// one) has been sent.
    pub(super) fn shut_write(&mut self) {
        let fd = self.fd.as_raw_fd();
        let Holder::Home(session) = &mut self.holder else {
            return;
        };
        let conn = &mut session.conn;
        if conn.link.close_transport(&mut conn.output) {
            // Its closing message goes out first; the table comes back here after.
            return;
        }
        conn.requests.shutdown_write = false;
        if !self.write_shut {
            self.write_shut = true;
            sys::shutdown_write(fd);
        }
    }

    /// Takes what `call` is about to consume: the due timer, the wake, the drain.
    pub(super) fn claim(&mut self, call: Call) {
        match call {
            Call::Timer(key) => self.timers.take_due(key),
            Call::Wake => {
                self.shared.take_wake();
            }
            Call::Drain => {
                self.backpressured = false;
                self.shared.take_drain();
            }
            Call::Connect | Call::Requests => {}
        }
    }

    /// What a finished run means for the connection: a switch changes its hooks, a panic
    /// closes it, a returned `on_connect` opens it.
    pub(super) fn apply(&mut self, outcome: Outcome, counters: &Counters) {
        if outcome.switched {
            if let Some(session) = self.session() {
                self.hooks = session.hooks();
            }
        }
        if outcome.panicked {
            bump(&counters.panics, 1);
            self.phase = self.phase.abort(CloseReason::Panic);
        }
        if self.phase == Phase::Opening {
            self.phase = Phase::Open;
        }
    }

    /// Enters the connection's tracing span for callbacks the poller runs itself.
    pub(super) fn span(&mut self) -> Option<tracing::span::EnteredSpan> {
        self.session().map(|s| s.conn.span.clone().entered())
    }
}
