//! A connection's life on its poller: adoption, reads, sends, hand-backs, and
//! [`Poller::advance`], the one place that applies the transition table
//! ([`state::next`]) after anything happened to a connection.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::slot::{Away, Gauges, Holder, Reading, Sending, Slot};
use super::state::{self, Facts, Phase, Step};
use super::timeouts::SlotTimers;
use super::{Adopt, Config, Mode, Poller};
use crate::conn::{ConnShared, Link};
use crate::dispatch::{self, Call, Job, JobKind, Outcome};
use crate::driver::{Event, Interest, SendResult, Sent, Token, TokenKind};
use crate::session::{Hooks, Session};
use crate::stats::{bump, shift};
use crate::transport::Transport;
use crate::{Addr, CloseReason, Conn, ConnHandle};

/// Smallest read worth a system call; below this much spare room the buffer grows.
const MIN_READ: usize = 4096;

/// Displays a connection's peer in its tracing span (unknown while a dial resolves).
struct Peer<'a>(Option<&'a Addr>);

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("?"),
        }
    }
}

/// The tracing span of a connection.
pub(super) fn span_of(shared: &ConnShared) -> tracing::Span {
    tracing::info_span!("conn", id = shared.id, peer = %Peer(shared.peer()), poller = shared.poller)
}

impl Poller {
    /// The session and slot of a new connection (accepted or dialed), in its first
    /// phase. Returns the slot's index.
    pub(super) fn insert_slot(
        &mut self,
        fd: OwnedFd,
        shared: Arc<ConnShared>,
        hooks: Arc<dyn Hooks>,
        transport: Option<Box<dyn Transport>>,
        phase: Phase,
    ) -> usize {
        let generation = self.next_generation();
        let entry = self.slab.vacant_entry();
        let index = entry.key();
        shared.set_token(Token::conn(index, generation));
        let span = span_of(&shared);
        let link = Link::new(fd.as_raw_fd(), !self.driver.submits_sends(), transport);
        let mut conn = Conn::new(
            link,
            shared.clone(),
            span,
            self.config.timeouts,
            self.config.max_want,
            self.clock,
        );
        self.pool.provision_tail(&mut conn.output);
        let mut timers = SlotTimers::new(self.now);
        if phase == Phase::Handshaking && !conn.link.is_ready() {
            timers.phase_deadline = Some(self.now.after(self.config.handshake_timeout));
        }
        let session = hooks.clone().session(conn);
        entry.insert(Slot {
            generation,
            fd,
            shared,
            hooks,
            phase,
            holder: Holder::Home(session),
            reading: Reading::Open,
            sending: Sending::Idle,
            write_shut: false,
            backpressured: false,
            registered: None,
            reported: Gauges::default(),
            timers,
            dialing: None,
            dialed: phase == Phase::Connecting,
            fresh: false,
        });
        let counters = &self.remote.counters;
        bump(&counters.adopted, 1);
        counters
            .active
            .store(self.slab.len() as u64, Ordering::Relaxed);
        index
    }

    /// Takes ownership of an accepted connection, registers it and starts it.
    pub(super) fn adopt(&mut self, a: Adopt) {
        let raw = a.fd.as_raw_fd();
        let index = self.insert_slot(a.fd, a.shared, a.hooks, a.transport, Phase::Handshaking);
        let slot = &mut self.slab[index];
        let token = slot.token(index);
        if let Err(e) = self.driver.register(raw, token, Interest::READ) {
            tracing::warn!(error = %e, "cannot register connection");
            self.discard_slot(index);
            return;
        }
        slot.registered = Some(Interest::READ);
        slot.fresh = true;
        if let Some(s) = slot.session() {
            tracing::debug!(parent: &s.conn.span, "connection open");
        }
        if let Some(d) = self.draining.as_mut() {
            // Accepted just before the listeners closed (a hand-off from another poller,
            // or an accept completion that was already on its way): it ends drained or
            // forced like the connections that were busy when the drain began.
            d.busy += 1;
        }
        self.advance(index);
    }

