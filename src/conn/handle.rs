//! [`ConnHandle`]: sending to and closing a connection from any thread.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Output;
use crate::driver::Token;
use crate::poller::{Command, Remote};
use crate::{Addr, Error};

/// The part of a connection other threads may touch. One per connection, never reused:
/// a handle to a closed connection can only ever see "closed".
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    /// Set by the owning poller when it adopts the connection (before it processes any
    /// command that names it).
    token: AtomicU64,
    pub(crate) poller: usize,
    pub(crate) peer: Addr,
    pub(crate) local: Addr,
    /// False once the peer hung up or a close began.
    pub(crate) active: AtomicBool,
    /// True once the socket is closed; sends fail from then on.
    pub(crate) closed: AtomicBool,
    pub(crate) close_requested: AtomicBool,
    /// Output queued by the poller but not yet sent, published for the high-water check.
    pub(crate) output_pending: AtomicUsize,
    outbox: Mutex<Outbox>,
    outbox_bytes: AtomicUsize,
    /// A Notify command is already queued for this connection.
    notified: AtomicBool,
    /// Threads blocked in [`ConnHandle::wait_writable`].
    waiters: AtomicUsize,
    writable: Condvar,
    high_water: usize,
    remote: Arc<Remote>,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Bytes>,
    bytes: usize,
}

impl fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnShared")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("poller", &self.poller)
            .finish_non_exhaustive()
    }
}

impl ConnShared {
    pub(crate) fn new(
        id: u64,
        poller: usize,
        peer: Addr,
        local: Addr,
        high_water: usize,
        remote: Arc<Remote>,
    ) -> ConnShared {
        ConnShared {
            id,
            token: AtomicU64::new(u64::MAX),
            poller,
            peer,
            local,
            active: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            output_pending: AtomicUsize::new(0),
            outbox: Mutex::new(Outbox::default()),
            outbox_bytes: AtomicUsize::new(0),
            notified: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            writable: Condvar::new(),
            high_water,
            remote,
        }
    }

    /// A new connection's shared half, to be adopted by the poller behind `remote`.
    pub(crate) fn create(
        remote: &Arc<Remote>,
        peer: Addr,
        local: Addr,
        high_water: usize,
    ) -> Arc<ConnShared> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Arc::new(ConnShared::new(
            id,
            remote.index,
            peer,
            local,
            high_water,
            remote.clone(),
        ))
    }

    pub(crate) fn token(&self) -> Token {
        Token(self.token.load(Ordering::Relaxed))
    }

    pub(crate) fn set_token(&self, token: Token) {
        self.token.store(token.0, Ordering::Relaxed);
    }

    pub(crate) fn has_outbox(&self) -> bool {
        self.outbox_bytes.load(Ordering::Acquire) > 0
    }

    pub(crate) fn drain_outbox_into(&self, output: &mut Output) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        for data in outbox.queue.drain(..) {
            output.write_bytes(data);
        }
        outbox.bytes = 0;
        self.outbox_bytes.store(0, Ordering::Release);
    }

    /// Publishes how much output the poller has queued (for the high-water check) and
    /// wakes threads waiting for room.
    pub(crate) fn publish_output_pending(&self, bytes: usize) {
        self.output_pending.store(bytes, Ordering::Release);
        if self.waiters.load(Ordering::Acquire) > 0 {
            let _outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
            self.writable.notify_all();
        }
    }

    /// Marks the connection closed and drops anything still queued for it.
    pub(crate) fn mark_closed(&self) {
        self.active.store(false, Ordering::Release);
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Ordering::Release);
        outbox.queue.clear();
        outbox.bytes = 0;
        self.outbox_bytes.store(0, Ordering::Release);
        self.writable.notify_all();
    }

    /// The poller took this connection's Notify command; later sends notify again.
    pub(crate) fn clear_notified(&self) {
        self.notified.store(false, Ordering::Release);
    }

    fn notify(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.remote.push(Command::Notify(self.clone()));
        }
    }
}

/// Sends to or closes a connection from any thread. Cheap to clone.
///
/// A handle names one connection forever: once that connection has closed, every call
/// returns [`Error::Closed`], even if its poller slot now holds another connection.
#[derive(Clone)]
pub struct ConnHandle {
    shared: Arc<ConnShared>,
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl ConnHandle {
    pub(crate) fn new(shared: Arc<ConnShared>) -> ConnHandle {
        ConnHandle { shared }
    }

    /// Queues `data` for sending and wakes the owning poller.
    ///
    /// # Errors
    /// [`Error::Closed`] if the connection is closed or closing; [`Error::Full`] if the
    /// bytes already queued for it (here and in its output) reached the output high-water
    /// mark ([`Builder::output_high_water`](crate::Builder::output_high_water)). A message
    /// larger than the mark is still accepted when nothing is queued, so it can never be
    /// refused forever.
    pub fn send(&self, data: Bytes) -> Result<(), Error> {
        let s = &self.shared;
        {
            let mut outbox = s.outbox.lock().unwrap_or_else(|p| p.into_inner());
            if s.closed.load(Ordering::Acquire) || s.close_requested.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let queued = outbox.bytes + s.output_pending.load(Ordering::Acquire);
            if queued > 0 && queued + data.len() > s.high_water {
                return Err(Error::Full);
            }
            outbox.bytes += data.len();
            s.outbox_bytes.store(outbox.bytes, Ordering::Release);
            outbox.queue.push_back(data);
        }
        s.notify();
        Ok(())
    }

    /// Blocks until the bytes queued for this connection are below half the output
    /// high-water mark (so a [`send`](ConnHandle::send) of a moderate message fits), or
    /// `timeout` passes. The poller wakes waiters as the peer drains its output.
    ///
    /// # Errors
    /// [`Error::Closed`] if the connection closes meanwhile; [`Error::Full`] if it is
    /// still above the mark when `timeout` passes.
    pub fn wait_writable(&self, timeout: Duration) -> Result<(), Error> {
        let s = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut outbox = s.outbox.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let queued = outbox.bytes + s.output_pending.load(Ordering::Acquire);
            if queued < s.high_water / 2 {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Full);
            }
            s.waiters.fetch_add(1, Ordering::AcqRel);
            outbox = s
                .writable
                .wait_timeout(outbox, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            s.waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Closes the connection once the output queued before this call has been sent.
    ///
    /// # Errors
    /// [`Error::Closed`] if it is already closed or closing.
    pub fn close(&self) -> Result<(), Error> {
        let s = &self.shared;
        if s.closed.load(Ordering::Acquire) || s.close_requested.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        s.active.store(false, Ordering::Release);
        s.notify();
        Ok(())
    }

    /// The connection's id (the same as [`Conn::id`](crate::Conn::id)).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The remote end's address.
    pub fn peer_addr(&self) -> &Addr {
        &self.shared.peer
    }

    /// The local end's address.
    pub fn local_addr(&self) -> &Addr {
        &self.shared.local
    }

    /// `false` once the peer has hung up or the connection is closing.
    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::Acquire)
    }

    /// `true` once the connection's socket is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}
