//! The per-core loop.
//!
//! A poller thread owns a driver (epoll or io_uring), a slab of connections, a buffer pool,
//! a timer wheel and, for some balance policies, listeners. Everything it owns is touched
//! by that thread only; other threads talk to it through its [`Remote`]: a command queue
//! (new connections, dials, notifications, fan-out, shutdown) and a hand-back queue
//! (sessions coming back from workers), behind a [`Doorbell`](doorbell::Doorbell) that
//! writes the waker only when the poller is asleep.
//!
//! The files:
//!
//! * `state.rs`: a connection's states and the transition table (pure, unit-tested);
//! * `slot.rs`: what the poller keeps per connection;
//! * `connection.rs`: adopting, reading, sending, and [`Poller::advance`], which applies
//!   the table after anything happened to a connection;
//! * `dial.rs`: outbound connections until they are connected;
//! * `accept.rs`, `fanout.rs`, `timeouts.rs`, `shutdown.rs`: what their names say;
//! * `doorbell.rs`: the cross-thread wake-up protocol.

mod accept;
mod connection;
mod dial;
mod doorbell;
mod fanout;
mod shutdown;
mod slot;
mod state;
mod timeouts;

pub use accept::Balance;
pub(crate) use accept::{Balancer, Listener};
pub(crate) use dial::Outbound;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{io, thread};

use bytes::Bytes;
use crossbeam_queue::{ArrayQueue, SegQueue};
use slab::Slab;

use crate::buf::BufPool;
use crate::clock::{Clock, Nanos};
use crate::conn::group::Shard;
use crate::conn::ConnShared;
use crate::dispatch::{Job, Outcome, WorkerPool};
use crate::driver::{Driver, Epoll, Event, Token, TokenKind, Uring, Waker};
use crate::session::Hooks;
use crate::stats::{bump, Counters};
use crate::timer::{Entry, TimerWheel};
use crate::transport::{ListenerTransports, Transport};
use crate::ShutdownReport;

use doorbell::{Doorbell, Ring};
use slot::Slot;

/// Settings every poller shares.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) read_buffer_size: usize,
    pub(crate) pooled_buffers: usize,
    pub(crate) input_high_water: usize,
    pub(crate) input_low_water: usize,
    pub(crate) output_high_water: usize,
    pub(crate) max_want: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) timeouts: crate::conn::Timeouts,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: Option<usize>,
    pub(crate) nodelay: bool,
    pub(crate) tcp_keepalive: Option<Duration>,
    /// Smallest io_uring send made zero-copy (`None`: never).
    pub(crate) zero_copy_send: Option<usize>,
    /// The transport of accepted connections (`None`: plain TCP).
    pub(crate) transport: Option<ListenerTransports>,
}

/// A connection handed to a poller to own: accepted by another poller.
pub(crate) struct Adopt {
    pub(crate) fd: OwnedFd,
    /// Created by whoever hands the connection over.
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) transport: Option<Box<dyn Transport>>,
}

/// Messages from other threads to a poller.
pub(crate) enum Command {
    Adopt(Adopt),
    /// Open an outbound connection.
    Dial(Outbound),
    /// Data, a wake or a close request is waiting for this connection.
    Notify(Arc<ConnShared>),
    /// Queue `data` on every member of `shard` (all of them on this poller).
    FanOut {
        shard: Arc<Shard>,
        data: Bytes,
    },
    /// Close the listeners and acknowledge.
    StopAccepting(Sender<()>),
    /// Close idle connections, let busy ones finish until `deadline`, then report
    /// and exit. With `keep_fresh` (after a handover) an accepted connection that has
    /// not been sent anything yet is busy, not idle: it is served its first reply.
    Drain {
        deadline: Instant,
        keep_fresh: bool,
        done: Sender<ShutdownReport>,
    },
}

/// A worker handing a session back to its poller after running its handler (or after
/// running `on_close`, when there is no session left).
pub(crate) enum Handback {
    Served {
        token: Token,
        session: Box<crate::session::Session>,
        outcome: Outcome,
    },
    Closed {
        panicked: bool,
    },
}

/// The half of a poller that other threads may touch.
pub(crate) struct Remote {
    pub(crate) index: usize,
    doorbell: Doorbell<Waker>,
    commands: SegQueue<Command>,
    handbacks: ArrayQueue<Handback>,
    /// Connections assigned to this poller and not yet closed (LeastConnections).
    pub(crate) assigned: AtomicUsize,
    pub(crate) counters: Counters,
}

