//! The task server: [`TaskServer`] is a core [`Handler`] that speaks `PROTOCOL.md`.
//!
//! On the connection's turn (one at a time per client, netloop's one-in-flight rule)
//! it reads the hello and then frames; a TASK's payload is taken zero-copy from the
//! input and handed to the task function registered for its code, which returns a run
//! function. Run functions run on the server's workers, concurrently; their replies go
//! out through the connection's handle, paced by its output mark.
//!
//! A connection's stages:
//!
//! | stage | entered when | TASK frames | leaves to |
//! |---|---|---|---|
//! | `Hello` | accepted (or [`TaskServer::handle_connection`] skips it) | (the hello is awaited) | `Open` (a good hello), `Closed` (a bad one) |
//! | `Open` | welcomed | run | `Draining` (a disconnect, the wait timeout, a shutdown), `Finishing` (the client's GOODBYE), `Closed` (a protocol error, a failure) |
//! | `Draining` | this side's GOODBYE sent; no more reading | ignored | `Closed` (no task left, or the disconnect's time is up) |
//! | `Finishing` | the client's GOODBYE came | a protocol error (§5.5) | `Closed` (no task left) |
//! | `Closed` | the socket is closing | ignored | — |

mod client;
mod run;
mod task;

pub use client::{Client, TaskMetadata};
pub use task::{
    Args, Output, Request, RunContext, RunData, RunError, RunFn, Task, TaskCode, TaskError, TaskFn,
    TaskId,
};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;

use super::codec::{
    self, parse_client_head, reason, status, BadHello, ByteOrder, ClientFrameKind, ClientHead,
    Hello, Parsed, ServerFrame, RESERVED_CODES, TASK_HEADER, UNKNOWN_TASK,
};
use super::CancelToken;
use crate::workers::Pool;
use crate::{CloseReason, Conn, Handler, ServerHandle, TimerKey};

const WAIT: TimerKey = TimerKey(0xFD00);
const DISCONNECT: TimerKey = TimerKey(0xFD01);

/// A counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Its value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a task server (or a client given its own) counts.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct TaskMetrics {
    /// Tasks received.
    pub received: Counter,
    /// Tasks answered OK (with their output sent).
    pub ok: Counter,
    /// Tasks answered ERROR.
    pub errors: Counter,
    /// Tasks answered CANCELLED.
    pub cancelled: Counter,
    /// Clients dropped for a serious failure (a task or run function's, a protocol
    /// error).
    pub failures: Counter,
}

/// The task server's settings.
#[derive(Clone, Debug)]
pub struct TaskConfig {
    pub(crate) wait_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_payload: usize,
    pub(crate) workers: usize,
}

