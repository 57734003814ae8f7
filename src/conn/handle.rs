//! [`ConnHandle`]: sending to, waking and closing a connection from any thread.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Output;
use crate::driver::Token;
use crate::poller::{Command, Remote};
use crate::{Addr, Error};

/// Flags of [`ConnShared::flags`]. Each has one writer side: the requests (`CLOSE`,
/// `WAKE`, `DRAIN`, `NOTIFIED`) are set by any thread and taken by the owning poller; the
/// facts (`PEER_GONE`, `CLOSED`, `OPEN`) are set by the owning poller only.
mod flag {
    /// A close was asked for, by the handler ([`Conn::close`](crate::Conn::close)) or a
    /// handle.
    pub(super) const CLOSE: u8 = 1;
    /// [`ConnHandle::wake`] was called and `on_wake` has not run since.
    pub(super) const WAKE: u8 = 1 << 1;
    /// A send was refused with `Full`: `on_drain` is owed once there is room.
    pub(super) const DRAIN: u8 = 1 << 2;
    /// A `Notify` command for this connection is queued on its poller.
    pub(super) const NOTIFIED: u8 = 1 << 3;
    /// The peer hung up.
    pub(super) const PEER_GONE: u8 = 1 << 4;
    /// The socket is closed (or a dial failed); nothing reaches it any more.
    pub(super) const CLOSED: u8 = 1 << 5;
    /// Connected: `on_connect` has been scheduled.
    pub(super) const OPEN: u8 = 1 << 6;
    /// The handler sealed its output ([`Conn::seal_output`](crate::Conn::seal_output)):
    /// other threads' sends and group messages no longer reach it.
    pub(super) const SEALED: u8 = 1 << 7;
}

/// What became of a group message offered to a connection whose handler is away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    /// Over its limit.
    Full,
    /// Closed or sealed: it takes no more group messages.
    Gone,
}

/// The part of a connection other threads may touch. One per connection, never reused:
/// a handle to a closed connection can only ever see "closed".
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    /// Set by the owning poller when it adopts the connection (before it processes any
    /// command that names it).
    token: AtomicU64,
    pub(crate) poller: usize,
    /// Known at once for accepted connections; for dialed ones once the target is
    /// resolved (peer) and connected (local).
    peer: OnceLock<Addr>,
    local: OnceLock<Addr>,
    /// Why the transport failed, in words (a TLS certificate the peer could not
    /// verify, say), once it has.
    transport_error: OnceLock<String>,
    flags: AtomicU8,
    /// Output queued by the poller but not yet sent, published for the high-water check.
    output_pending: AtomicUsize,
    outbox: Mutex<Outbox>,
    outbox_bytes: AtomicUsize,
    /// Threads blocked in [`ConnHandle::wait_writable`] or [`ConnHandle::wait_open`].
    waiters: AtomicUsize,
    changed: Condvar,
    high_water: usize,
    /// Fan-out messages dropped for this connection because it was over its mark.
    dropped: AtomicU64,
    remote: Arc<Remote>,
}

/// The requests pending on a connection ([`ConnShared::asked`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asked {
    pub(crate) close: bool,
    pub(crate) wake: bool,
    pub(crate) drain: bool,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// Why a dial failed.
    connect_error: Option<io::ErrorKind>,
}

impl fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnShared")
            .field("id", &self.id)
            .field("peer", &self.peer.get())
            .field("poller", &self.poller)
            .finish_non_exhaustive()
    }
}

impl ConnShared {
    /// The output mark ([`Builder::output_high_water`](crate::Builder::output_high_water)).
    pub(crate) fn high_water(&self) -> usize {
        self.high_water
    }