impl Remote {
    pub(crate) fn new(index: usize, queue_capacity: usize) -> io::Result<Arc<Remote>> {
        Ok(Arc::new(Remote {
            index,
            doorbell: Doorbell::new(Waker::new()?),
            commands: SegQueue::new(),
            handbacks: ArrayQueue::new(queue_capacity.max(1)),
            assigned: AtomicUsize::new(0),
            counters: Counters::default(),
        }))
    }

    /// Queues a command and wakes the poller if it sleeps; if the poller has left its
    /// loop, the command is dropped at once (see [`Command`]'s discard rules).
    pub(crate) fn push(&self, cmd: Command) {
        self.commands.push(cmd);
        if self.doorbell.ring() == Ring::Gone {
            self.discard_commands();
        }
    }

    /// Marks the poller gone and drops its queued commands.
    pub(crate) fn mark_exited(&self) {
        self.doorbell.close();
        self.discard_commands();
    }

    /// Drops queued commands nobody will process: a handed-over socket is closed and a
    /// dial fails (their handles report closed), a shutdown waiting on an acknowledgement
    /// sees the sender disconnect.
    fn discard_commands(&self) {
        while let Some(cmd) = self.commands.pop() {
            match cmd {
                Command::Adopt(a) => a.shared.mark_closed(None),
                Command::Dial(d) => d.abandon(),
                _ => {}
            }
        }
    }

    /// Hands a session back. `urgent` says the poller has work to do with it (output
    /// still queued, a close); otherwise the poller is woken only if it waits for this
    /// or every session (see the doorbell's protocol).
    pub(crate) fn hand_back(&self, mut handback: Handback, urgent: bool) {
        // Never full: a poller has at most `queue_capacity` jobs out at once.
        while let Err(back) = self.handbacks.push(handback) {
            handback = back;
            thread::yield_now();
        }
        self.doorbell.ring_for_hand_back(urgent);
    }

    fn has_work(&self) -> bool {
        !self.commands.is_empty() || !self.handbacks.is_empty()
    }
}

/// How this poller dispatches.
pub(crate) enum Mode {
    Inline,
    Pool {
        pool: Arc<WorkerPool>,
        /// Jobs out on workers (including on_close jobs).
        in_flight: usize,
        /// Ready jobs waiting for `in_flight` to drop below the capacity.
        backlog: std::collections::VecDeque<Job>,
    },
}

/// Graceful-shutdown progress.
struct Draining {
    deadline: Nanos,
    /// Accepted connections not sent anything yet are served, not closed as idle.
    keep_fresh: bool,
    forced: bool,
    /// Connections that were busy when the drain began: each ends drained or forced.
    busy: u64,
    report: ShutdownReport,
    done: Sender<ShutdownReport>,
}

/// Marks the poller exited when its thread leaves `run`, even by unwinding.
struct ExitGuard(Arc<Remote>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if thread::panicking() {
            tracing::error!(poller = self.0.index, "poller thread panicked");
        }
        self.0.mark_exited();
    }
}

/// One poller thread's state.
pub(crate) struct Poller {
    remote: Arc<Remote>,
    driver: Driver,
    slab: Slab<Slot>,
    next_generation: u32,
    pool: BufPool,
    listeners: Vec<Listener>,
    /// Listeners paused after running out of descriptors (their `paused_until` is set).
    paused_listeners: usize,
    balancer: Arc<Balancer>,
    mode: Mode,
    config: Arc<Config>,
    draining: Option<Draining>,
    wheel: TimerWheel,
    /// The time of the current turn, read once after each wait.
    now: Nanos,
    /// Turns the poller's readings into `Instant`s and back.
    clock: Clock,
    /// Scratch space for due timer entries (kept to reuse its capacity).
    due: Vec<Entry>,
    /// Sessions with deadlines whose handler is on a worker. While there are any, the
    /// poller wakes at least every `AWAY_RECHECK`: their hand-backs may come without
    /// waking it, and their deadlines are checked when they are home.
    away_watched: usize,
    /// Scratch space for a fan-out's members.
    fanout_targets: Vec<(Token, usize)>,
    /// Members that fan-outs queued output on during this batch of commands, each once,
    /// sent when the batch ends ([`Poller::send_fanned_out`]).
    fanout_pending: fanout::Pending,
    /// Scratch space for a run of fan-out messages (keeps its capacity).
    fanout_messages: Vec<Bytes>,
    /// A fan-out ran this turn: the next wait gathers all pending input
    /// ([`Driver::wait`]).
    fanned_out: bool,
}