impl Default for TaskConfig {
    /// The seed's timeouts (30 min for the next task, 5 s to read a request, 5 s to
    /// write a reply), 16 MiB payloads, one run worker per CPU.
    fn default() -> TaskConfig {
        TaskConfig {
            wait_timeout: Duration::from_secs(30 * 60),
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_payload: 16 << 20,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl TaskConfig {
    /// How long a client may go without a task (and none running) before a graceful
    /// disconnect, GOODBYE reason 1 ("timeout waiting for task"). Default: 30 min.
    pub fn wait_timeout(mut self, t: Duration) -> TaskConfig {
        self.wait_timeout = t;
        self
    }

    /// How long a request (hello or frame) may take to arrive once its first byte has.
    /// Default: 5 s.
    pub fn read_timeout(mut self, t: Duration) -> TaskConfig {
        self.read_timeout = t;
        self
    }

    /// How long a reply may sit unsent (the client not reading) before the connection
    /// is closed; also how long a run function's output waits for room. Default: 5 s.
    pub fn write_timeout(mut self, t: Duration) -> TaskConfig {
        self.write_timeout = t;
        self
    }

    /// The largest TASK payload (`PROTOCOL.md` §5.2). Default: 16 MiB. The runtime's
    /// [`Builder::max_want`](crate::Builder::max_want) must admit it too.
    pub fn max_payload(mut self, bytes: usize) -> TaskConfig {
        self.max_payload = bytes;
        self
    }

    /// Threads running run functions. Default: one per CPU.
    pub fn workers(mut self, n: usize) -> TaskConfig {
        self.workers = n.max(1);
        self
    }
}

/// A task code in the reserved range (`PROTOCOL.md` §8) cannot be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedCode(pub TaskCode);

impl fmt::Display for ReservedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task code {:#x} is reserved (codes from {RESERVED_CODES:#x} up)",
            self.0
        )
    }
}

impl std::error::Error for ReservedCode {}

struct Registered {
    f: Arc<TaskFn>,
    /// Shared with every task's metadata (no copy per task).
    name: Arc<str>,
}

pub(crate) struct Inner {
    pub(crate) config: TaskConfig,
    registry: RwLock<BTreeMap<TaskCode, Registered>>,
    clients: Mutex<BTreeMap<u64, Client>>,
    changed: Condvar,
    next_client: AtomicU64,
    live_tasks: AtomicUsize,
    pool: Pool,
    args: Args,
    pub(crate) metrics: Arc<TaskMetrics>,
    pub(crate) span: tracing::Span,
    shutting_down: AtomicBool,
    /// Tasks cancelled at a shutdown's deadline, by the shutdown or by a client's own
    /// disconnect timer, whichever came first ([`Client::cut_off`]).
    shutdown_cut_off: AtomicUsize,
}

impl Inner {
    /// `n` tasks were cut off at a disconnection's deadline: counted if a shutdown is
    /// under way.
    pub(crate) fn count_cut_off(&self, n: usize) {
        if n > 0 && self.shutting_down.load(Ordering::Acquire) {
            self.shutdown_cut_off.fetch_add(n, Ordering::AcqRel);
        }
    }

    pub(crate) fn task_released(&self) {
        if self.live_tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            self.changed.notify_all();
        }
    }
}

/// An async task server (`PROTOCOL.md`). Cheap to clone; serve it like any handler:
///
/// ```no_run
/// use netloop::task::{Output, Task, TaskConfig, TaskServer};
///
/// let tasks = TaskServer::new(TaskConfig::default());
/// tasks
///     .register(1, "echo", |req| {
///         let payload = req.payload().clone();
///         Ok(Task::run(move |_ctx| Ok(Output::Bytes(payload))))
///     })
///     .unwrap();
/// let server = netloop::Server::builder()
///     .listen("127.0.0.1:7100")
///     .serve(tasks.clone())?;
/// # Ok::<(), netloop::Error>(())
/// ```
#[derive(Clone)]
pub struct TaskServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for TaskServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskServer")
            .field("config", &self.inner.config)
            .field("codes", &self.registered_task_codes())
            .field("clients", &self.num_clients())
            .finish()
    }
}

/// What [`TaskServer::shutdown`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskShutdown {
    /// Clients connected when it began.
    pub clients: usize,
    /// Tasks running when it began that finished before the deadline.
    pub finished: usize,
    /// Tasks still running at the deadline (or at an earlier disconnection deadline of
    /// their client's, which a shutdown keeps), cancelled.
    pub cancelled: usize,
}

impl TaskServer {
    /// A server with no task functions yet.
    pub fn new(config: TaskConfig) -> TaskServer {
        TaskServer::with_args(config, Arc::new(()))
    }

