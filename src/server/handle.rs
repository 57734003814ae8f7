//! [`ServerHandle`]: addresses, stats, dialing, and graceful shutdown.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::dial::{DialShared, IntoTarget};
use crate::dispatch::WorkerPool;
use crate::poller::{Command, Remote};
use crate::restart::ListenerFds;
use crate::{Addr, ConnHandle, Dialer, Error, Handler, ShutdownReport, Stats};

/// Everything `start` hands to a new handle.
pub(super) struct Parts {
    pub(super) remotes: Vec<Arc<Remote>>,
    pub(super) dial: Arc<DialShared>,
    pub(super) connect_timeout: Duration,
    pub(super) local_addrs: Vec<Addr>,
    pub(super) unix_paths: Vec<PathBuf>,
    /// A duplicate of every listening socket, per listener in builder order, kept to hand
    /// them to a successor; closed when the shutdown begins.
    pub(super) handover: Mutex<Vec<ListenerFds>>,
    pub(super) pool: Option<Arc<WorkerPool>>,
    pub(super) backend: crate::Backend,
}

#[derive(Default)]
struct Control {
    /// A shutdown asked for through a [`Stopper`], with its grace period.
    request: Option<Duration>,
    /// The result, once a shutdown completed.
    report: Option<ShutdownReport>,
}

struct Inner {
    parts: Parts,
    pollers: Mutex<Vec<JoinHandle<()>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    control: Mutex<Control>,
    changed: Condvar,
    /// The listening sockets were handed to another process, which serves on them now.
    handed_over: AtomicBool,
}

/// A running server (or dial-only loop): its addresses, counters, and the way to stop it.
///
/// Dropping the handle without calling [`shutdown`](ServerHandle::shutdown) shuts the
/// server down with no grace period.
pub struct ServerHandle {
    inner: Arc<Inner>,
}

/// Asks a server to shut down, from any thread (a signal handler thread, a test). The
/// thread blocked in [`ServerHandle::wait`] performs the shutdown.
#[derive(Clone)]
pub struct Stopper {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addrs", &self.inner.parts.local_addrs)
            .field("pollers", &self.inner.parts.remotes.len())
            .finish()
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stopper")
    }
}

impl Stopper {
    /// Requests a graceful shutdown with `grace` as the deadline; returns at once.
    pub fn stop(&self, grace: Duration) {
        lock(&self.inner.control).request.get_or_insert(grace);
        self.inner.changed.notify_all();
    }
}

impl ServerHandle {
    pub(super) fn new(parts: Parts) -> ServerHandle {
        ServerHandle {
            inner: Arc::new(Inner {
                parts,
                pollers: Mutex::new(Vec::new()),
                workers: Mutex::new(Vec::new()),
                control: Mutex::new(Control::default()),
                changed: Condvar::new(),
                handed_over: AtomicBool::new(false),
            }),
        }
    }

    pub(super) fn add_poller_thread(&self, join: JoinHandle<()>) {
        lock(&self.inner.pollers).push(join);
    }

    pub(super) fn add_worker_threads(&self, joins: Vec<JoinHandle<()>>) {
        lock(&self.inner.workers).extend(joins);
    }

    /// Start-up failed half way: stop what was started and return the error.
    pub(super) fn abort(&self, e: std::io::Error) -> Error {
        self.shutdown(Duration::ZERO);
        Error::Io(e)
    }

    /// The listeners' real addresses, in the order they were given to the builder
    /// (port 0 resolved to the port the system picked).
    pub fn local_addrs(&self) -> &[Addr] {
        &self.inner.parts.local_addrs
    }

    /// Duplicates of every listening socket, per listener in builder order (the order
    /// of [`local_addrs`](ServerHandle::local_addrs)), for handing them to another
    /// process; with [`Balance::ReusePort`](crate::Balance::ReusePort) a TCP listener
    /// has one socket per poller, and all of them are included (a closed `SO_REUSEPORT`
    /// socket resets the connections waiting in its own accept queue). The descriptors
    /// are close-on-exec. [`restart::spawn_successor`](crate::restart::spawn_successor)
    /// does the whole handover; this is for passing the sockets some other way.
    ///
    /// Calling it marks the listeners as handed over, which changes this server's
    /// shutdown: Unix socket files are left in place (the successor serves on them),
    /// and connections that have not been sent anything yet are not closed as idle but
    /// served (see [`shutdown`](ServerHandle::shutdown)).
    ///
    /// # Errors
    /// `NotConnected` once the shutdown has begun (the sockets are closed), or the error
    /// of duplicating a descriptor.
    pub fn listener_fds(&self) -> io::Result<Vec<ListenerFds>> {
        let fds = self.dup_listeners()?;
        self.set_handed_over();
        Ok(fds)
    }