    /// A new connection's shared half, to be adopted by the poller behind `remote`.
    pub(crate) fn create(
        remote: &Arc<Remote>,
        peer: Option<Addr>,
        local: Option<Addr>,
        high_water: usize,
    ) -> Arc<ConnShared> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let cell = |a: Option<Addr>| {
            let c = OnceLock::new();
            if let Some(a) = a {
                let _ = c.set(a);
            }
            c
        };
        Arc::new(ConnShared {
            id,
            token: AtomicU64::new(u64::MAX),
            poller: remote.index,
            peer: cell(peer),
            local: cell(local),
            transport_error: OnceLock::new(),
            flags: AtomicU8::new(0),
            output_pending: AtomicUsize::new(0),
            outbox: Mutex::new(Outbox::default()),
            outbox_bytes: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            changed: Condvar::new(),
            high_water,
            dropped: AtomicU64::new(0),
            remote: remote.clone(),
        })
    }

    pub(crate) fn token(&self) -> Token {
        Token(self.token.load(Ordering::Relaxed))
    }

    pub(crate) fn set_token(&self, token: Token) {
        self.token.store(token.0, Ordering::Relaxed);
    }

    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    pub(crate) fn peer(&self) -> Option<&Addr> {
        self.peer.get()
    }

    pub(crate) fn local(&self) -> Option<&Addr> {
        self.local.get()
    }

    /// Records a dialed connection's addresses once known.
    pub(crate) fn set_addrs(&self, peer: Addr, local: Option<Addr>) {
        let _ = self.peer.set(peer);
        if let Some(local) = local {
            let _ = self.local.set(local);
        }
    }

    /// Why the transport failed, if it has.
    pub(crate) fn transport_error(&self) -> Option<&str> {
        self.transport_error.get().map(String::as_str)
    }

    /// Publishes why the transport failed (the first failure only).
    pub(crate) fn set_transport_error(&self, message: String) {
        let _ = self.transport_error.set(message);
    }

    fn has(&self, f: u8) -> bool {
        self.flags.load(Ordering::Acquire) & f != 0
    }

    /// Sets `f`; returns whether it was set already.
    fn set(&self, f: u8) -> bool {
        self.flags.fetch_or(f, Ordering::AcqRel) & f != 0
    }

    /// Clears `f`; returns whether it was set.
    fn take(&self, f: u8) -> bool {
        self.flags.fetch_and(!f, Ordering::AcqRel) & f != 0
    }

    /// Whether nothing has ended the connection: no close asked for, peer still there.
    pub(crate) fn is_active(&self) -> bool {
        self.flags.load(Ordering::Acquire) & (flag::CLOSE | flag::PEER_GONE | flag::CLOSED) == 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.has(flag::CLOSED)
    }

    /// A close was asked for (by the handler or a handle).
    pub(crate) fn close_requested(&self) -> bool {
        self.has(flag::CLOSE)
    }

    /// Asks for a close; returns whether one was asked for already.
    pub(crate) fn request_close(&self) -> bool {
        self.set(flag::CLOSE)
    }

    /// What other threads (and the handler) asked for, from one load.
    pub(crate) fn asked(&self) -> Asked {
        let f = self.flags.load(Ordering::Acquire);
        Asked {
            close: f & flag::CLOSE != 0,
            wake: f & flag::WAKE != 0,
            drain: f & flag::DRAIN != 0,
        }
    }

    /// Takes a pending wake (the poller is about to run `on_wake`).
    pub(crate) fn take_wake(&self) -> bool {
        self.take(flag::WAKE)
    }

    /// Takes a refused send's claim to `on_drain`.
    pub(crate) fn take_drain(&self) -> bool {
        self.take(flag::DRAIN)
    }

    /// The owning poller saw the peer hang up.
    pub(crate) fn mark_peer_gone(&self) {
        self.set(flag::PEER_GONE);
    }

    /// Whether `on_connect` has been scheduled (the handler knows the connection).
    pub(crate) fn is_open(&self) -> bool {
        self.has(flag::OPEN)
    }

    /// The owning poller scheduled `on_connect`.
    pub(crate) fn mark_open(&self) {
        self.set(flag::OPEN);
        self.notify_waiters();
    }

    /// Refuses other threads' sends and group messages from now on (see
    /// [`Conn::seal_output`](crate::Conn::seal_output)); under the outbox lock, so a
    /// sender either queued before (and the caller drains it next) or is refused.
    pub(crate) fn seal(&self) {
        let _outbox = self.lock();
        self.set(flag::SEALED);
    }

    /// Whether the output is sealed against other threads' sends.
    pub(crate) fn is_sealed(&self) -> bool {
        self.has(flag::SEALED)
    }

    pub(crate) fn has_outbox(&self) -> bool {
        self.outbox_bytes.load(Ordering::Acquire) > 0
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves what other threads sent into the connection's output, in order.
    pub(crate) fn drain_outbox_into(&self, output: &mut Output) {
        let mut outbox = self.lock();
        for data in outbox.queue.drain(..) {
            output.write_bytes(data);
        }
        // The bytes move from the outbox's count to the output's in the same step, under
        // the lock senders check the mark under: were they counted in neither until the
        // poller next publishes its output, a sender could queue a whole mark's worth
        // again in between. The poller's next publish replaces the sum with what is
        // really left.
        self.output_pending
            .fetch_add(outbox.bytes, Ordering::AcqRel);
        outbox.bytes = 0;
        self.outbox_bytes.store(0, Ordering::Release);
    }

    /// Publishes how much output the poller has queued (for the high-water check) and
    /// wakes threads waiting for room.
    pub(crate) fn publish_output_pending(&self, bytes: usize) {
        if self.output_pending.load(Ordering::Relaxed) != bytes {
            self.output_pending.store(bytes, Ordering::Release);
        }
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.notify_waiters();
        }
    }

    fn notify_waiters(&self) {
        let _outbox = self.lock();
        self.changed.notify_all();
    }

    /// Marks the connection closed and drops anything still queued for it; `connect_error`
    /// says why a dial failed.
    pub(crate) fn mark_closed(&self, connect_error: Option<io::ErrorKind>) {
        let mut outbox = self.lock();
        self.set(flag::CLOSED);
        outbox.queue.clear();
        outbox.bytes = 0;
        outbox.connect_error = connect_error;
        self.outbox_bytes.store(0, Ordering::Release);
        self.changed.notify_all();
    }

    /// Queues `segments` (all or none) for sending and tells the poller: the high-water
    /// check and the push under one lock, so no other sender's bytes come between them.
    fn enqueue(self: &Arc<Self>, segments: &[Bytes]) -> Result<(), Error> {
        let len: usize = segments.iter().map(Bytes::len).sum();
        {
            let mut outbox = self.lock();
            if self.has(flag::CLOSED | flag::CLOSE | flag::SEALED) {
                return Err(Error::Closed);
            }
            let queued = outbox.bytes + self.output_pending.load(Ordering::Acquire);
            if queued > 0 && queued + len > self.high_water {
                self.set(flag::DRAIN);
                return Err(Error::Full);
            }
            outbox.bytes += len;
            self.outbox_bytes.store(outbox.bytes, Ordering::Release);
            outbox
                .queue
                .extend(segments.iter().filter(|s| !s.is_empty()).cloned());
        }
        self.notify();
        Ok(())
    }

    /// Queues one fan-out message for a connection the poller cannot touch now (its
    /// handler is away): like a send, but with no flag or notification, held to `limit` (or
    /// the output mark, whichever is lower).
    pub(crate) fn offer(&self, data: &Bytes, limit: usize) -> Offer {
        let mut outbox = self.lock();
        if self.has(flag::CLOSED | flag::SEALED) {
            return Offer::Gone;
        }
        let queued = outbox.bytes + self.output_pending.load(Ordering::Acquire);
        if queued > 0 && queued + data.len() > limit.min(self.high_water) {
            return Offer::Full;
        }
        outbox.bytes += data.len();
        self.outbox_bytes.store(outbox.bytes, Ordering::Release);
        outbox.queue.push_back(data.clone());
        Offer::Queued
    }

    /// Counts a fan-out message dropped because the connection was over its mark.
    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Tells the owning poller to look at this connection (once until it has).
    pub(crate) fn notify(self: &Arc<Self>) {
        if !self.set(flag::NOTIFIED) {
            self.remote.push(Command::Notify(self.clone()));
        }
    }

    /// The poller took this connection's `Notify` command; later requests notify again.
    pub(crate) fn clear_notified(&self) {
        self.take(flag::NOTIFIED);
    }
}