    /// Removes a connection that never got going (no callback ran for it).
    fn discard_slot(&mut self, index: usize) {
        let slot = self.slab.remove(index);
        slot.shared.mark_closed(None);
        self.remote.assigned.fetch_sub(1, Ordering::Relaxed);
        self.remote
            .counters
            .active
            .store(self.slab.len() as u64, Ordering::Relaxed);
    }

    /// Readiness or a completion on a connection's socket.
    pub(super) fn conn_event(&mut self, index: usize, event: Event) {
        if let Some(result) = event.sent {
            return self.on_sent(index, result);
        }
        if self.slab[index].phase == Phase::Connecting {
            if event.writable || event.error || event.hangup {
                self.connect_done(index);
            }
            return;
        }
        if event.error {
            let fd = self.slab[index].fd.as_raw_fd();
            let err = self.driver.take_error(fd);
            return self.peer_gone(index, Some(err.kind()));
        }
        // Collected even if reading stopped since: a completion backend has already
        // taken the bytes out of the socket.
        if event.readable {
            self.on_readable(index);
        } else if event.hangup {
            return self.peer_gone(index, None);
        }
        if event.writable && self.slab.contains(index) {
            self.on_writable(index);
        }
    }

    fn on_readable(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        let fd = slot.fd.as_raw_fd();
        let high = self.config.input_high_water;
        // `room`: what may still be read before the input mark (as `update_interest`
        // counts it), so that a read ends at most one read buffer past it.
        let (buf, want, room) = match &mut slot.holder {
            Holder::Home(session) => {
                let conn = &mut session.conn;
                let (len, declared) = (conn.input.len(), conn.input.declared());
                let room = high.max(declared).saturating_sub(len);
                (
                    conn.link.read_buf(&mut conn.input),
                    declared.saturating_sub(len),
                    room,
                )
            }
            Holder::Away(away) => {
                let room = high.saturating_sub(away.input_taken + away.incoming.len());
                (&mut away.incoming, 0, room)
            }
        };
        self.pool.ensure_spare(buf, MIN_READ.max(want));
        // The buffer's spare room can be far larger than a read buffer (a grown buffer
        // doubles), and one read of all of it overshot the mark by that much.
        let max = room.saturating_add(self.config.read_buffer_size);
        match self.driver.receive(fd, buf, max) {
            Ok(0) => self.peer_gone(index, None),
            Ok(n) => {
                bump(&self.remote.counters.bytes_in, n as u64);
                slot.timers.last_activity = self.now;
                match &mut slot.holder {
                    Holder::Home(session) => {
                        let conn = &mut session.conn;
                        conn.link.received(&mut conn.input);
                        if conn.link.peer_closed() {
                            // The peer ended inside the transport (close_notify): what it
                            // sent before is delivered, then it is end-of-file.
                            self.peer_gone(index, None);
                        } else {
                            self.advance(index);
                        }
                    }
                    Holder::Away(_) => {
                        self.want_back(index);
                        self.report_buffers(index);
                        // Backpressure applies while the handler is away too.
                        self.update_interest(index);
                    }
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.peer_gone(index, Some(e.kind())),
        }
    }

    /// A send the driver had in flight finished.
    fn on_sent(&mut self, index: usize, result: SendResult) {
        let lent = self.driver.take_lent();
        let slot = &mut self.slab[index];
        slot.sending = Sending::Idle;
        if let Some(session) = slot.session() {
            let conn = &mut session.conn;
            let queue = conn.link.wire_queue(&mut conn.output);
            let sent = *result.as_ref().unwrap_or(&0);
            if lent.is_empty() {
                queue.advance(sent);
            } else if let Some(mut spare) = queue.take_back(lent, sent) {
                // Something was written since, into a tail of its own.
                self.pool.put(&mut spare);
            }
            if let Err(kind) = result {
                conn.link.write_error.get_or_insert(kind);
            }
            self.advance(index);
        }
    }

    fn on_writable(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        if slot.sending == Sending::AwaitingRoom {
            slot.sending = Sending::Idle;
        }
        if slot.is_home() {
            self.advance(index);
        }
    }

    /// Marks an away session as wanted back: its hand-back must wake this poller.
    pub(super) fn want_back(&mut self, index: usize) {
        if let Holder::Away(away) = &mut self.slab[index].holder {
            if !away.wanted_back {
                away.wanted_back = true;
                self.remote.doorbell.want_back();
            }
        }
    }

    /// The peer hung up (end-of-file, reset or error).
    pub(super) fn peer_gone(&mut self, index: usize, error: Option<io::ErrorKind>) {
        self.want_back(index);
        let slot = &mut self.slab[index];
        if let Some(kind) = error {
            slot.phase = slot.phase.abort(CloseReason::Error(kind));
        }
        if slot.reading != Reading::Ended {
            slot.reading = Reading::Ended;
            slot.shared.mark_peer_gone();
            if slot.shared.is_open() {
                let handle = ConnHandle::new(slot.shared.clone());
                let hooks = slot.hooks.clone();
                let _entered = slot.span();
                if catch_unwind(AssertUnwindSafe(|| hooks.disconnected(&handle))).is_err() {
                    bump(&self.remote.counters.panics, 1);
                }
            }
        }
        self.update_interest(index);
        self.advance(index);
    }

    /// Something is waiting for this connection: sends, a wake or a close request.
    pub(super) fn notified(&mut self, shared: Arc<ConnShared>) {
        shared.clear_notified();
        let TokenKind::Conn { index, generation } = shared.token().kind() else {
            return;
        };
        if self.slab.get(index).map(|s| s.generation) == Some(generation) {
            self.want_back(index);
            self.advance(index);
        }
    }

    /// A worker handed a session back.
    pub(super) fn session_returned(
        &mut self,
        token: Token,
        session: Box<Session>,
        outcome: Outcome,
    ) {
        let TokenKind::Conn { index, .. } = token.kind() else {
            return;
        };
        let Some(slot) = self.slab.get_mut(index) else {
            return;
        };
        let Holder::Away(away) = std::mem::replace(&mut slot.holder, Holder::Home(session)) else {
            unreachable!("a session came back to a slot whose session is home");
        };
        let Away {
            mut incoming,
            wanted_back,
            watched,
            ..
        } = away;
        if wanted_back {
            self.remote.doorbell.got_back();
        }
        if watched {
            self.away_watched -= 1;
        }
        if let Some(session) = slot.session() {
            let conn = &mut session.conn;
            conn.link.absorb(&mut conn.input, &mut incoming);
        }
        let transport_ended = slot.session().is_some_and(|s| s.conn.link.peer_closed());
        if incoming.capacity() > 0 {
            self.pool.put(&mut incoming);
        }
        self.apply_outcome(index, outcome);
        if transport_ended && self.slab[index].reading != Reading::Ended {
            self.peer_gone(index, None);
        } else {
            self.advance(index);
        }
    }

    /// What a finished run means for the slot.
    fn apply_outcome(&mut self, index: usize, outcome: Outcome) {
        self.slab[index].apply(outcome, &self.remote.counters);
    }

    /// Applies the transition table until the connection waits (or closes, or its
    /// handler goes to a worker), sending what it queued on the way. Does nothing while
    /// its handler is away.
    ///
    /// This runs after everything that happens to a connection, so it touches the slot
    /// through one lookup per step and calls nothing virtual but the handler.
    pub(super) fn advance(&mut self, index: usize) {
        loop {
            let Some(slot) = self.slab.get_mut(index) else {
                return;
            };
            let Holder::Home(session) = &mut slot.holder else {
                return;
            };
            let conn = &mut session.conn;
            conn.take_outbox();
            // `pending` (inlined) first: `wire` is a call, and most steps have nothing
            // to send; with nothing pending it would neither encode nor send anything.
            if slot.sending == Sending::Idle
                && slot.phase.writes()
                && conn.link.pending(&conn.output) > 0
            {
                let wire = conn.link.wire(&mut conn.output);
                if !wire.is_empty() {
                    let token = Token::conn(index, slot.generation);
                    let result = self.driver.send(slot.fd.as_raw_fd(), token, wire);
                    let left = !wire.is_empty();
                    match result {
                        Ok(Sent::Now(_)) if left => slot.sending = Sending::AwaitingRoom,
                        Ok(Sent::Now(_)) => {}
                        Ok(Sent::InFlight) => slot.sending = Sending::InFlight,
                        Err(e) => conn.link.write_error = Some(e.kind()),
                    }
                }
            }
            let counters = &self.remote.counters;
            let sent = conn.link.take_sent(&mut conn.output);
            if sent > 0 {
                bump(&counters.bytes_out, sent);
                slot.timers.wrote(self.now);
                slot.fresh = false;
            }
            bump(&counters.handler_calls, std::mem::take(&mut conn.calls));
            let drains = Poller::drains(&self.draining, slot);
            let facts = facts_of(slot, &self.config, drains);
            match state::next(slot.phase, &facts) {
                Step::Wait => break,
                Step::Become(phase) => slot.enter(phase),
                Step::ShutWrite => slot.shut_write(),
                Step::Run(call) => {
                    slot.claim(call);
                    let Holder::Home(session) = &mut slot.holder else {
                        unreachable!("checked above");
                    };
                    // A reply written into the tail starts in a pooled buffer.
                    self.pool.provision_tail(&mut session.conn.output);
                    session.conn.set_now(self.now);
                    if let Mode::Pool { .. } = self.mode {
                        return self.send_away(index, call);
                    }
                    let outcome = dispatch::run(session, call, false);
                    slot.apply(outcome, &self.remote.counters);
                }
                Step::Close(reason) => return self.close_slot(index, reason),
                Step::Abandon => {
                    let e = io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "closed before it connected",
                    );
                    return self.fail_dial(index, e);
                }
            }
        }
        self.rest(index);
    }

    /// Sends a home session to a worker to run `call`.
    fn send_away(&mut self, index: usize, call: Call) {
        let slot = &mut self.slab[index];
        let token = slot.token(index);
        let Holder::Home(mut session) =
            std::mem::replace(&mut slot.holder, Holder::Away(Away::default()))
        else {
            unreachable!("sending away a session that is away");
        };
        let conn = &mut session.conn;
        let watched = conn.timeouts != crate::conn::Timeouts::default()
            || !conn.requests.timers.is_empty()
            || slot.timers.has_deadlines();
        if let Holder::Away(away) = &mut slot.holder {
            away.input_taken = conn.input.len();
            // The hand-back may come without waking this poller; while a session with
            // deadlines is away, the poller's wait is bounded so they are checked soon
            // after it returns.
            away.watched = watched;
        }
        if watched {
            self.away_watched += 1;
        }
        // If the poller already needs the session back to make progress (the peer hung
        // up, a close is decided, reading is paused until the handler consumes), its
        // hand-back must wake it.
        if slot.reading != Reading::Open || matches!(slot.phase, Phase::Closing(_)) {
            self.want_back(index);
        }
        self.dispatch_job(Job {
            poller: self.remote.index,
            kind: JobKind::Serve {
                token,
                session,
                call,
            },
        });
    }

    /// Nothing more to do for now: give back buffers an idle connection does not need,
    /// publish its figures, and bring the driver's interest and the timers in line.
    fn rest(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        let settled = slot.reported.is_zero() && slot.reading_settled(self.draining.is_some());
        if let Holder::Home(session) = &mut slot.holder {
            let conn = &mut session.conn;
            let pending = conn.link.pending(&conn.output);
            // The input buffer waits for the output to be sent, as replies may share it
            // (`Input::next`): returned earlier it could not be reused, only dropped.
            if conn.input.is_empty() && pending == 0 && conn.input.buf.capacity() > 0 {
                self.pool.put(&mut conn.input.buf);
            }
            if conn.output.is_empty() && conn.output.tail.capacity() > 0 {
                self.pool.put(&mut conn.output.tail);
            }
            if let Some(wire_in) = conn.link.idle_wire_in() {
                self.pool.put(wire_in);
            }
            if let Some(wire_out) = conn.link.idle_wire_out() {
                self.pool.put(wire_out);
            }
            slot.shared.publish_output_pending(pending);
            // The usual rest after a request: everything consumed and sent, and nothing
            // that decides the driver's interest or the deadlines changed. Only the
            // timeout windows close (what `rearm` would do here, without its call).
            if settled && pending == 0 && conn.input.is_empty() && slot.timers.settled(conn) {
                conn.input.progressed = false;
                slot.timers.close_windows();
                let limit = self.config.input_high_water.max(conn.input.declared());
                self.driver
                    .pace_reads(Token::conn(index, slot.generation), limit);
                return;
            }
        }
        self.report_buffers(index);
        self.update_interest(index);
        self.rearm(index);
    }

    /// Updates the poller's buffered-bytes gauges with this connection's current figures.
    pub(super) fn report_buffers(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        let (input, output) = match &mut slot.holder {
            Holder::Home(session) => {
                let conn = &mut session.conn;
                (conn.input.len(), conn.link.pending(&conn.output))
            }
            // Away: the output is the worker's business until it returns.
            Holder::Away(away) => (away.input_taken + away.incoming.len(), slot.reported.output),
        };
        let counters = &self.remote.counters;
        shift(&counters.buffered_input, slot.reported.input, input);
        shift(&counters.buffered_output, slot.reported.output, output);
        slot.reported = Gauges { input, output };
    }

    /// Brings the driver's interest for a connection in line with its state.
    pub(super) fn update_interest(&mut self, index: usize) {
        let (high, low) = (self.config.input_high_water, self.config.input_low_water);
        let slot = &mut self.slab[index];
        let draining = Poller::drains(&self.draining, slot);
        if slot.phase == Phase::Connecting {
            return;
        }
        let token = slot.token(index);
        let (buffered, limit) = match &mut slot.holder {
            // A declared frame larger than the mark must be able to arrive.
            Holder::Home(session) => {
                let input = &session.conn.input;
                (input.len(), high.max(input.declared()))
            }
            Holder::Away(a) => (a.input_taken + a.incoming.len(), high),
        };
        // Hysteresis: pause at the high-water mark, resume at the low-water mark, or at
        // once if a want() raised the limit past what is buffered.
        match slot.reading {
            Reading::Open if buffered >= limit => slot.reading = Reading::Paused,
            Reading::Paused if buffered <= low || (limit > high && buffered < limit) => {
                slot.reading = Reading::Open
            }
            _ => {}
        }
        // A completion backend's receives are kept to the room left under the mark, so
        // they cannot overshoot it by a whole burst (away on a worker, the poller cannot
        // see the handler consume: the input it took counts until it is back).
        self.driver
            .pace_reads(token, limit.saturating_sub(buffered));
        let wanted = Interest {
            read: slot.reading == Reading::Open && slot.phase.reads() && !draining,
            write: slot.sending == Sending::AwaitingRoom && slot.phase.writes(),
        };
        if slot.registered == Some(wanted) {
            return;
        }
        if slot.reading == Reading::Paused {
            // Away, only the session's return can resume reading: make it wake us.
            self.want_back(index);
        }
        let slot = &mut self.slab[index];
        let fd = slot.fd.as_raw_fd();
        if slot.reading == Reading::Ended && wanted == Interest::NONE {
            // A hung-up socket stays readable/hung-up forever under level triggering:
            // stop watching it altogether until it is closed.
            if slot.registered.take().is_some() {
                let _ = self.driver.deregister(fd, token);
            }
            return;
        }
        let result = if slot.registered.is_some() {
            self.driver.reregister(fd, token, wanted)
        } else {
            self.driver.register(fd, token, wanted)
        };
        if result.is_ok() {
            slot.registered = Some(wanted);
        }
    }

    /// Closes the socket and runs `on_close`. The session must be home.
    pub(super) fn close_slot(&mut self, index: usize, reason: CloseReason) {
        let slot = self.slab.remove(index);
        let token = slot.token(index);
        let Slot {
            fd,
            shared,
            holder,
            reported,
            dialed,
            hooks,
            ..
        } = slot;
        let Holder::Home(mut session) = holder else {
            unreachable!("closing a connection whose handler is away");
        };
        if dialed && !session.opened() {
            // Connected, but its transport's handshake never finished: to the handler
            // the dial failed.
            self.driver.close(fd, token);
            let conn = &mut session.conn;
            self.pool.put(&mut conn.input.buf);
            if let Some(wire_in) = conn.link.idle_wire_in() {
                self.pool.put(wire_in);
            }
            shift(&self.remote.counters.buffered_input, reported.input, 0);
            shift(&self.remote.counters.buffered_output, reported.output, 0);
            let why = shared
                .transport_error()
                .map_or_else(|| reason.to_string(), str::to_owned);
            let kind = match reason {
                CloseReason::Error(kind) => kind,
                CloseReason::HandshakeTimeout => io::ErrorKind::TimedOut,
                CloseReason::PeerClosed => io::ErrorKind::ConnectionReset,
                _ => io::ErrorKind::ConnectionAborted,
            };
            self.remote
                .counters
                .active
                .store(self.slab.len() as u64, Ordering::Relaxed);
            let span = session.conn.span.clone();
            let _entered = span.enter();
            return self.report_dial_failure(
                &shared,
                &hooks,
                io::Error::new(kind, format!("TLS or transport handshake: {why}")),
            );
        }
        // Cancels what is pending on the socket; io_uring closes it once nothing can
        // touch it any more, epoll at once.
        self.driver.close(fd, token);
        shared.mark_closed(None);
        let conn = &mut session.conn;
        let counters = &self.remote.counters;
        bump(&counters.bytes_out, conn.link.take_sent(&mut conn.output));
        bump(&counters.handler_calls, std::mem::take(&mut conn.calls));
        self.pool.put(&mut conn.input.buf);
        if let Some(wire_in) = conn.link.idle_wire_in() {
            self.pool.put(wire_in);
        }
        shift(&counters.buffered_input, reported.input, 0);
        shift(&counters.buffered_output, reported.output, 0);
        tracing::debug!(parent: &conn.span, %reason, "connection closed");
        bump(&counters.closed[reason.slot()], 1);
        // Room for a new connection first: whoever sees `active` drop can connect and be
        // admitted (the accept path checks `assigned`).
        self.remote.assigned.fetch_sub(1, Ordering::Relaxed);
        counters
            .active
            .store(self.slab.len() as u64, Ordering::Relaxed);
        match &mut self.mode {
            Mode::Inline => {
                if dispatch::close(session, reason) {
                    bump(&self.remote.counters.panics, 1);
                }
            }
            Mode::Pool { .. } => {
                let job = Job {
                    poller: self.remote.index,
                    kind: JobKind::Close { session, reason },
                };
                self.dispatch_job(job);
            }
        }
    }
}

/// The facts [`state::next`] decides on, for a home connection; also notes that the
/// output reached its mark (which makes `on_drain` owed once it falls back).
fn facts_of(slot: &mut Slot, config: &Config, server_draining: bool) -> Facts {
    let timer_due = slot.timers.first_due();
    let peer_closed = slot.reading == Reading::Ended;
    let shutdown_write = !slot.write_shut;
    let Holder::Home(session) = &mut slot.holder else {
        unreachable!("facts of an away connection");
    };
    let conn = &mut session.conn;
    if let Some(message) = conn.link.failure.take() {
        conn.shared.set_transport_error(message);
    }
    let asked = conn.shared.asked();
    if asked.drain {
        // A refused send's claim to `on_drain`: what other threads queued before the
        // refusal may have reached the outbox after this step took it. It joins the
        // output (and the count below) first, so `on_drain` does not say there is room
        // while it waits, and what `on_drain` writes goes out after it.
        conn.take_outbox();
    }
    let pending = conn.link.pending(&conn.output);
    if pending >= config.output_high_water {
        slot.backpressured = true;
    }
    Facts {
        write_error: conn.link.write_error,
        decode_error: conn.link.decode_error,
        transport_ready: conn.link.is_ready(),
        close_requested: asked.close,
        input_over_limit: conn.input.over_limit,
        server_draining,
        peer_closed,
        output_pending: pending > 0,
        output_over_mark: pending >= config.output_high_water,
        input_ready: conn.input.ready(),
        timer_due,
        wake_requested: asked.wake,
        drain_due: (slot.backpressured || asked.drain) && pending < config.output_high_water / 2,
        shutdown_write_requested: conn.requests.shutdown_write && shutdown_write,
    }
}