    /// A server whose task functions all get `args` ([`Request::args`]).
    pub fn with_args(config: TaskConfig, args: Args) -> TaskServer {
        TaskServer {
            inner: Arc::new(Inner {
                pool: Pool::new("netloop-task-worker", config.workers),
                config,
                registry: RwLock::new(BTreeMap::new()),
                clients: Mutex::new(BTreeMap::new()),
                changed: Condvar::new(),
                next_client: AtomicU64::new(0),
                live_tasks: AtomicUsize::new(0),
                shutdown_cut_off: AtomicUsize::new(0),
                args,
                metrics: Arc::new(TaskMetrics::default()),
                span: tracing::info_span!("task server"),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// Binds `code` to the task function `f` (`name` is for logs); a second
    /// registration of a code replaces the first.
    ///
    /// # Errors
    /// [`ReservedCode`] for codes from `0xFFFF_FF00` up (an error, not a panic: codes
    /// often come from configuration).
    pub fn register<F>(&self, code: TaskCode, name: &str, f: F) -> Result<(), ReservedCode>
    where
        F: Fn(&mut Request<'_>) -> Result<Task, TaskError> + Send + Sync + 'static,
    {
        if code >= RESERVED_CODES {
            return Err(ReservedCode(code));
        }
        self.inner
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                code,
                Registered {
                    f: Arc::new(f),
                    name: Arc::from(name),
                },
            );
        Ok(())
    }

    /// The registered task codes, ascending.
    pub fn registered_task_codes(&self) -> Vec<TaskCode> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// The task function registered for `code`, with its name.
    pub fn task_fn(&self, code: TaskCode) -> Option<(Arc<TaskFn>, Arc<str>)> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&code)
            .map(|r| (r.f.clone(), r.name.clone()))
    }

    /// The connected clients, oldest first.
    pub fn clients(&self) -> Vec<Client> {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// How many clients are connected.
    pub fn num_clients(&self) -> usize {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Tasks assigned and not yet answered, over all clients.
    pub fn running_tasks(&self) -> usize {
        self.inner.live_tasks.load(Ordering::Acquire)
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<TaskMetrics> {
        self.inner.metrics.clone()
    }

    /// [`Client::disconnect`] for every client.
    pub fn disconnect(&self, d: Duration) {
        for c in self.clients() {
            c.disconnect(d);
        }
    }

    /// Blocks until no client is connected, or `timeout` passes; whether none is.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        while !clients.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            clients = self
                .inner
                .changed
                .wait_timeout(clients, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Serves the task protocol on a connection the caller accepted and shook hands
    /// with itself (it chose the byte order, and perhaps learnt who the client is):
    /// switches `conn` to this server, skipping the hello; bytes already buffered are
    /// read as frames. The client's task functions get `args` instead of the server's.
    /// Call it from a handler's callback.
    pub fn handle_connection(&self, conn: &mut Conn, order: ByteOrder, args: Args) {
        let mut st = ConnState {
            stage: Stage::Hello,
            client: None,
        };
        self.open(&mut st, conn, order, String::new());
        if let Some(c) = &st.client {
            c.set_args(args);
        }
        conn.switch_to(Arc::new(self.clone()), st);
    }

    /// A graceful shutdown: every client is told (GOODBYE reason 5) and read no more;
    /// running tasks get until `grace` to finish; those still running then are
    /// cancelled; then the runtime is shut down. Returns the counts.
    pub fn shutdown(&self, runtime: &ServerHandle, grace: Duration) -> TaskShutdown {
        self.inner.shutting_down.store(true, Ordering::Release);
        let clients = self.clients();
        let running = self.running_tasks();
        let deadline = Instant::now() + grace;
        for c in &clients {
            c.disconnect_with(grace, reason::SHUTTING_DOWN);
        }
        {
            let mut guard = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
            while self.running_tasks() > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                guard = self
                    .inner
                    .changed
                    .wait_timeout(guard, left.min(Duration::from_millis(50)))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        // A client's disconnect timer, due at the same instant, may have cut some off
        // already: each was counted by whichever cancelled it.
        for c in self.clients() {
            c.cut_off();
        }
        let left = self
            .inner
            .shutdown_cut_off
            .load(Ordering::Acquire)
            .min(running);
        runtime.shutdown(
            Duration::from_millis(100)
                .max(self.inner.config.write_timeout.min(Duration::from_secs(1))),
        );
        TaskShutdown {
            clients: clients.len(),
            finished: running - left,
            cancelled: left,
        }
    }

    /// The hello was good (or skipped): the client exists.
    fn open(&self, st: &mut ConnState, conn: &mut Conn, order: ByteOrder, name: String) {
        let seq = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
        let client = Client::new(
            seq,
            conn.handle(),
            order,
            name,
            (conn.peer_addr().clone(), conn.local_addr().clone()),
            &self.inner,
        );
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq, client.clone());
        st.stage = Stage::Open;
        st.client = Some(client.clone());
        conn.set_timer(WAIT, self.inner.config.wait_timeout);
        if self.inner.shutting_down.load(Ordering::Acquire) {
            client.disconnect_with(Duration::ZERO, reason::SHUTTING_DOWN);
        }
    }

    /// Takes frames off the input while the client is open.
    fn frames(&self, st: &mut ConnState, conn: &mut Conn) {
        let Some(client) = st.client.clone() else {
            return;
        };
        let order = client.shared.order;
        loop {
            if st.stage == Stage::Finishing && !conn.input().is_empty() {
                let what = "PROTOCOL.md §5.5: bytes after the client's GOODBYE";
                return self.fail(st, conn, reason::PROTOCOL_ERROR, what);
            }
            if st.stage != Stage::Open {
                let n = conn.input().len();
                conn.input().skip(n);
                return;
            }
            let head = parse_client_head(
                conn.input().as_slice(),
                order,
                self.inner.config.max_payload,
            );
            let head = match head {
                Ok(Parsed::Need(_)) => return,
                Ok(Parsed::Done(head, _)) => head,
                Err(m) => {
                    return self.fail(st, conn, reason::PROTOCOL_ERROR, &m.to_string());
                }
            };
            match head {
                ClientHead::Task { id, code, len } => {
                    if conn.input().len() < TASK_HEADER + len {
                        conn.input().want(TASK_HEADER + len);
                        return;
                    }
                    conn.input().skip(TASK_HEADER);
                    let payload = conn.input().next(len);
                    conn.set_timer(WAIT, self.inner.config.wait_timeout);
                    self.task(st, conn, &client, id, code, payload);
                }
                ClientHead::Other(kind, n) => {
                    conn.input().skip(n);
                    match kind {
                        ClientFrameKind::Cancel(id) => client.cancel(id),
                        ClientFrameKind::CancelAll => client.cancel_all(),
                        ClientFrameKind::Ping(token) => {
                            write(conn, order, &ServerFrame::Pong(token));
                        }
                        ClientFrameKind::Goodbye => {
                            // The client is done: its running tasks finish, then close.
                            st.stage = Stage::Finishing;
                            conn.cancel_timer(WAIT);
                            if client.is_idle() {
                                conn.close();
                            }
                        }
                    }
                }
            }
        }
    }

    fn task(
        &self,
        st: &mut ConnState,
        conn: &mut Conn,
        client: &Client,
        id: TaskId,
        code: TaskCode,
        payload: bytes::Bytes,
    ) {
        let order = client.shared.order;
        client.metrics().received.inc();
        if client.has_task(id) {
            let what = format!("PROTOCOL.md §5.4: task id {id} is still running");
            return self.fail(st, conn, reason::PROTOCOL_ERROR, &what);
        }
        let Some((f, name)) = self.task_fn(code) else {
            client.metrics().errors.inc();
            return write(conn, order, &ServerFrame::Error(id, UNKNOWN_TASK));
        };
        let len = payload.len();
        let args = client.args().unwrap_or_else(|| self.inner.args.clone());
        let mut req = Request {
            id,
            code,
            payload,
            client,
            args: &args,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut req)));
        let task = match outcome {
            Ok(Ok(task)) => task,
            Ok(Err(e)) => {
                client.metrics().failures.inc();
                return self.fail(st, conn, reason::TASK_FUNCTION_FAILED, &e.0);
            }
            Err(_) => {
                client.metrics().failures.inc();
                return self.fail(
                    st,
                    conn,
                    reason::TASK_FUNCTION_FAILED,
                    "the task function panicked",
                );
            }
        };
        let Some(run) = task.run else {
            client.metrics().ok.inc();
            write(conn, order, &ServerFrame::Ok(id));
            return write(conn, order, &ServerFrame::End(id));
        };
        let cancel = CancelToken::new();
        if task.inline {
            let outcome = run::call(client, id, run, &cancel);
            let outcome = match outcome {
                Ok(Ok(Output::Empty)) => {
                    client.metrics().ok.inc();
                    write(conn, order, &ServerFrame::Ok(id));
                    return write(conn, order, &ServerFrame::End(id));
                }
                Ok(Ok(Output::Bytes(b))) if b.len() <= codec::MAX_CHUNK => {
                    client.metrics().ok.inc();
                    let out = conn.output().buf_mut();
                    ServerFrame::Ok(id).write(out, order);
                    if !b.is_empty() {
                        codec::write_data_header(out, order, id, b.len());
                        if b.len() <= 4096 {
                            out.extend_from_slice(&b);
                        } else {
                            conn.output().write_bytes(b);
                        }
                    }
                    return write(conn, order, &ServerFrame::End(id));
                }
                Ok(Err(RunError::Code(code))) => {
                    client.metrics().errors.inc();
                    return write(conn, order, &ServerFrame::Error(id, code));
                }
                Ok(Err(RunError::Failed(why))) => {
                    client.metrics().failures.inc();
                    return self.fail(st, conn, reason::RUN_FUNCTION_FAILED, &why);
                }
                Err(_) => {
                    client.metrics().failures.inc();
                    return self.fail(
                        st,
                        conn,
                        reason::RUN_FUNCTION_FAILED,
                        "the run function panicked",
                    );
                }
                // A long output goes out from a worker, paced by the output mark.
                other => other,
            };
            self.inner.live_tasks.fetch_add(1, Ordering::AcqRel);
            client.assign(
                TaskMetadata {
                    id,
                    code,
                    name,
                    received: SystemTime::now(),
                    payload_len: len,
                },
                task.data,
                cancel.clone(),
            );
            let c = client.clone();
            return self
                .inner
                .pool
                .execute(Box::new(move || run::reply(c, id, outcome, cancel)));
        }
        let meta = TaskMetadata {
            id,
            code,
            name,
            received: SystemTime::now(),
            payload_len: len,
        };
        self.inner.live_tasks.fetch_add(1, Ordering::AcqRel);
        client.assign(meta, task.data, cancel.clone());
        let c = client.clone();
        self.inner
            .pool
            .execute(Box::new(move || run::run(c, id, run, cancel)));
    }

    /// Drops the client: GOODBYE with `reason`, every task cancelled, closed.
    fn fail(&self, st: &mut ConnState, conn: &mut Conn, reason: u8, text: &str) {
        tracing::debug!(reason, text, "dropping a task client");
        write(
            conn,
            order_of(st),
            &ServerFrame::Goodbye(reason, text.to_string()),
        );
        if let Some(c) = &st.client {
            c.shared.failed.store(true, Ordering::Release);
            c.cancel_all();
        }
        st.stage = Stage::Closed;
        let n = conn.input().len();
        conn.input().skip(n);
        conn.close();
    }

    /// A disconnect was asked (from any thread): GOODBYE, stop reading, close when the
    /// tasks are done or the time is up.
    fn drain(&self, st: &mut ConnState, conn: &mut Conn) {
        let Some(client) = st.client.clone() else {
            return;
        };
        let asked = *client
            .shared
            .disconnect_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((at, why)) = asked {
            if st.stage == Stage::Open {
                let text = match why {
                    reason::TIMEOUT_WAITING_FOR_TASK => "timeout waiting for task",
                    reason::SHUTTING_DOWN => "the server is shutting down",
                    _ => "graceful disconnection",
                };
                write(
                    conn,
                    client.shared.order,
                    &ServerFrame::Goodbye(why, text.into()),
                );
                st.stage = Stage::Draining;
                conn.cancel_timer(WAIT);
                let n = conn.input().len();
                conn.input().skip(n);
            }
            if st.stage == Stage::Draining {
                conn.set_timer(DISCONNECT, at.saturating_duration_since(Instant::now()));
            }
        }
        if matches!(st.stage, Stage::Draining | Stage::Finishing) && client.is_idle() {
            st.stage = Stage::Closed;
            conn.close();
        }
    }
}

/// Drops a client from a worker: GOODBYE with `reason` through its handle, tasks
/// cancelled, the connection closed.
pub(crate) fn drop_client(client: &Client, why: u8, text: &str) {
    if client
        .shared
        .failed
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    let mut out = BytesMut::new();
    ServerFrame::Goodbye(why, text.to_string()).write(&mut out, client.shared.order);
    let _ = client.shared.conn.send(out.freeze());
    client.cancel_all();
    let _ = client.shared.conn.close();
}

fn order_of(st: &ConnState) -> ByteOrder {
    st.client
        .as_ref()
        .map_or(ByteOrder::Big, |c| c.shared.order)
}

fn write(conn: &mut Conn, order: ByteOrder, frame: &ServerFrame) {
    frame.write(conn.output().buf_mut(), order);
}

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Hello,
    Open,
    Draining,
    Finishing,
    Closed,
}

/// One connection's state on its poller.
pub struct ConnState {
    stage: Stage,
    client: Option<Client>,
}

impl fmt::Debug for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnState")
            .field("stage", &self.stage)
            .field("client", &self.client)
            .finish()
    }
}

impl Handler for TaskServer {
    type State = ConnState;

