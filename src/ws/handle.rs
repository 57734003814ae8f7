//! [`WsHandle`]: sending to a WebSocket connection from any thread.
//!
//! An uncompressed message is framed on the sending thread and queued as its header
//! and its payload in one [`ConnHandle::send_all`], so frames from different threads
//! never interleave and the payload is not copied. With permessage-deflate, the
//! compressor belongs to the connection, so the message is queued for the connection's
//! own turn ([`ConnHandle::wake`]) and compressed there. Either way the bytes queued for
//! the connection are held to [`Config::max_backpressure`](super::Config::max_backpressure)
//! by the [`Backpressure`] policy.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::codec::frame_header;
use super::config::Backpressure;
use super::deflate::DeflateParams;
use super::frame::OpCode;
use super::hub::Topic;
use super::message::Message;
use crate::{ConnHandle, Error};

/// Why a [`WsHandle`] send did not queue the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed or its closing handshake has begun.
    Closed,
    /// The connection was over its backpressure limit and the policy is
    /// [`Backpressure::Drop`]: the message was skipped (and counted).
    Dropped,
    /// The connection stayed over its backpressure limit for the whole
    /// [`Backpressure::Wait`] time.
    Full,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "the WebSocket connection is closed or closing",
            SendError::Dropped => "dropped: the connection is over its backpressure limit",
            SendError::Full => "the connection stayed over its backpressure limit",
        })
    }
}

impl std::error::Error for SendError {}

/// Something another thread asked of the connection, done on its turn.
pub(crate) enum Outgoing {
    Message(Message),
    Ping(Bytes),
    Close(u16, String),
}

/// What a connection's handles share with it.
pub(crate) struct WsShared {
    conn: ConnHandle,
    /// Messages go through the connection's turn (its compressor), not straight out.
    compressed: bool,
    max_backpressure: usize,
    policy: Backpressure,
    queue: Mutex<VecDeque<Outgoing>>,
    queued_bytes: AtomicUsize,
    dropped: AtomicU64,
    /// The closing handshake began (or is over): sends are refused.
    closing: AtomicBool,
    /// The connection's permessage-deflate parameters, if it negotiated it (which
    /// shared frame a hub sends it).
    pub(crate) deflate: Option<DeflateParams>,
    /// The hub topics it is subscribed to; closed (`None`) once the connection closes,
    /// after leaving them all.
    subscriptions: Mutex<Option<Vec<Arc<Topic>>>>,
}

impl WsShared {
    pub(crate) fn new(
        conn: ConnHandle,
        deflate: Option<DeflateParams>,
        max_backpressure: usize,
        policy: Backpressure,
    ) -> WsShared {
        WsShared {
            conn,
            compressed: deflate.is_some(),
            max_backpressure,
            policy,
            queue: Mutex::new(VecDeque::new()),
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            deflate,
            subscriptions: Mutex::new(Some(Vec::new())),
        }
    }

    /// The closing handshake began or the connection ended: sends are refused and the
    /// connection leaves every hub topic.
    pub(crate) fn mark_closing(&self) {
        self.closing.store(true, Ordering::Release);
        let topics = self
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for topic in topics.into_iter().flatten() {
            topic.remove(self);
        }
    }

    /// Records a subscription; `false` if the connection is closing (it takes no more)
    /// or was subscribed already. `add` joins the topic under the same lock, so a close
    /// cannot slip between the two and leave a member behind.
    pub(crate) fn subscribe(&self, topic: &Arc<Topic>, add: impl FnOnce() -> bool) -> bool {
        let mut subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = subs.as_mut() else {
            return false;
        };
        if self.closing.load(Ordering::Acquire) || list.iter().any(|t| Arc::ptr_eq(t, topic)) {
            return false;
        }
        if !add() {
            return false;
        }
        list.push(topic.clone());
        true
    }

    /// Forgets a subscription; whether there was one.
    pub(crate) fn unsubscribe(&self, topic: &Arc<Topic>) -> bool {
        let mut subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = subs.as_mut() else {
            return false;
        };
        match list.iter().position(|t| Arc::ptr_eq(t, topic)) {
            Some(i) => {
                list.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Messages dropped for this connection: by its own sends' policy, and by hub
    /// publishes while it was over its limit.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.conn.dropped()
    }

    pub(crate) fn conn(&self) -> &ConnHandle {
        &self.conn
    }

    pub(crate) fn max_backpressure(&self) -> usize {
        self.max_backpressure
    }

    /// What other threads queued for the connection's turn.
    pub(crate) fn take_queue(&self) -> VecDeque<Outgoing> {
        let taken = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        self.queued_bytes.store(0, Ordering::Release);
        taken
    }

    fn buffered(&self) -> usize {
        self.conn.queued() + self.queued_bytes.load(Ordering::Acquire)
    }

    /// Queues for the connection's own turn.
    fn enqueue(&self, item: Outgoing, len: usize) -> Result<(), SendError> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(item);
        self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        self.conn.wake().map_err(|_| SendError::Closed)
    }
}

/// Sends to one WebSocket connection from any thread. Cheap to clone. From
/// [`WsConn::handle`](super::WsConn::handle).
///
/// ```no_run
/// # fn demo(handle: netloop::ws::WsHandle) {
/// std::thread::spawn(move || {
///     for n in 0..10 {
///         if handle.send_text(&format!("tick {n}")).is_err() {
///             break; // closed, or dropped under backpressure
///         }
///     }
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct WsHandle {
    shared: Arc<WsShared>,
}

impl fmt::Debug for WsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsHandle")
            .field("id", &self.shared.conn.id())
            .field("open", &self.is_open())
            .finish()
    }
}