impl Poller {
    pub(crate) fn new(
        remote: Arc<Remote>,
        listeners: Vec<Listener>,
        balancer: Arc<Balancer>,
        mode: Mode,
        config: Arc<Config>,
        backend: crate::Backend,
    ) -> io::Result<Poller> {
        let waker = remote.doorbell.waker();
        let mut driver = match backend {
            crate::Backend::IoUring => {
                // With inline dispatch the poller holds every connection, so the ring can
                // send for it; in Pool mode workers write their connections themselves.
                let submit_sends = matches!(mode, Mode::Inline);
                Driver::Uring(Box::new(Uring::new(
                    waker,
                    submit_sends,
                    config.zero_copy_send,
                )?))
            }
            _ => Driver::Epoll(Epoll::new(waker)?),
        };
        for (i, l) in listeners.iter().enumerate() {
            driver.register(l.raw_fd(), Token::listener(i), accept::LISTEN)?;
        }
        Ok(Poller {
            driver,
            slab: Slab::new(),
            next_generation: 0,
            pool: BufPool::new(config.read_buffer_size, config.pooled_buffers),
            listeners,
            paused_listeners: 0,
            balancer,
            mode,
            config,
            draining: None,
            wheel: TimerWheel::new(Nanos::now()),
            now: Nanos::now(),
            clock: Clock::new(),
            due: Vec::new(),
            away_watched: 0,
            fanout_targets: Vec::new(),
            fanout_pending: fanout::Pending::default(),
            fanout_messages: Vec::new(),
            fanned_out: false,
            remote,
        })
    }

    /// Runs the loop until a drain completes.
    pub(crate) fn run(mut self) {
        let span = tracing::debug_span!("poller", index = self.remote.index);
        let _entered = span.enter();
        let _exit = ExitGuard(self.remote.clone());
        if let Err(e) = self.driver.start() {
            tracing::error!(error = %e, "cannot start the I/O driver; poller stops");
            self.exit();
            return;
        }
        loop {
            // Only workers hand sessions back: with inline dispatch there are none.
            if let Mode::Pool { .. } = self.mode {
                self.take_handbacks();
            }
            self.take_commands();
            if let Mode::Pool { .. } = self.mode {
                self.submit_backlog();
                self.update_every_return();
            }
            // The clock is read once a turn, after the wait: the deadlines and the wait's
            // timeout use that reading. The work done since makes it a little early, so
            // a deadline is seen at most one turn's work late and never early.
            if self.check_deadlines(self.now) {
                continue;
            }
            if self.finished() {
                break;
            }
            let timeout = self.next_timeout(self.now);
            if let Err(e) = self.sleep(timeout) {
                tracing::error!(error = %e, "waiting for events failed; poller stops");
                break;
            }
            self.now = Nanos::now();
            while let Some(event) = self.driver.next_event() {
                self.on_event(event);
            }
            self.fire_timers();
            let closing = self.driver.closing() as u64;
            if self.remote.counters.closing.load(Ordering::Relaxed) != closing {
                self.remote
                    .counters
                    .closing
                    .store(closing, Ordering::Relaxed);
            }
        }
        self.exit();
    }

    /// Blocks in the driver unless other threads left work in the queues (the
    /// doorbell's P1–P4).
    fn sleep(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.remote.doorbell.prepare_to_sleep();
        let timeout = if self.remote.has_work() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let gather = std::mem::take(&mut self.fanned_out);
        let result = self.driver.wait(timeout, gather);
        self.remote.doorbell.awake();
        result
    }

    fn on_event(&mut self, event: Event) {
        match event.token.kind() {
            // The queues are emptied at the top of every turn.
            TokenKind::Wake => {}
            TokenKind::Listener(i) => self.listener_event(i, event),
            TokenKind::Conn { index, generation } => {
                if self.slab.get(index).map(|s| s.generation) == Some(generation) {
                    self.conn_event(index, event);
                }
            }
        }
    }

    fn take_handbacks(&mut self) {
        while let Some(h) = self.remote.handbacks.pop() {
            if let Mode::Pool { in_flight, .. } = &mut self.mode {
                *in_flight -= 1;
            }
            match h {
                Handback::Served {
                    token,
                    session,
                    outcome,
                } => self.session_returned(token, session, outcome),
                Handback::Closed { panicked } => {
                    if panicked {
                        bump(&self.remote.counters.panics, 1);
                    }
                }
            }
        }
    }