    fn on_connect(&self, conn: &mut Conn) -> ConnState {
        conn.set_read_timeout(Some(self.inner.config.read_timeout));
        conn.set_write_timeout(Some(self.inner.config.write_timeout));
        // The wait timeout is this layer's own (it knows whether tasks are running).
        conn.set_idle_timeout(None);
        ConnState {
            stage: Stage::Hello,
            client: None,
        }
    }

    fn on_request(&self, st: &mut ConnState, conn: &mut Conn) {
        if st.stage == Stage::Hello {
            match Hello::parse(conn.input().as_slice()) {
                Ok(Parsed::Need(_)) => return,
                Ok(Parsed::Done(hello, n)) => {
                    conn.input().skip(n);
                    codec::write_welcome(conn.output().buf_mut(), hello.order, status::ACCEPTED);
                    self.open(st, conn, hello.order, hello.name);
                    self.drain(st, conn);
                }
                Err(bad) => {
                    let code = match bad {
                        BadHello::NotThisProtocol => None,
                        BadHello::Version => Some(status::VERSION),
                        BadHello::Malformed => Some(status::MALFORMED),
                    };
                    if let Some(code) = code {
                        let order = match conn.input().as_slice().get(4) {
                            Some(b'L') => ByteOrder::Little,
                            _ => ByteOrder::Big,
                        };
                        codec::write_welcome(conn.output().buf_mut(), order, code);
                    }
                    st.stage = Stage::Closed;
                    let n = conn.input().len();
                    conn.input().skip(n);
                    conn.close();
                    return;
                }
            }
        }
        self.frames(st, conn);
    }

