//! Running handler callbacks: on the poller thread ([`Dispatch::Inline`]) or on a pool of
//! worker threads ([`Dispatch::Pool`]).
//!
//! The one-in-flight rule is kept by ownership, not by a lock: a connection's session is
//! a `Box` that is either in its poller's slab or moved into exactly one job. A worker
//! runs the handler, flushes the output itself (the socket write needs no poller), and
//! hands the box back through the poller's hand-back queue. Bytes that arrive
//! meanwhile are read by the poller into a side buffer and appended when the box
//! returns, which triggers the next call.
//!
//! Queues are bounded and allocation-free: each poller keeps at most
//! `queue_capacity` sessions away at once (its hand-back queue has exactly that
//! many slots, and the shared job queue has room for every poller's share); ready
//! connections beyond that wait, in arrival order, in the poller's own backlog.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;

use crossbeam_queue::ArrayQueue;

use crate::driver::Token;
use crate::poller::{Handback, Remote};
use crate::session::Session;
use crate::{CloseReason, TimerKey};

/// Where `on_request` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatch {
    /// On the poller thread that owns the connection: the lowest latency and no thread
    /// hand-off; a handler that blocks stalls every connection of that poller.
    Inline,
    /// On a pool of `threads` worker threads: handlers may block (a database call); the
    /// poller keeps reading and writing other connections meanwhile.
    Pool {
        /// Number of worker threads (at least 1).
        threads: usize,
    },
}

/// Which callback starts a run; `on_request` follows each while input is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// `on_connect`.
    Connect,
    /// `on_request` while it makes progress.
    Requests,
    /// `on_timer` for this key.
    Timer(TimerKey),
    /// `on_wake`.
    Wake,
    /// `on_drain`.
    Drain,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// A callback panicked: the connection closes with [`CloseReason::Panic`].
    pub(crate) panicked: bool,
    /// The handler switched the connection to another protocol.
    pub(crate) switched: bool,
}

/// Runs the callback `call` names and then `on_request` for as long as it makes progress
/// (carrying out a protocol switch between calls). With `flush` (a worker, which holds
/// the connection alone) it then sends the output itself; on the poller, the poller
/// sends it right after.
pub(crate) fn run(session: &mut Session, call: Call, flush: bool) -> Outcome {
    let span = session.conn.span.clone();
    let _entered = span.enter();
    let mut outcome = Outcome::default();
    let result = catch_unwind(AssertUnwindSafe(|| {
        match call {
            Call::Connect => session.connect(),
            Call::Timer(key) => session.timer(key),
            Call::Wake => session.wake(),
            Call::Drain => session.drain(),
            Call::Requests => {}
        }
        loop {
            outcome.switched |= session.switch();
            let conn = &mut session.conn;
            // Above the output mark requests wait until the peer reads (the poller
            // calls again once the output falls to half of it).
            if conn.shared.close_requested() || !conn.input.ready() || conn.output_over_mark() {
                break;
            }
            conn.input.consumed = 0;
            conn.input.reset_declarations();
            conn.calls += 1;
            session.request();
            let conn = &mut session.conn;
            if conn.input.consumed == 0 {
                // An incomplete frame: wait for more bytes (no spin).
                conn.input.stalled = true;
            } else {
                conn.input.progressed = true;
            }
        }
    }));
    if result.is_err() {
        tracing::warn!("handler panicked; closing the connection");
        outcome.panicked = true;
        return outcome;
    }
    if flush {
        let conn = &mut session.conn;
        conn.take_outbox();
        // A failed flush is remembered in the link and closes the connection.
        let _ = conn.flush();
    }
    outcome
}

/// Runs `on_close`, catching a panic. Returns `true` if it panicked.
pub(crate) fn close(session: Box<Session>, reason: CloseReason) -> bool {
    catch_unwind(AssertUnwindSafe(move || session.close(reason))).is_err()
}

/// Work handed to the pool.
pub(crate) struct Job {
    pub(crate) poller: usize,
    pub(crate) kind: JobKind,
}

pub(crate) enum JobKind {
    Serve {
        token: Token,
        session: Box<Session>,
        call: Call,
    },
    Close {
        session: Box<Session>,
        reason: CloseReason,
    },
}

/// The worker threads and their shared job queue.
pub(crate) struct WorkerPool {
    jobs: ArrayQueue<Job>,
    /// Ids of parked workers.
    idle: ArrayQueue<usize>,
    /// Whether a worker's id is already in `idle`.
    listed: Vec<AtomicBool>,
    threads: OnceLock<Vec<thread::Thread>>,
    remotes: OnceLock<Vec<Arc<Remote>>>,
    stopping: AtomicBool,
}

impl WorkerPool {
    pub(crate) fn new(threads: usize, capacity: usize) -> Arc<WorkerPool> {
        Arc::new(WorkerPool {
            jobs: ArrayQueue::new(capacity.max(1)),
            idle: ArrayQueue::new(threads),
            listed: (0..threads).map(|_| AtomicBool::new(false)).collect(),
            threads: OnceLock::new(),
            remotes: OnceLock::new(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Starts the worker threads.
    pub(crate) fn start(
        self: &Arc<Self>,
        remotes: Vec<Arc<Remote>>,
    ) -> std::io::Result<Vec<thread::JoinHandle<()>>> {
        let _ = self.remotes.set(remotes);
        let mut joins = Vec::with_capacity(self.listed.len());
        for id in 0..self.listed.len() {
            let pool = self.clone();
            joins.push(
                thread::Builder::new()
                    .name(format!("netloop-worker-{id}"))
                    .spawn(move || pool.work(id))?,
            );
        }
        let _ = self
            .threads
            .set(joins.iter().map(|j| j.thread().clone()).collect());
        Ok(joins)
    }

    /// Queues a job. The capacity arithmetic in the module docs guarantees room; should
    /// that ever fail the job is handed back.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.push(job)?;
        fence(Ordering::SeqCst);
        self.wake_one();
        Ok(())
    }

    fn wake_one(&self) {
        if let Some(id) = self.idle.pop() {
            self.listed[id].store(false, Ordering::Release);
            if let Some(threads) = self.threads.get() {
                threads[id].unpark();
            }
        }
    }

    /// Lets the workers finish the queued jobs and exit.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(threads) = self.threads.get() {
            for t in threads {
                t.unpark();
            }
        }
    }

    fn work(&self, id: usize) {
        let remotes = self.remotes.get().expect("pool started without pollers");
        loop {
            if let Some(job) = self.jobs.pop() {
                let remote = &remotes[job.poller];
                match job.kind {
                    JobKind::Serve {
                        token,
                        mut session,
                        call,
                    } => {
                        let outcome = run(&mut session, call, true);
                        let urgent = outcome.panicked || session.conn.needs_poller();
                        remote.hand_back(
                            Handback::Served {
                                token,
                                session,
                                outcome,
                            },
                            urgent,
                        );
                    }
                    JobKind::Close { session, reason } => {
                        let panicked = close(session, reason);
                        remote.hand_back(Handback::Closed { panicked }, false);
                    }
                }
                continue;
            }
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            if !self.listed[id].swap(true, Ordering::AcqRel) {
                // Cannot fail: each worker is listed at most once.
                let _ = self.idle.push(id);
            }
            fence(Ordering::SeqCst);
            if !self.jobs.is_empty() || self.stopping.load(Ordering::SeqCst) {
                continue;
            }
            thread::park();
        }
    }
}
