//! The client library: one connection to a task server carrying many tasks at once.
//!
//! [`TaskClient::connect`] dials on a netloop runtime (a client runtime, or a server's),
//! says hello and waits for the welcome. [`TaskClient::submit`] frames a TASK on the
//! calling thread (the payload sent without a copy) and returns a [`Pending`] reply to
//! wait for, read as a stream, or cancel. Replies are parsed on the connection's poller
//! and handed to the waiting thread; a DATA chunk is a zero-copy view of the input.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::codec::{
    self, parse_welcome, status, ByteOrder, ClientFrame, Hello, Parsed, ServerFrame, MAX_CHUNK,
};
use crate::{CloseReason, Conn, ConnHandle, Dialer, Handler, IntoTarget};

/// Why a task or a connection failed, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be made.
    Connect(String),
    /// The server refused the hello with this status (`PROTOCOL.md` §2.2).
    Refused(u8),
    /// The task failed with this error code (§4.2; 255: no such task code).
    Server(u8),
    /// The task was cancelled (§4.3).
    Cancelled,
    /// The server closed the connection: its GOODBYE reason and text, if it sent one.
    Disconnected {
        /// The GOODBYE reason (§4.6), if there was one.
        reason: Option<u8>,
        /// Its text, or what ended the connection.
        text: String,
    },
    /// The server broke the protocol: what was wrong.
    Protocol(String),
    /// The wait passed its timeout (the task goes on; cancel it if it is not wanted).
    Timeout,
    /// The connection's output stayed full for the send timeout.
    Full,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Refused(s) => write!(f, "the server refused the hello (status {s})"),
            ClientError::Server(c) => write!(f, "the task failed with error code {c}"),
            ClientError::Cancelled => f.write_str("the task was cancelled"),
            ClientError::Disconnected { reason, text } => match reason {
                Some(r) => write!(f, "the server closed the connection (reason {r}: {text})"),
                None => write!(f, "the connection closed ({text})"),
            },
            ClientError::Protocol(e) => write!(f, "the server broke the protocol: {e}"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Full => f.write_str("the connection's output stayed full"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One task's reply as it arrives.
#[derive(Default)]
struct Reply {
    ok: bool,
    chunks: VecDeque<Bytes>,
    end: Option<Result<(), ClientError>>,
}

struct Slot {
    reply: Mutex<Reply>,
    changed: Condvar,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Reply> {
        self.reply.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Reply)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }
}

/// Where the connection is.
enum Phase {
    Connecting,
    Open,
    Closed(ClientError),
}

struct Shared {
    order: ByteOrder,
    conn: OnceLock<ConnHandle>,
    phase: Mutex<Phase>,
    changed: Condvar,
    slots: Mutex<HashMap<u32, Arc<Slot>>>,
    next_id: AtomicU32,
    pings: Mutex<HashMap<u64, Arc<Slot>>>,
    next_ping: AtomicU64,
    send_timeout: Duration,
}

impl Shared {
    fn close_all(&self, error: ClientError) {
        {
            let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*phase, Phase::Closed(_)) {
                *phase = Phase::Closed(error.clone());
            }
            self.changed.notify_all();
        }
        let slots: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        let pings: Vec<Arc<Slot>> = self
            .pings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in slots.iter().chain(&pings) {
            s.update(|r| {
                r.end.get_or_insert(Err(error.clone()));
            });
        }
    }

    fn closed_error(&self) -> Option<ClientError> {
        match &*self.phase.lock().unwrap_or_else(|p| p.into_inner()) {
            Phase::Closed(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// The terminal frame of task `id`.
    fn end(&self, id: u32, result: Result<(), ClientError>) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(slot) = slot {
            slot.update(|r| r.end = Some(result));
        }
    }

    fn slot(&self, id: u32) -> Option<Arc<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
}

/// Settings of a [`TaskClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    order: ByteOrder,
    name: String,
    connect_timeout: Duration,
    send_timeout: Duration,
}

impl Default for ClientOptions {
    /// Little-endian, no name, 10 s to connect and be welcomed, 5 s for a send to find
    /// room.
    fn default() -> ClientOptions {
        ClientOptions {
            order: ByteOrder::Little,
            name: String::new(),
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(5),
        }
    }
}

impl ClientOptions {
    /// The connection's byte order. Default: little-endian.
    pub fn byte_order(mut self, order: ByteOrder) -> ClientOptions {
        self.order = order;
        self
    }

    /// The name the hello gives (at most 255 bytes; longer is cut at a character
    /// boundary).
    pub fn name(mut self, name: &str) -> ClientOptions {
        let mut end = name.len().min(255);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        self.name = name[..end].to_string();
        self
    }

    /// How long connecting and the welcome may take. Default: 10 s.
    pub fn connect_timeout(mut self, t: Duration) -> ClientOptions {
        self.connect_timeout = t;
        self
    }

    /// How long a submit waits for room in a full output. Default: 5 s.
    pub fn send_timeout(mut self, t: Duration) -> ClientOptions {
        self.send_timeout = t;
        self
    }
}

/// A connection to a task server. Cheap to clone, `Send + Sync`: any number of threads
/// submit on it at once.
#[derive(Clone)]
pub struct TaskClient {
    shared: Arc<Shared>,
}

impl fmt::Debug for TaskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskClient")
            .field("order", &self.shared.order)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl TaskClient {
    /// Connects to `target` through `dialer`, says hello and waits for the welcome.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use netloop::task::client::{ClientOptions, TaskClient};
    ///
    /// let runtime = netloop::Server::builder().pollers(1).start()?;
    /// let client = TaskClient::connect(&runtime.dialer(), "127.0.0.1:7100", ClientOptions::default())?;
    /// let reply = client.call(1, netloop::Bytes::from_static(b"hi"), Duration::from_secs(5))?;
    /// assert_eq!(&reply[..], b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Connect`], [`ClientError::Refused`], [`ClientError::Timeout`].
    pub fn connect(
        dialer: &Dialer,
        target: impl IntoTarget,
        options: ClientOptions,
    ) -> Result<TaskClient, ClientError> {
        let shared = Arc::new(Shared {
            order: options.order,
            conn: OnceLock::new(),
            phase: Mutex::new(Phase::Connecting),
            changed: Condvar::new(),
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            pings: Mutex::new(HashMap::new()),
            next_ping: AtomicU64::new(1),
            send_timeout: options.send_timeout,
        });
        let link = Link {
            shared: shared.clone(),
            name: options.name,
        };
        let conn = dialer
            .clone()
            .connect_timeout(options.connect_timeout)
            .dial(target, link)
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let _ = shared.conn.set(conn.clone());
        let deadline = Instant::now() + options.connect_timeout;
        let mut phase = shared.phase.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*phase {
                Phase::Open => break,
                Phase::Closed(e) => return Err(e.clone()),
                Phase::Connecting => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(phase);
                let _ = conn.close();
                return Err(ClientError::Timeout);
            }
            phase = shared
                .changed
                .wait_timeout(phase, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(phase);
        Ok(TaskClient { shared })
    }

    fn conn(&self) -> &ConnHandle {
        self.shared
            .conn
            .get()
            .expect("set before the client is returned")
    }

    /// Sends `frames`, waiting up to the send timeout for room.
    fn send(&self, frames: &[Bytes]) -> Result<(), ClientError> {
        let conn = self.conn();
        loop {
            match conn.send_all(frames) {
                Ok(()) => return Ok(()),
                Err(crate::Error::Full) => {
                    if conn.wait_writable(self.shared.send_timeout).is_err() {
                        return Err(self.shared.closed_error().unwrap_or(ClientError::Full));
                    }
                }
                Err(_) => {
                    return Err(self
                        .shared
                        .closed_error()
                        .unwrap_or(ClientError::Disconnected {
                            reason: None,
                            text: "closed".into(),
                        }))
                }
            }
        }
    }

    /// Submits a task: the function registered for `code` runs with `payload` (sent
    /// without a copy). Returns at once with the reply to wait for.
    ///
    /// # Errors
    /// The connection's error if it is closed; [`ClientError::Full`].
    pub fn submit(&self, code: u32, payload: Bytes) -> Result<Pending, ClientError> {
        if let Some(e) = self.shared.closed_error() {
            return Err(e);
        }
        let slot = Arc::new(Slot {
            reply: Mutex::new(Reply::default()),
            changed: Condvar::new(),
        });
        let id = {
            let mut slots = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
            let mut id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            while slots.contains_key(&id) {
                id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            }
            slots.insert(id, slot.clone());
            id
        };
        let mut header = BytesMut::with_capacity(codec::TASK_HEADER);
        codec::write_task_header(&mut header, self.shared.order, id, code, payload.len());
        let sent = if payload.len() <= 4096 {
            header.extend_from_slice(&payload);
            self.send(&[header.freeze()])
        } else {
            self.send(&[header.freeze(), payload])
        };
        if let Err(e) = sent {
            self.shared.end(id, Err(e.clone()));
            return Err(e);
        }
        Ok(Pending {
            id,
            slot,
            client: self.clone(),
        })
    }

    /// Submits a task and waits for its whole output.
    ///
    /// # Errors
    /// As [`submit`](TaskClient::submit) and [`Pending::wait`].
    pub fn call(&self, code: u32, payload: Bytes, timeout: Duration) -> Result<Bytes, ClientError> {
        self.submit(code, payload)?.wait(timeout)
    }

    /// Sends a PING and waits for its PONG; the round trip.
    ///
    /// # Errors
    /// [`ClientError::Timeout`], or the connection's error.
    pub fn ping(&self, timeout: Duration) -> Result<Duration, ClientError> {
        let token = self.shared.next_ping.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            reply: Mutex::new(Reply::default()),
            changed: Condvar::new(),
        });
        self.shared
            .pings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, slot.clone());
        let start = Instant::now();
        let mut out = BytesMut::new();
        ClientFrame::Ping(token).write(&mut out, self.shared.order);
        self.send(&[out.freeze()])?;
        let result = wait_end(&slot, timeout);
        self.shared
            .pings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
        result.map(|()| start.elapsed())
    }

    /// Cancels every task of this connection (CANCEL_ALL).
    pub fn cancel_all(&self) {
        let mut out = BytesMut::new();
        ClientFrame::CancelAll.write(&mut out, self.shared.order);
        let _ = self.send(&[out.freeze()]);
    }

    /// Says GOODBYE: the server finishes the running tasks, sends their replies and
    /// closes. Nothing more can be submitted.
    pub fn goodbye(&self) {
        let mut out = BytesMut::new();
        ClientFrame::Goodbye.write(&mut out, self.shared.order);
        let _ = self.send(&[out.freeze()]);
    }

    /// Closes the connection now; waiting replies fail.
    pub fn close(&self) {
        let _ = self.conn().close();
    }

    /// Tasks submitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.shared
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The connection's byte order.
    pub fn byte_order(&self) -> ByteOrder {
        self.shared.order
    }

    /// Whether the connection is closed, and why.
    pub fn closed(&self) -> Option<ClientError> {
        self.shared.closed_error()
    }
}