impl WsHandle {
    pub(crate) fn new(shared: Arc<WsShared>) -> WsHandle {
        WsHandle { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<WsShared> {
        &self.shared
    }

    /// Sends a message: queued behind whatever the connection has queued, never
    /// interleaved with other senders' frames.
    ///
    /// # Errors
    /// [`SendError::Closed`] once the connection is closing or closed; over the
    /// backpressure limit, what the policy says ([`SendError::Dropped`],
    /// [`SendError::Closed`] after closing it, or [`SendError::Full`] after waiting).
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), SendError> {
        let msg = msg.into();
        let s = &self.shared;
        if s.closing.load(Ordering::Acquire) || s.conn.is_closed() {
            return Err(SendError::Closed);
        }
        self.make_room(msg.len())?;
        if s.compressed {
            let len = msg.len();
            return s.enqueue(Outgoing::Message(msg), len);
        }
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.into_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        let header = frame_header(opcode, false, payload.len());
        match s.conn.send_all(&[header, payload]) {
            Ok(()) => Ok(()),
            Err(Error::Full) => self.over_limit(),
            Err(_) => Err(SendError::Closed),
        }
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// As [`send`](WsHandle::send).
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send(Message::from(text))
    }

    /// Sends a binary message without copying it.
    ///
    /// # Errors
    /// As [`send`](WsHandle::send).
    pub fn send_binary(&self, data: Bytes) -> Result<(), SendError> {
        self.send(Message::Binary(data))
    }

    /// Sends a ping (at most 125 bytes of payload).
    ///
    /// # Errors
    /// [`SendError::Closed`] once the connection is closing or closed.
    pub fn ping(&self, payload: Bytes) -> Result<(), SendError> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        self.shared.enqueue(Outgoing::Ping(payload), 0)
    }

    /// Starts the closing handshake, on the connection's own turn (see
    /// [`WsConn::close`](super::WsConn::close)).
    ///
    /// # Errors
    /// [`SendError::Closed`] if it is already closing or closed.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        self.shared
            .enqueue(Outgoing::Close(code, reason.to_string()), 0)
    }

    /// Bytes queued for the connection and not yet taken by its socket.
    pub fn buffered_amount(&self) -> usize {
        self.shared.buffered()
    }

    /// Messages dropped for this connection so far ([`Backpressure::Drop`]).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped()
    }

    /// Whether the connection is open (not closing or closed).
    pub fn is_open(&self) -> bool {
        !self.shared.closing.load(Ordering::Acquire) && !self.shared.conn.is_closed()
    }

    /// The connection's id (the same as [`WsConn::id`](super::WsConn::id)).
    pub fn id(&self) -> u64 {
        self.shared.conn.id()
    }

    /// Applies the policy if a message of `len` bytes would take the connection past
    /// its limit.
    fn make_room(&self, len: usize) -> Result<(), SendError> {
        let s = &self.shared;
        let buffered = s.buffered();
        if buffered == 0 || buffered + len <= s.max_backpressure {
            return Ok(());
        }
        match s.policy {
            Backpressure::Wait(timeout) => {
                let deadline = Instant::now() + timeout;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // The core wakes waiters as the output drains; the queue for the
                    // connection's turn drains on that turn.
                    let _ = s.conn.wait_writable(left.min(Duration::from_millis(50)));
                    let buffered = s.buffered();
                    if buffered == 0 || buffered + len <= s.max_backpressure {
                        return Ok(());
                    }
                    if s.conn.is_closed() {
                        return Err(SendError::Closed);
                    }
                    if left.is_zero() {
                        return Err(SendError::Full);
                    }
                }
            }
            _ => self.over_limit(),
        }
    }

    /// The connection is over its limit: drop or close, as the policy says.
    fn over_limit(&self) -> Result<(), SendError> {
        let s = &self.shared;
        match s.policy {
            Backpressure::Close => {
                s.mark_closing();
                let _ = s.conn.close();
                Err(SendError::Closed)
            }
            Backpressure::Wait(_) => Err(SendError::Full),
            _ => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                // on_dropped runs on the connection's turn.
                let _ = s.conn.wake();
                Err(SendError::Dropped)
            }
        }
    }
}
