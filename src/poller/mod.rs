//! The per-core loop.
//!
//! A poller thread owns a driver (epoll or io_uring), a slab of connections, a buffer pool and, for
//! some balance policies, listeners. Everything it owns is touched by that thread only;
//! other threads talk to it through its [`Remote`]: a command queue (new connections,
//! cross-thread sends, shutdown) and a completion queue (sessions coming back from
//! workers), plus a waker that is only written when the poller is actually asleep.

mod accept;
mod connection;
mod shutdown;
mod timeouts;

pub use accept::Balance;
pub(crate) use accept::{Balancer, Listener};

use std::os::fd::OwnedFd;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{io, thread};

use crossbeam_queue::{ArrayQueue, SegQueue};
use slab::Slab;

use crate::buf::BufPool;
use crate::conn::ConnShared;
use crate::dispatch::{Job, WorkerPool};
use crate::driver::{Driver, Epoll, Event, TokenKind, Uring, Waker};
use crate::session::{Factory, Session};
use crate::stats::Counters;
use crate::timer::{Entry, TimerWheel};
use crate::ShutdownReport;

use connection::Slot;

/// Settings every poller shares.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) read_buffer_size: usize,
    pub(crate) pooled_buffers: usize,
    pub(crate) input_high_water: usize,
    pub(crate) input_low_water: usize,
    pub(crate) output_high_water: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) timeouts: crate::conn::Timeouts,
    pub(crate) max_connections: Option<usize>,
    pub(crate) tcp_keepalive: Option<Duration>,
    /// Smallest io_uring send made zero-copy (`None`: never).
    pub(crate) zero_copy_send: Option<usize>,
}

/// A connection handed to a poller to own: accepted by another poller, or dialed.
pub(crate) struct Adopt {
    pub(crate) fd: OwnedFd,
    /// Created by whoever hands the connection over, so a dialer can return a
    /// [`ConnHandle`](crate::ConnHandle) without waiting for the poller.
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) factory: Arc<dyn Factory>,
}

/// Messages from other threads to a poller.
pub(crate) enum Command {
    Adopt(Adopt),
    /// Data or a close request is waiting in this connection's outbox.
    Notify(Arc<ConnShared>),
    /// Close the listeners and acknowledge.
    StopAccepting(Sender<()>),
    /// Close idle connections, let busy ones finish until `deadline`, then report
    /// and exit.
    Drain {
        deadline: Instant,
        done: Sender<ShutdownReport>,
    },
}

/// A finished job coming back from a worker.
pub(crate) enum Completion {
    Served {
        token: crate::driver::Token,
        session: Box<dyn Session>,
        panicked: bool,
    },
    Closed {
        panicked: bool,
    },
}

/// The half of a poller that other threads may touch.
pub(crate) struct Remote {
    pub(crate) index: usize,
    waker: Waker,
    sleeping: AtomicBool,
    commands: SegQueue<Command>,
    completions: ArrayQueue<Completion>,
    /// Connections assigned to this poller and not yet closed (LeastConnections).
    pub(crate) assigned: AtomicUsize,
    /// Sessions out on workers that the poller has news for (input, a send, a hang-up):
    /// their completions must wake it.
    awaited: AtomicUsize,
    /// Every completion must wake the poller (it is draining or has a backlog).
    eager: AtomicBool,
    /// The poller thread has left its loop (normally, or by a panic inside netloop):
    /// commands pushed from now on are dropped at once.
    exited: AtomicBool,
    pub(crate) counters: Counters,
}

impl Remote {
    pub(crate) fn new(index: usize, queue_capacity: usize) -> io::Result<Arc<Remote>> {
        Ok(Arc::new(Remote {
            index,
            waker: Waker::new()?,
            sleeping: AtomicBool::new(false),
            commands: SegQueue::new(),
            completions: ArrayQueue::new(queue_capacity.max(1)),
            assigned: AtomicUsize::new(0),
            awaited: AtomicUsize::new(0),
            eager: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            counters: Counters::default(),
        }))
    }

    /// Queues a command and wakes the poller if it sleeps.
    pub(crate) fn push(&self, cmd: Command) {
        self.commands.push(cmd);
        fence(Ordering::SeqCst);
        if self.exited.load(Ordering::Relaxed) {
            // Nobody will process it: drop it so whoever waits on it sees it is gone.
            self.discard_commands();
            return;
        }
        self.wake_if_sleeping();
    }

    /// Marks the poller gone and drops its queued commands: a handed-over socket is
    /// closed (its handle reports closed), a shutdown waiting on an acknowledgement sees
    /// the sender disconnect.
    fn mark_exited(&self) {
        self.exited.store(true, Ordering::SeqCst);
        self.discard_commands();
    }

    fn discard_commands(&self) {
        while let Some(cmd) = self.commands.pop() {
            if let Command::Adopt(a) = cmd {
                a.shared.mark_closed();
            }
        }
    }