    /// Duplicates of the listening sockets, without marking them handed over.
    pub(crate) fn dup_listeners(&self) -> io::Result<Vec<ListenerFds>> {
        let held = lock(&self.inner.parts.handover);
        if *read(&self.inner.parts.dial.stopping) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server is shutting down; its listeners are closed",
            ));
        }
        held.iter().map(ListenerFds::try_clone).collect()
    }

    /// Another process serves on the listeners now (see [`listener_fds`](ServerHandle::listener_fds)).
    pub(crate) fn set_handed_over(&self) {
        self.inner.handed_over.store(true, Ordering::SeqCst);
    }

    /// The I/O backend the pollers run on: [`Backend::Epoll`](crate::Backend::Epoll) or
    /// [`Backend::IoUring`](crate::Backend::IoUring), never `Auto` (that is settled
    /// at start-up).
    pub fn backend(&self) -> crate::Backend {
        self.inner.parts.backend
    }

    /// Number of poller threads.
    pub fn pollers(&self) -> usize {
        self.inner.parts.remotes.len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for r in &self.inner.parts.remotes {
            r.counters.add_to(&mut stats);
        }
        stats
    }

    /// A [`StatsSource`](crate::StatsSource): the counters, readable from another thread
    /// without this handle (for a metrics endpoint).
    pub fn stats_source(&self) -> crate::StatsSource {
        super::stats_source::StatsSource::new(&self.inner.parts.remotes)
    }

    /// A [`Stopper`] for requesting shutdown from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            inner: self.inner.clone(),
        }
    }

    /// A [`Dialer`] for outbound connections on this runtime's pollers.
    pub fn dialer(&self) -> Dialer {
        Dialer::new(
            self.inner.parts.dial.clone(),
            self.inner.parts.connect_timeout,
        )
    }

    /// Opens an outbound connection to `target` with a connect timeout of `timeout`:
    /// `self.dialer().connect_timeout(timeout).dial(target, handler)` (see
    /// [`Dialer::dial`]). Returns at once; [`ConnHandle::wait_open`] waits for the
    /// outcome.
    ///
    /// # Errors
    /// As [`Dialer::dial`].
    pub fn dial<H: Handler>(
        &self,
        target: impl IntoTarget,
        timeout: Duration,
        handler: H,
    ) -> Result<ConnHandle, Error> {
        self.dialer().connect_timeout(timeout).dial(target, handler)
    }

    /// Blocks until a [`Stopper`] asks for a shutdown (or another thread calls
    /// [`shutdown`](ServerHandle::shutdown)), performs it, and returns its report.
    pub fn wait(&self) -> ShutdownReport {
        enum Next {
            Done(ShutdownReport),
            Stop(Duration),
        }
        let next = self.wait_for(|c| match (c.report, c.request) {
            (Some(report), _) => Some(Next::Done(report)),
            (None, Some(grace)) => Some(Next::Stop(grace)),
            (None, None) => None,
        });
        let grace = match next {
            Next::Done(report) => return report,
            Next::Stop(grace) => grace,
        };
        self.shutdown(grace)
    }

    /// Shuts down gracefully: stops accepting and closes the listeners; closes idle
    /// connections at once; lets busy ones (a handler running, output not yet sent)
    /// finish and flush, then closes them; at `grace` from now cuts off whatever is left;
    /// joins every poller and worker thread. Returns what happened.
    ///
    /// After a handover ([`listener_fds`](ServerHandle::listener_fds),
    /// [`restart::spawn_successor`](crate::restart::spawn_successor)) the service goes
    /// on in another process, so this one must not drop a client it has already
    /// accepted: a connection that has not been sent a byte yet (just accepted, its
    /// first request maybe still on the way) counts as busy, keeps being read, and
    /// closes after its first reply, or at the deadline; Go's `http.Server` treats its
    /// new connections the same way. Unix socket files are then left for the successor.
    ///
    /// A handler still running at the deadline has its connection shut down under it;
    /// its thread is joined when it returns (Rust cannot stop a running thread).
    /// Calling this again returns the first call's report.
    pub fn shutdown(&self, grace: Duration) -> ShutdownReport {
        {
            let mut stopping = self
                .inner
                .parts
                .dial
                .stopping
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if *stopping {
                drop(stopping);
                return self.wait_for_report();
            }
            *stopping = true;
        }
        // The duplicates kept for a handover go first, so that closing the pollers'
        // sockets closes the listeners, as before.
        lock(&self.inner.parts.handover).clear();
        let handed_over = self.inner.handed_over.load(Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        let remotes = &self.inner.parts.remotes;
        let running = lock(&self.inner.pollers).len();
        // Phase 1: every poller closes its listeners. Connections already handed from one
        // poller to another are queued ahead of phase 2's command, so none is lost.
        let (ack_tx, ack_rx) = mpsc::channel();
        for r in remotes.iter().take(running) {
            r.push(Command::StopAccepting(ack_tx.clone()));
        }
        drop(ack_tx);
        for _ in 0..running {
            if ack_rx.recv().is_err() {
                break;
            }
        }
        // Phase 2: drain.
        let (done_tx, done_rx) = mpsc::channel();
        for r in remotes.iter().take(running) {
            r.push(Command::Drain {
                deadline,
                keep_fresh: handed_over,
                done: done_tx.clone(),
            });
        }
        drop(done_tx);
        let mut report = ShutdownReport::default();
        for _ in 0..running {
            match done_rx.recv() {
                Ok(r) => report.add(&r),
                Err(_) => break,
            }
        }
        for join in lock(&self.inner.pollers).drain(..) {
            if join.join().is_err() {
                tracing::error!("a poller thread panicked");
            }
        }
        if let Some(pool) = &self.inner.parts.pool {
            pool.stop();
        }
        for join in lock(&self.inner.workers).drain(..) {
            let _ = join.join();
        }
        if !handed_over {
            for path in &self.inner.parts.unix_paths {
                let _ = std::fs::remove_file(path);
            }
        }
        lock(&self.inner.control).report = Some(report);
        self.inner.changed.notify_all();
        report
    }

    fn wait_for_report(&self) -> ShutdownReport {
        self.wait_for(|c| c.report)
    }

    /// Blocks until `ready` finds what it looks for in the control state.
    fn wait_for<T>(&self, mut ready: impl FnMut(&Control) -> Option<T>) -> T {
        let mut control = lock(&self.inner.control);
        loop {
            if let Some(value) = ready(&control) {
                return value;
            }
            control = self
                .inner
                .changed
                .wait(control)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !*read(&self.inner.parts.dial.stopping) {
            self.shutdown(Duration::ZERO);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