    fn take_commands(&mut self) {
        // Most turns find the queue empty: skip the fan-out bookkeeping then.
        if self.remote.commands.is_empty() {
            return;
        }
        // Consecutive fan-outs of one group are delivered together (one walk of its
        // members); any other command delivers them first, so the order holds.
        let mut run: Option<Arc<Shard>> = None;
        let mut messages = std::mem::take(&mut self.fanout_messages);
        while let Some(cmd) = self.remote.commands.pop() {
            bump(&self.remote.counters.commands, 1);
            if let Command::FanOut { shard, data } = cmd {
                if run.as_ref().is_some_and(|r| !Arc::ptr_eq(r, &shard)) {
                    self.fan_out_run(&mut run, &mut messages);
                }
                run.get_or_insert(shard);
                messages.push(data);
                continue;
            }
            self.fan_out_run(&mut run, &mut messages);
            match cmd {
                Command::Adopt(a) => self.adopt(a),
                Command::Dial(d) => self.dial(d),
                Command::Notify(shared) => self.notified(shared),
                Command::FanOut { .. } => unreachable!("taken above"),
                Command::StopAccepting(ack) => {
                    self.stop_accepting();
                    let _ = ack.send(());
                }
                Command::Drain {
                    deadline,
                    keep_fresh,
                    done,
                } => self.begin_drain(deadline, keep_fresh, done),
            }
        }
        self.fan_out_run(&mut run, &mut messages);
        self.fanout_messages = messages;
        self.send_fanned_out();
    }

    /// Delivers the run of fan-out messages gathered so far, if any.
    fn fan_out_run(&mut self, run: &mut Option<Arc<Shard>>, messages: &mut Vec<Bytes>) {
        if let Some(shard) = run.take() {
            self.fanned_out = true;
            self.fan_out(&shard, messages);
            messages.clear();
        }
    }

    /// Hands queued jobs to the pool while this poller is under its share.
    fn submit_backlog(&mut self) {
        if let Mode::Pool {
            pool,
            in_flight,
            backlog,
        } = &mut self.mode
        {
            while *in_flight < self.config.queue_capacity {
                let Some(job) = backlog.pop_front() else {
                    break;
                };
                match pool.submit(job) {
                    Ok(()) => *in_flight += 1,
                    Err(job) => {
                        backlog.push_front(job);
                        break;
                    }
                }
            }
        }
    }

    /// Every hand-back must wake this poller while it drains or has a backlog.
    fn update_every_return(&mut self) {
        let every = match &self.mode {
            Mode::Inline => false,
            Mode::Pool { backlog, .. } => self.draining.is_some() || !backlog.is_empty(),
        };
        self.remote.doorbell.want_every_return(every);
    }

    /// Queues a job for the pool (Pool mode only).
    fn dispatch_job(&mut self, job: Job) {
        if let Mode::Pool { backlog, .. } = &mut self.mode {
            backlog.push_back(job);
        }
        self.submit_backlog();
    }

    fn next_timeout(&self, now: Nanos) -> Option<Duration> {
        let mut next = self.wheel.next_due();
        if self.away_watched > 0 || self.paused_listeners > 0 || self.draining.is_some() {
            let mut consider = |t: Nanos| next = Some(next.map_or(t, |n| n.min(t)));
            if self.away_watched > 0 {
                consider(now.after(timeouts::AWAY_RECHECK));
            }
            if let Some(d) = &self.draining {
                if !d.forced {
                    consider(d.deadline);
                }
            }
            for l in &self.listeners {
                if let Some(t) = l.paused_until {
                    consider(t);
                }
            }
        }
        next.map(|t| Duration::from_nanos(t.since(now)))
    }

    /// Acts on deadlines that passed. Returns `true` if it did something.
    fn check_deadlines(&mut self, now: Nanos) -> bool {
        // The common turn: no listener paused, no drain.
        if self.paused_listeners == 0 && self.draining.is_none() {
            return false;
        }
        let mut acted = self.resume_listeners(now);
        if let Some(d) = &self.draining {
            if !d.forced && now >= d.deadline {
                self.force_close_all();
                acted = true;
            }
        }
        acted
    }

    /// Whether the drain applies to `slot` now: the server is draining, and the slot is
    /// not a fresh connection the drain keeps serving until its first reply.
    fn drains(draining: &Option<Draining>, slot: &Slot) -> bool {
        draining
            .as_ref()
            .is_some_and(|d| !(d.keep_fresh && slot.fresh))
    }

    /// A fresh generation for a slot, so tokens of the connection that held it before
    /// (and of earlier attempts of a dial) never match.
    fn next_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        self.next_generation =
            (self.next_generation + 1) & ((1 << crate::driver::GENERATION_BITS) - 1);
        generation
    }
}
