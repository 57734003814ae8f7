//! A connection's life on its poller: adoption, reads, writes, dispatch decisions and
//! closing. [`Poller::settle`] is the one place that decides what a connection does next
//! after anything happened to it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;

use super::{Adopt, Mode, Poller};
use crate::conn::ConnShared;
use crate::dispatch::{self, Call, Job, JobKind};
use crate::driver::{Event, Interest, Token, TokenKind, GENERATION_BITS};
use crate::session::{Factory, Session};
use crate::stats::{bump, shift};
use crate::{sys, CloseReason, Conn, ConnHandle};

/// Smallest read worth a system call; below this much spare room the buffer grows.
const MIN_READ: usize = 4096;

/// A connection in a poller's slab.
pub(crate) struct Slot {
    pub(super) generation: u32,
    pub(super) fd: OwnedFd,
    pub(super) shared: Arc<ConnShared>,
    factory: Arc<dyn Factory>,
    /// `None` while a worker runs the handler.
    pub(super) session: Option<Box<dyn Session>>,
    /// Bytes read while the session is away.
    incoming: BytesMut,
    /// Input the session took with it when it went to a worker (an upper bound while
    /// it is away: handlers only consume).
    away_input: usize,
    interest: Interest,
    registered: bool,
    /// Reads are limited to one buffer per turn (see `Driver::limit_reads`).
    reads_limited: bool,
    /// on_connect has returned (the handler may be called for requests).
    pub(super) connected: bool,
    peer_closed: bool,
    /// Close with this reason as soon as the session is home.
    pub(super) pending_close: Option<CloseReason>,
    /// Busy when the drain began: counts as drained when it finishes.
    pub(super) busy_at_drain: bool,
    /// The session is away and the poller has news for it: counted in
    /// `Remote::awaited` so its completion wakes the poller.
    awaited: bool,
    /// Reading is paused at the input high-water mark until the low-water mark.
    paused: bool,
    /// The write side has been shut down (`Conn::shutdown_write`).
    write_shut: bool,
    /// Buffered bytes last added to the poller's gauges.
    reported_in: usize,
    reported_out: usize,
    pub(super) timers: super::timeouts::SlotTimers,
}

impl Slot {
    pub(super) fn is_idle(&mut self) -> bool {
        match self.session.as_mut() {
            Some(s) => s.conn().output.is_empty(),
            None => false,
        }
    }
}

impl Poller {
    /// Takes ownership of a new connection, registers it and runs `on_connect`.
    pub(super) fn adopt(&mut self, a: Adopt) {
        let entry = self.slab.vacant_entry();
        let index = entry.key();
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & ((1 << GENERATION_BITS) - 1);
        let token = Token::conn(index, generation);
        let shared = a.shared;
        shared.set_token(token);
        let span = tracing::info_span!("conn", id = shared.id, peer = %shared.peer, poller = shared.poller);
        let interest = Interest {
            read: true,
            write: false,
        };
        if let Err(e) = self.driver.add(a.fd.as_raw_fd(), token, interest) {
            tracing::warn!(parent: &span, error = %e, "cannot register connection");
            self.remote.assigned.fetch_sub(1, Ordering::Relaxed);
            shared.mark_closed();
            return;
        }
        let mut conn = Conn::new(
            a.fd.as_raw_fd(),
            shared.clone(),
            span.clone(),
            self.config.timeouts,
        );
        conn.output.driver_sends = self.ring_sends;
        self.pool.provision_tail(&mut conn.output);
        let session = a.factory.session(conn);
        entry.insert(Slot {
            generation,
            fd: a.fd,
            shared,
            factory: a.factory,
            session: None,
            incoming: BytesMut::new(),
            away_input: 0,
            interest,
            registered: true,
            reads_limited: false,
            connected: false,
            peer_closed: false,
            pending_close: None,
            busy_at_drain: false,
            awaited: false,
            paused: false,
            write_shut: false,
            reported_in: 0,
            reported_out: 0,
            timers: super::timeouts::SlotTimers::new(self.now),
        });
        bump(&self.remote.counters.adopted, 1);
        self.remote
            .counters
            .active
            .store(self.slab.len() as u64, Ordering::Relaxed);
        tracing::debug!(parent: &span, "connection open");
        self.run_session(index, token, session, Call::Connect);
    }