    /// Hands a finished job back. `urgent` says the poller has work to do with it
    /// (output still queued, a close); otherwise the poller is woken only if it waits for
    /// this or any session, and a sleeping poller picks the completion up on its next
    /// turn. The worker has already sent the reply, so in the common case no wake-up
    /// system call is made at all.
    pub(crate) fn complete(&self, mut completion: Completion, urgent: bool) {
        // Never full: a poller has at most `queue_capacity` jobs out at once.
        while let Err(back) = self.completions.push(completion) {
            completion = back;
            thread::yield_now();
        }
        fence(Ordering::SeqCst);
        if urgent || self.eager.load(Ordering::Relaxed) || self.awaited.load(Ordering::Relaxed) > 0
        {
            self.wake_if_sleeping();
        }
    }

    fn wake_if_sleeping(&self) {
        // Pairs with the fence in `Poller::sleep`: either the poller sees the queued item
        // before blocking, or this thread sees `sleeping` and writes the eventfd.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    fn has_work(&self) -> bool {
        !self.commands.is_empty() || !self.completions.is_empty()
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
    deadline: Instant,
    forced: bool,
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
    balancer: Arc<Balancer>,
    mode: Mode,
    config: Arc<Config>,
    draining: Option<Draining>,
    wheel: TimerWheel,
    /// The driver sends output itself (io_uring with inline dispatch); workers in Pool
    /// mode write to their sockets directly, so they never use it.
    ring_sends: bool,
    /// The time of the current turn, read once after each wait.
    now: Instant,
    /// Scratch space for due timer entries (kept to reuse its capacity).
    due: Vec<Entry>,
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
        let mut driver = match backend {
            crate::Backend::IoUring => {
                Driver::Uring(Box::new(Uring::new(&remote.waker, config.zero_copy_send)?))
            }
            _ => Driver::Epoll(Epoll::new(&remote.waker)?),
        };
        for (i, l) in listeners.iter().enumerate() {
            driver.add(
                l.raw_fd(),
                crate::driver::Token::listener(i),
                accept::LISTEN,
            )?;
        }
        let ring_sends = driver.sends_output() && matches!(mode, Mode::Inline);
        Ok(Poller {
            ring_sends,
            driver,
            slab: Slab::new(),
            next_generation: 0,
            pool: BufPool::new(config.read_buffer_size, config.pooled_buffers),
            listeners,
            balancer,
            mode,
            config,
            draining: None,
            wheel: TimerWheel::new(Instant::now()),
            now: Instant::now(),
            due: Vec::new(),
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
            self.take_completions();
            self.take_commands();
            self.submit_backlog();
            self.update_eager();
            if self.check_deadlines() {
                continue;
            }
            if self.finished() {
                break;
            }
            let timeout = self.next_timeout();
            if let Err(e) = self.sleep(timeout) {
                tracing::error!(error = %e, "waiting for events failed; poller stops");
                break;
            }
            self.now = Instant::now();
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

    /// Blocks in the driver unless other threads left work in the queues.
    fn sleep(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.remote.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let timeout = if self.remote.has_work() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let result = self.driver.wait(timeout);
        self.remote.sleeping.store(false, Ordering::Relaxed);
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

    fn take_completions(&mut self) {
        while let Some(c) = self.remote.completions.pop() {
            if let Mode::Pool { in_flight, .. } = &mut self.mode {
                *in_flight -= 1;
            }
            match c {
                Completion::Served {
                    token,
                    session,
                    panicked,
                } => self.session_returned(token, session, panicked),
                Completion::Closed { panicked } => {
                    if panicked {
                        crate::stats::bump(&self.remote.counters.panics, 1);
                    }
                }
            }
        }
    }

    fn take_commands(&mut self) {
        while let Some(cmd) = self.remote.commands.pop() {
            match cmd {
                Command::Adopt(a) => self.adopt(a),
                Command::Notify(shared) => self.notified(shared),
                Command::StopAccepting(ack) => {
                    self.stop_accepting();
                    let _ = ack.send(());
                }
                Command::Drain { deadline, done } => self.begin_drain(deadline, done),
            }
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

    /// Completions must wake this poller while it drains or has a backlog to submit.
    fn update_eager(&mut self) {
        let eager = match &self.mode {
            Mode::Inline => false,
            Mode::Pool { backlog, .. } => self.draining.is_some() || !backlog.is_empty(),
        };
        if self.remote.eager.load(Ordering::Relaxed) != eager {
            self.remote.eager.store(eager, Ordering::SeqCst);
        }
    }

    /// Queues a job for the pool (Pool mode only).
    fn dispatch_job(&mut self, job: Job) {
        if let Mode::Pool { backlog, .. } = &mut self.mode {
            backlog.push_back(job);
        }
        self.submit_backlog();
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut next: Option<Instant> = self.wheel.next_timeout(now).map(|d| now + d);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
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
        next.map(|t| t.saturating_duration_since(now))
    }

    /// Acts on deadlines that passed. Returns `true` if it did something.
    fn check_deadlines(&mut self) -> bool {
        let now = Instant::now();
        self.now = now;
        let mut acted = self.resume_listeners(now);
        if let Some(d) = &self.draining {
            if !d.forced && now >= d.deadline {
                self.force_close_all();
                acted = true;
            }
        }
        acted
    }
}