    fn on_wake(&self, st: &mut ConnState, conn: &mut Conn) {
        self.drain(st, conn);
    }

    fn on_timer(&self, st: &mut ConnState, conn: &mut Conn, key: TimerKey) {
        match key {
            WAIT if st.stage == Stage::Open => {
                let Some(client) = st.client.clone() else {
                    return;
                };
                if client.is_idle() {
                    client.disconnect_with(Duration::ZERO, reason::TIMEOUT_WAITING_FOR_TASK);
                    self.drain(st, conn);
                } else {
                    conn.set_timer(WAIT, self.inner.config.wait_timeout);
                }
            }
            DISCONNECT if st.stage == Stage::Draining => {
                // Time is up: tasks still running are cut off, their replies never sent
                // (the GOODBYE already was the last frame).
                if let Some(c) = &st.client {
                    c.shared.failed.store(true, Ordering::Release);
                    c.cut_off();
                }
                st.stage = Stage::Closed;
                conn.close();
            }
            _ => {}
        }
    }

    fn on_close(&self, st: ConnState, reason: CloseReason) {
        if let Some(client) = st.client {
            tracing::debug!(client = %client, ?reason, "task client closed");
            client.shared.failed.store(true, Ordering::Release);
            client.cancel_all();
            let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.remove(&client.shared.seq);
            self.inner.changed.notify_all();
        }
    }
}