/// Sends to, wakes or closes a connection from any thread. Cheap to clone.
///
/// A handle names one connection forever: once that connection has closed, every call
/// returns [`Error::Closed`], even if its poller slot now holds another connection.
/// Everything sent through a handle goes through the connection's transport, after what
/// its handler wrote before.
#[derive(Clone)]
pub struct ConnHandle {
    pub(crate) shared: Arc<ConnShared>,
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer())
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
    /// mark ([`Builder::output_high_water`](crate::Builder::output_high_water)); the
    /// handler's [`on_drain`](crate::Handler::on_drain) runs once there is room again. A
    /// message larger than the mark is still accepted when nothing is queued, so it can
    /// never be refused forever.
    pub fn send(&self, data: Bytes) -> Result<(), Error> {
        self.shared.enqueue(std::slice::from_ref(&data))
    }

    /// Queues several segments as one message: all of them or none (the high-water
    /// check is on their total), and no other thread's send can come between them. For
    /// a frame header and a payload shared with other connections, say.
    ///
    /// ```
    /// # fn demo(handle: &netloop::ConnHandle, payload: netloop::Bytes) -> Result<(), netloop::Error> {
    /// let header = netloop::Bytes::from(vec![0x82, payload.len() as u8]);
    /// handle.send_all(&[header, payload])?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`send`](ConnHandle::send).
    pub fn send_all(&self, segments: &[Bytes]) -> Result<(), Error> {
        self.shared.enqueue(segments)
    }

    /// Bytes queued for this connection and not yet sent: sent through handles and not
    /// yet picked up, plus what its poller has queued (as of its last look). A
    /// broadcaster uses it to skip a subscriber that is far behind:
    ///
    /// ```
    /// # fn demo(subscriber: &netloop::ConnHandle, update: netloop::Bytes) {
    /// if subscriber.queued() < 256 * 1024 {
    ///     let _ = subscriber.send(update);
    /// }
    /// # }
    /// ```
    pub fn queued(&self) -> usize {
        self.shared.outbox_bytes.load(Ordering::Acquire)
            + self.shared.output_pending.load(Ordering::Acquire)
    }

    /// Fan-out messages dropped for this connection because it was over its output mark
    /// (see [`ConnGroup`](crate::ConnGroup)).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Runs the handler's [`on_wake`](crate::Handler::on_wake) on the connection's own
    /// turn: never at the same time as another callback of this connection, after the
    /// one running now (if any) returns. Wakes that come before `on_wake` runs are
    /// merged: at least one `on_wake` follows every `wake`. A worker that finished a job
    /// uses it to have the protocol layer frame and send the result.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use netloop::{Conn, Handler};
    ///
    /// /// Computes each request on another thread; the result is framed on the
    /// /// connection's own turn.
    /// struct Offload;
    ///
    /// impl Handler for Offload {
    ///     type State = Arc<Mutex<Vec<u8>>>;
    ///     fn on_connect(&self, _: &mut Conn) -> Self::State {
    ///         Default::default()
    ///     }
    ///     fn on_request(&self, done: &mut Self::State, conn: &mut Conn) {
    ///         let n = conn.input().len();
    ///         let job = conn.input().next(n);
    ///         let (handle, done) = (conn.handle(), done.clone());
    ///         std::thread::spawn(move || {
    ///             done.lock().unwrap().extend(job.iter().rev());
    ///             let _ = handle.wake();
    ///         });
    ///     }
    ///     fn on_wake(&self, done: &mut Self::State, conn: &mut Conn) {
    ///         let result = std::mem::take(&mut *done.lock().unwrap());
    ///         conn.output().write(&result);
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`] if the connection is closed or closing.
    pub fn wake(&self) -> Result<(), Error> {
        let s = &self.shared;
        if s.has(flag::CLOSED | flag::CLOSE) {
            return Err(Error::Closed);
        }
        if !s.set(flag::WAKE) {
            s.notify();
        }
        Ok(())
    }

    /// Blocks until the bytes queued for this connection are below half the output
    /// high-water mark (so a [`send`](ConnHandle::send) of a moderate message fits), or
    /// `timeout` passes. The poller wakes waiters as the peer drains its output. For a
    /// handler that must not block, [`on_drain`](crate::Handler::on_drain) is the same
    /// news as a callback.
    ///
    /// # Errors
    /// [`Error::Closed`] if the connection closes meanwhile; [`Error::Full`] if it is
    /// still above the mark when `timeout` passes.
    pub fn wait_writable(&self, timeout: Duration) -> Result<(), Error> {
        let s = &self.shared;
        self.wait_for(timeout, Error::Full, |outbox| {
            if s.is_closed() {
                return Some(Err(Error::Closed));
            }
            let queued = outbox.bytes + s.output_pending.load(Ordering::Acquire);
            (queued < s.high_water / 2).then_some(Ok(()))
        })
    }

    /// Blocks until a dialed connection is connected (its `on_connect` is scheduled) or
    /// `timeout` passes. An accepted connection is open from the start.
    ///
    /// # Errors
    /// [`Error::Io`] with the connect's error if the dial failed (a refused or unreachable
    /// peer, a name that does not resolve, `TimedOut` for the dial's connect timeout);
    /// [`Error::Closed`] if it was closed before connecting; [`Error::Io`] with
    /// `WouldBlock` if `timeout` passes first.
    pub fn wait_open(&self, timeout: Duration) -> Result<(), Error> {
        let s = &self.shared;
        let not_yet = Error::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            "still connecting",
        ));
        self.wait_for(timeout, not_yet, |outbox| {
            if s.has(flag::OPEN) {
                Some(Ok(()))
            } else if s.is_closed() {
                Some(Err(match outbox.connect_error {
                    Some(kind) => Error::Io(kind.into()),
                    None => Error::Closed,
                }))
            } else {
                None
            }
        })
    }

    /// Waits on the connection's condition variable until `ready` decides or `timeout`
    /// passes (then `timed_out`).
    fn wait_for(
        &self,
        timeout: Duration,
        timed_out: Error,
        mut ready: impl FnMut(&Outbox) -> Option<Result<(), Error>>,
    ) -> Result<(), Error> {
        let s = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut outbox = s.lock();
        loop {
            if let Some(result) = ready(&outbox) {
                return result;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out);
            }
            s.waiters.fetch_add(1, Ordering::AcqRel);
            outbox = s
                .changed
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
        if s.is_closed() || s.request_close() {
            return Err(Error::Closed);
        }
        s.notify();
        Ok(())
    }

    /// The connection's id (the same as [`Conn::id`](crate::Conn::id)).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The remote end's address; `None` for a dialed connection whose target name is
    /// still being resolved.
    pub fn peer_addr(&self) -> Option<&Addr> {
        self.shared.peer()
    }

    /// The local end's address; `None` for a dialed connection not yet connected.
    pub fn local_addr(&self) -> Option<&Addr> {
        self.shared.local()
    }

    /// Why the connection's transport failed, in its own words, once it has: for TLS,
    /// rustls' description of the alert, certificate or protocol error (an untrusted
    /// certificate, a server name it is not valid for, bytes that are not TLS). The
    /// connection closed with [`CloseReason::Error`](crate::CloseReason::Error), whose
    /// kind alone does not say this. `None` while it has not failed, and for plain TCP.
    pub fn transport_error(&self) -> Option<&str> {
        self.shared.transport_error.get().map(String::as_str)
    }

    /// `false` once the peer has hung up or the connection is closing.
    pub fn is_active(&self) -> bool {
        self.shared.is_active()
    }

    /// `true` once the connection's socket is closed (or its dial failed).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Whether two handles name the same connection.
    pub fn same(&self, other: &ConnHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_moved_from_the_outbox_stay_counted_until_the_poller_publishes() {
        let remote = Remote::new(0, 1).unwrap();
        let shared = ConnShared::create(&remote, None, None, 100);
        let handle = ConnHandle::new(shared.clone());
        handle.send(Bytes::from(vec![0; 60])).unwrap();
        // The poller takes the outbox into the output; the mark still sees the 60 bytes.
        let mut output = Output::new();
        shared.drain_outbox_into(&mut output);
        assert_eq!(handle.queued(), 60);
        assert!(matches!(
            handle.send(Bytes::from(vec![0; 60])),
            Err(Error::Full)
        ));
        // Once the poller sent them and says so, there is room again.
        shared.publish_output_pending(0);
        assert_eq!(handle.queued(), 0);
        handle.send(Bytes::from(vec![0; 60])).unwrap();
    }
}