fn wait_end(slot: &Slot, timeout: Duration) -> Result<(), ClientError> {
    let deadline = Instant::now() + timeout;
    let mut r = slot.lock();
    loop {
        if let Some(end) = &r.end {
            return end.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout);
        }
        r = slot
            .changed
            .wait_timeout(r, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// A submitted task's reply.
pub struct Pending {
    id: u32,
    slot: Arc<Slot>,
    client: TaskClient,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").field("id", &self.id).finish()
    }
}

impl Pending {
    /// The task id the client gave it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits for the whole output (all DATA up to END).
    ///
    /// # Errors
    /// [`ClientError::Server`] (ERROR), [`ClientError::Cancelled`], the connection's
    /// error, [`ClientError::Timeout`].
    pub fn wait(self, timeout: Duration) -> Result<Bytes, ClientError> {
        wait_end(&self.slot, timeout)?;
        let mut r = self.slot.lock();
        match r.chunks.len() {
            0 => Ok(Bytes::new()),
            1 => Ok(r.chunks.pop_front().expect("one")),
            _ => {
                let mut all = BytesMut::with_capacity(r.chunks.iter().map(Bytes::len).sum());
                for c in r.chunks.drain(..) {
                    all.extend_from_slice(&c);
                }
                Ok(all.freeze())
            }
        }
    }

    /// The next chunk of a streamed output, `Ok(None)` once it has ended.
    ///
    /// # Errors
    /// As [`wait`](Pending::wait), when the task ends that way.
    pub fn next_chunk(&self, timeout: Duration) -> Result<Option<Bytes>, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut r = self.slot.lock();
        loop {
            if let Some(c) = r.chunks.pop_front() {
                return Ok(Some(c));
            }
            match &r.end {
                Some(Ok(())) => return Ok(None),
                Some(Err(e)) => return Err(e.clone()),
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout);
            }
            r = self
                .slot
                .changed
                .wait_timeout(r, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Whether the server answered OK (the output is coming or came).
    pub fn is_ok(&self) -> bool {
        self.slot.lock().ok
    }

    /// Asks the server to cancel the task (CANCEL); its reply becomes
    /// [`ClientError::Cancelled`] unless it ended first.
    pub fn cancel(&self) {
        let mut out = BytesMut::new();
        ClientFrame::Cancel(self.id).write(&mut out, self.client.shared.order);
        let _ = self.client.send(&[out.freeze()]);
    }
}

/// The connection's core handler on the client runtime.
struct Link {
    shared: Arc<Shared>,
    name: String,
}

struct LinkState {
    welcomed: bool,
    goodbye: Option<(u8, String)>,
}

impl Link {
    fn frames(&self, st: &mut LinkState, conn: &mut Conn) {
        let order = self.shared.order;
        loop {
            let buf = conn.input().as_slice();
            if buf.first() == Some(&0x03) {
                // DATA: the chunk is taken from the input without a copy.
                if buf.len() < 9 {
                    return;
                }
                let u32_at = |i: usize| match order {
                    ByteOrder::Little => u32::from_le_bytes(buf[i..i + 4].try_into().expect("4")),
                    ByteOrder::Big => u32::from_be_bytes(buf[i..i + 4].try_into().expect("4")),
                };
                let (id, len) = (u32_at(1), u32_at(5) as usize);
                if len == 0 || len > MAX_CHUNK {
                    return self.broken(conn, format!("a DATA chunk of {len} bytes"));
                }
                if buf.len() < 9 + len {
                    conn.input().want(9 + len);
                    return;
                }
                conn.input().skip(9);
                let chunk = conn.input().next(len);
                if let Some(slot) = self.shared.slot(id) {
                    slot.update(|r| r.chunks.push_back(chunk));
                }
                continue;
            }
            let (frame, n) = match ServerFrame::parse(buf, order) {
                Ok(Parsed::Need(_)) => return,
                Ok(Parsed::Done(f, n)) => (f, n),
                Err(e) => return self.broken(conn, e.to_string()),
            };
            conn.input().skip(n);
            match frame {
                ServerFrame::Ok(id) => {
                    if let Some(slot) = self.shared.slot(id) {
                        slot.update(|r| r.ok = true);
                    }
                }
                ServerFrame::Error(id, code) => self.shared.end(id, Err(ClientError::Server(code))),
                ServerFrame::End(id) => self.shared.end(id, Ok(())),
                ServerFrame::Cancelled(id) => self.shared.end(id, Err(ClientError::Cancelled)),
                ServerFrame::Pong(token) => {
                    let slot = self
                        .shared
                        .pings
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&token)
                        .cloned();
                    if let Some(slot) = slot {
                        slot.update(|r| r.end = Some(Ok(())));
                    }
                }
                ServerFrame::Goodbye(why, text) => {
                    tracing::debug!(reason = why, %text, "the task server says goodbye");
                    st.goodbye = Some((why, text));
                }
                ServerFrame::Data(..) => unreachable!("taken above"),
            }
        }
    }

    fn broken(&self, conn: &mut Conn, what: String) {
        self.shared.close_all(ClientError::Protocol(what));
        let n = conn.input().len();
        conn.input().skip(n);
        conn.close();
    }
}

impl Handler for Link {
    type State = LinkState;

    fn on_connect(&self, conn: &mut Conn) -> LinkState {
        conn.set_read_timeout(None);
        conn.set_idle_timeout(None);
        let hello = Hello {
            order: self.shared.order,
            version: codec::VERSION,
            name: self.name.clone(),
        };
        hello
            .write(conn.output().buf_mut())
            .expect("the name was cut to 255 bytes");
        LinkState {
            welcomed: false,
            goodbye: None,
        }
    }

    fn on_request(&self, st: &mut LinkState, conn: &mut Conn) {
        if !st.welcomed {
            match parse_welcome(conn.input().as_slice(), self.shared.order) {
                Ok(Parsed::Need(_)) => return,
                Ok(Parsed::Done((code, _version), n)) => {
                    conn.input().skip(n);
                    if code != status::ACCEPTED {
                        self.shared.close_all(ClientError::Refused(code));
                        return conn.close();
                    }
                    st.welcomed = true;
                    let mut phase = self.shared.phase.lock().unwrap_or_else(|p| p.into_inner());
                    *phase = Phase::Open;
                    self.shared.changed.notify_all();
                }
                Err(e) => return self.broken(conn, e.to_string()),
            }
        }
        self.frames(st, conn);
    }

    fn on_connect_failed(&self, _conn: &ConnHandle, error: &std::io::Error) {
        self.shared
            .close_all(ClientError::Connect(error.to_string()));
    }

    fn on_close(&self, st: LinkState, why: CloseReason) {
        let error = match st.goodbye {
            Some((r, text)) => ClientError::Disconnected {
                reason: Some(r),
                text,
            },
            None => ClientError::Disconnected {
                reason: None,
                text: format!("{why:?}"),
            },
        };
        // Tasks not answered by now never will be: they end with the reason.
        self.shared.close_all(error);
    }
}