    /// Runs the handler for a session that is home: inline, or by sending it to a
    /// worker.
    fn run_session(
        &mut self,
        index: usize,
        token: Token,
        mut session: Box<dyn Session>,
        call: Call,
    ) {
        match self.mode {
            Mode::Inline => {
                let panicked = dispatch::run(&mut session, call);
                self.session_returned(token, session, panicked);
            }
            Mode::Pool { .. } => {
                // If the poller already knows something the session must come back for
                // (the peer hung up, a close is pending), its completion must wake it.
                // If the poller needs the session back to make progress (the peer hung up,
                // a close is pending, reading is paused until the handler consumes), its
                // completion must wake it.
                let slot = &self.slab[index];
                if slot.peer_closed || slot.pending_close.is_some() || slot.paused {
                    self.await_session(index);
                }
                // The completion may come back without waking this poller; a connection
                // with deadlines keeps a wheel entry so they are checked meanwhile.
                let conn = session.conn();
                self.slab[index].away_input = conn.input.len();
                let watched = conn.timeouts != crate::conn::Timeouts::default()
                    || conn.timer_request.is_some()
                    || self.slab[index].timers.has_user_deadline();
                if watched {
                    self.recheck_later(index);
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
        }
    }

    /// A session is home after running its handler.
    pub(super) fn session_returned(
        &mut self,
        token: Token,
        session: Box<dyn Session>,
        panicked: bool,
    ) {
        let TokenKind::Conn { index, .. } = token.kind() else {
            return;
        };
        let Some(slot) = self.slab.get_mut(index) else {
            return;
        };
        slot.session = Some(session);
        slot.connected = true;
        if std::mem::take(&mut slot.awaited) {
            self.remote.awaited.fetch_sub(1, Ordering::SeqCst);
        }
        if panicked {
            bump(&self.remote.counters.panics, 1);
            slot.pending_close = Some(CloseReason::Panic);
        }
        self.settle(index);
    }

    /// Readiness or a completion on a connection's socket.
    pub(super) fn conn_event(&mut self, index: usize, event: Event) {
        if let Some(res) = event.sent {
            return self.on_sent(index, res);
        }
        if event.error {
            let err = match event.os_error {
                0 => sys::take_socket_error(self.slab[index].fd.as_raw_fd()),
                errno => io::Error::from_raw_os_error(errno),
            };
            self.peer_gone(index, Some(err.kind()));
            return;
        }
        // A completion backend has already taken the bytes out of the socket, so they
        // are appended even if reading was paused since; epoll's readiness is only
        // acted on while reading is wanted.
        if event.readable && (self.slab[index].interest.read || self.driver.received()) {
            self.on_readable(index);
        } else if event.hangup {
            self.peer_gone(index, None);
            return;
        }
        if event.writable && self.slab.contains(index) {
            self.on_writable(index);
        }
    }

    fn on_readable(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        let fd = slot.fd.as_raw_fd();
        let (buf, want) = match slot.session.as_mut() {
            Some(session) => {
                let input = &mut session.conn().input;
                let want = input.want.saturating_sub(input.len());
                (&mut input.buf, want)
            }
            None => (&mut slot.incoming, 0),
        };
        self.pool.ensure_spare(buf, MIN_READ.max(want));
        match self.driver.receive(fd, buf) {
            Ok(0) => self.peer_gone(index, None),
            Ok(n) => {
                bump(&self.remote.counters.bytes_in, n as u64);
                slot.timers.last_activity = self.now;
                if let Some(session) = slot.session.as_mut() {
                    session.conn().input.appended();
                    self.settle(index);
                } else {
                    self.await_session(index);
                    self.report_buffers(index);
                    // Backpressure applies while the handler is away too.
                    self.update_interest(index);
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.peer_gone(index, Some(e.kind())),
        }
    }

    /// The driver's send of this connection's output finished: `res` bytes went out,
    /// or it failed with `-res`.
    fn on_sent(&mut self, index: usize, res: i32) {
        let slot = &mut self.slab[index];
        if let Some(session) = slot.session.as_mut() {
            let out = &mut session.conn().output;
            if res >= 0 {
                out.ring_sent(res as usize);
            } else {
                out.ring_send = false;
                out.error = Some(io::Error::from_raw_os_error(-res).kind());
            }
            self.settle(index);
        }
    }

    fn on_writable(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        if let Some(session) = slot.session.as_mut() {
            let _ = session.conn().output.flush();
            self.settle(index);
        }
    }

    /// Marks an away session as awaited: its completion must wake this poller.
    fn await_session(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        if slot.session.is_none() && !slot.awaited {
            slot.awaited = true;
            self.remote.awaited.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The peer hung up (end-of-file, reset or error).
    pub(super) fn peer_gone(&mut self, index: usize, error: Option<io::ErrorKind>) {
        self.await_session(index);
        let slot = &mut self.slab[index];
        if let Some(kind) = error {
            slot.pending_close.get_or_insert(CloseReason::Error(kind));
        }
        if !slot.peer_closed {
            slot.peer_closed = true;
            slot.shared.active.store(false, Ordering::Release);
            let handle = ConnHandle::new(slot.shared.clone());
            let factory = slot.factory.clone();
            let _entered = slot.shared_span();
            if catch_unwind(AssertUnwindSafe(|| factory.disconnected(&handle))).is_err() {
                bump(&self.remote.counters.panics, 1);
            }
        }
        self.update_interest(index);
        self.settle(index);
    }

    /// Cross-thread sends or a close request are waiting.
    pub(super) fn notified(&mut self, shared: Arc<ConnShared>) {
        shared.clear_notified();
        let TokenKind::Conn { index, generation } = shared.token().kind() else {
            return;
        };
        match self.slab.get(index) {
            Some(slot) if slot.generation == generation => {
                self.await_session(index);
                self.settle(index);
            }
            _ => {}
        }
    }

    /// Decides what a connection does next. Does nothing while its handler is away.
    pub(super) fn settle(&mut self, index: usize) {
        loop {
            let now = self.now;
            let Some(slot) = self.slab.get_mut(index) else {
                return;
            };
            let Some(session) = slot.session.as_mut() else {
                return;
            };
            let conn = session.conn();
            if !slot.incoming.is_empty() {
                conn.input.absorb(&mut slot.incoming);
            }
            if slot.incoming.capacity() > 0 {
                self.pool.put(&mut slot.incoming);
            }
            conn.take_outbox();
            if !conn.output.is_empty() {
                if self.ring_sends {
                    // One send in flight at a time; its completion settles again.
                    let token = Token::conn(index, slot.generation);
                    self.driver.send(token, &mut conn.output);
                } else {
                    let _ = conn.output.flush();
                }
            }
            let counters = &self.remote.counters;
            let sent = std::mem::take(&mut conn.output.sent);
            if sent > 0 {
                bump(&counters.bytes_out, sent);
                slot.timers.wrote(now);
            }
            bump(&counters.handler_calls, std::mem::take(&mut conn.calls));
            if let Some(reason) = slot.pending_close {
                return self.finalize(index, reason);
            }
            if let Some(kind) = conn.output.error {
                return self.finalize(index, CloseReason::Error(kind));
            }
            let output_pending = !conn.output.is_empty();
            let run = if conn.close_requested {
                if !output_pending {
                    return self.finalize(index, CloseReason::Local);
                }
                None
            } else if self.draining.is_some() {
                if !output_pending {
                    return self.finalize(index, CloseReason::Shutdown);
                }
                None
            } else if slot.connected && std::mem::take(&mut slot.timers.user_due) {
                Some(Call::Timer)
            } else if slot.connected
                && conn.input.ready()
                && conn.output.len() < self.config.output_high_water
            {
                // Above the output mark no new request runs: its reply would only queue
                // up. Input then fills to its own mark and reading stops, so a peer that
                // sends without reading is held to both marks.
                Some(Call::Requests)
            } else if slot.peer_closed && !output_pending {
                return self.finalize(index, CloseReason::PeerClosed);
            } else {
                None
            };
            if let Some(call) = run {
                self.pool.provision_tail(&mut conn.output);
                let token = Token::conn(index, slot.generation);
                let mut session = slot.session.take().expect("checked above");
                match self.mode {
                    Mode::Inline => {
                        let panicked = dispatch::run(&mut session, call);
                        let slot = &mut self.slab[index];
                        slot.session = Some(session);
                        if panicked {
                            bump(&self.remote.counters.panics, 1);
                            slot.pending_close = Some(CloseReason::Panic);
                        }
                        continue;
                    }
                    Mode::Pool { .. } => return self.run_session(index, token, session, call),
                }
            }
            if conn.shutdown_write && !output_pending {
                conn.shutdown_write = false;
                if !slot.write_shut {
                    slot.write_shut = true;
                    sys::shutdown_write(slot.fd.as_raw_fd());
                }
            }
            // Nothing to run: give back buffers an idle connection does not need. The
            // input buffer waits for the output to be sent, as replies may share it
            // (`Input::next`): returned earlier it could not be reused, only dropped.
            if conn.input.is_empty() && conn.output.is_empty() && conn.input.buf.capacity() > 0 {
                self.pool.put(&mut conn.input.buf);
            }
            if conn.output.is_empty() && conn.output.tail.capacity() > 0 {
                self.pool.put(&mut conn.output.tail);
            }
            slot.shared.publish_output_pending(conn.output.len());
            self.report_buffers(index);
            self.update_interest(index);
            self.rearm(index);
            return;
        }
    }

    /// Updates the poller's buffered-bytes gauges with this connection's current figures.
    fn report_buffers(&mut self, index: usize) {
        let slot = &mut self.slab[index];
        let (input, output) = match slot.session.as_mut() {
            Some(s) => {
                let conn = s.conn();
                (conn.input.len(), conn.output.len())
            }
            // Away: the output is the worker's business until it returns.
            None => (slot.away_input, slot.reported_out),
        };
        let input = input + slot.incoming.len();
        let counters = &self.remote.counters;
        shift(&counters.buffered_input, slot.reported_in, input);
        shift(&counters.buffered_output, slot.reported_out, output);
        slot.reported_in = input;
        slot.reported_out = output;
    }

    /// Brings the driver's interest for a connection in line with its state.
    pub(super) fn update_interest(&mut self, index: usize) {
        let draining = self.draining.is_some();
        // A driver that sends the output itself needs no writability reports.
        let ring_sends = self.ring_sends;
        let slot = &mut self.slab[index];
        let (high, low) = (self.config.input_high_water, self.config.input_low_water);
        let (buffered, limit, closing, write) = match slot.session.as_mut() {
            Some(session) => {
                let conn = session.conn();
                (
                    conn.input.len() + slot.incoming.len(),
                    // A declared frame larger than the mark must be able to arrive.
                    high.max(conn.input.want),
                    conn.close_requested,
                    !conn.output.is_empty(),
                )
            }
            None => (slot.away_input + slot.incoming.len(), high, false, false),
        };
        // Hysteresis: pause at the high-water mark, resume at the low-water mark.
        if slot.paused {
            // Resume at the low-water mark, or at once if a want() raised the limit past
            // what is buffered.
            if buffered <= low || (limit > high && buffered < limit) {
                slot.paused = false;
            }
        } else if buffered >= limit {
            slot.paused = true;
        }
        // Past the low-water mark (or away on a worker, where the poller cannot see
        // the handler consume) a connection reads one buffer per turn, so a completion
        // backend's receives cannot overshoot the input mark by a whole burst.
        let limited = buffered >= low || slot.session.is_none();
        if limited != slot.reads_limited {
            slot.reads_limited = limited;
            let token = Token::conn(index, slot.generation);
            self.driver.limit_reads(token, limited);
        }
        let slot = &mut self.slab[index];
        let read = !closing && !draining && !slot.paused;
        let wanted = Interest {
            read: read && !slot.peer_closed && slot.pending_close.is_none(),
            write: write && slot.pending_close.is_none() && !ring_sends,
        };
        if wanted == slot.interest && slot.registered {
            return;
        }
        if slot.paused {
            // Away, only the session's return can resume reading: make it wake us.
            self.await_session(index);
        }
        let slot = &mut self.slab[index];
        let fd = slot.fd.as_raw_fd();
        let token = Token::conn(index, slot.generation);
        if slot.peer_closed && !wanted.read && !wanted.write {
            // A hung-up socket stays readable/hung-up forever under level triggering:
            // stop watching it altogether until it is closed.
            if slot.registered {
                let _ = self.driver.delete(fd, token);
                slot.registered = false;
            }
        } else if slot.registered {
            let _ = self.driver.modify(fd, token, wanted);
        } else {
            let _ = self.driver.add(fd, token, wanted);
            slot.registered = true;
        }
        slot.interest = wanted;
    }

    /// Closes the socket and runs `on_close`. The session must be home.
    pub(super) fn finalize(&mut self, index: usize, reason: CloseReason) {
        let mut slot = self.slab.remove(index);
        let mut session = slot.session.take().expect("finalize with the session away");
        // Cancels what is pending on the socket; io_uring closes it once nothing can
        // touch it any more, epoll at once.
        self.driver
            .close(slot.fd, Token::conn(index, slot.generation));
        slot.shared.mark_closed();
        let conn = session.conn();
        bump(
            &self.remote.counters.bytes_out,
            std::mem::take(&mut conn.output.sent),
        );
        bump(
            &self.remote.counters.handler_calls,
            std::mem::take(&mut conn.calls),
        );
        self.pool.put(&mut conn.input.buf);
        self.pool.put(&mut slot.incoming);
        let counters = &self.remote.counters;
        shift(&counters.buffered_input, slot.reported_in, 0);
        shift(&counters.buffered_output, slot.reported_out, 0);
        tracing::debug!(parent: &conn.span, %reason, "connection closed");
        let counters = &self.remote.counters;
        bump(&counters.closed[reason.slot()], 1);
        counters
            .active
            .store(self.slab.len() as u64, Ordering::Relaxed);
        self.remote.assigned.fetch_sub(1, Ordering::Relaxed);
        if let Some(d) = self.draining.as_mut() {
            if slot.busy_at_drain && reason != CloseReason::ShutdownForced {
                d.report.drained += 1;
            }
        }
        if !slot.connected {
            // on_connect never returned: there is no state for on_close.
            return;
        }
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

impl Slot {
    /// Enters the connection's tracing span for callbacks run by the poller.
    fn shared_span(&mut self) -> Option<tracing::span::EnteredSpan> {
        self.session
            .as_mut()
            .map(|s| s.conn().span.clone().entered())
    }
}
