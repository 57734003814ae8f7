//! The io_uring backend: one ring per poller thread, behind the same calls as epoll.
//!
//! How the driver calls map onto the ring:
//!
//! * reading a connection that sends small messages is a **multishot receive** drawing
//!   on a provided-buffer ring ([`BufRing`]); each completion's bytes are copied into the
//!   connection's own input buffer by [`receive`](Uring::receive) and the buffer goes
//!   straight back to the ring, so handlers keep getting zero-copy `Bytes` of netloop's
//!   buffers and one slow handler can never starve the ring;
//! * reading a connection that streams (its last read filled what it asked for, or was
//!   more than one provided buffer) or is near its input mark is a one-shot `POLLIN` poll followed by one `recv(2)` straight
//!   into the connection's buffer, as on epoll: a bulk stream is not copied twice, and
//!   the read stops at what the poller has room for;
//! * "watch for writable" is a one-shot `POLLOUT` poll, re-armed while it is wanted, which
//!   gives the level-triggered behaviour the poller expects;
//! * a listener is a **multishot accept**; the waker's eventfd a multishot poll; a
//!   dialed socket's connect is a **connect** operation;
//! * with inline dispatch, output is sent by a **gathered send** operation, one in flight
//!   per connection, its segments held until the completion; with pool dispatch the
//!   worker that holds a connection writes it directly, as on epoll, and the ring only
//!   reports writability;
//! * pausing reads (backpressure, closing, draining) cancels the receive, resuming
//!   re-arms it; a receive re-armed on a socket with data completes at once, so nothing
//!   is lost or reported late;
//! * the turn's new submissions and the wait go to the kernel in one `io_uring_enter`.
//!
//! Safety rules (each checked by the tests): no ring operation writes into memory a
//! connection owns (only into the ring's buffers, which live as long as the ring; the
//! polled reads are plain `recv(2)` calls, done before they return); a
//! socket is closed only after every operation on it has posted its final completion,
//! because a pending operation keeps the socket open; a completion for a connection that
//! is gone still returns its buffer; and the ring is dropped only after all operations
//! have finished, before the buffer memory is freed.

mod buf_ring;
mod probe;

pub(crate) use probe::probe;

use std::collections::HashMap;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::{Event, Interest, Sent, Token, Waker};
use crate::conn::Output;
use crate::{sys, Addr};
use buf_ring::BufRing;

/// Connections at most taken from a closed listener's queue (see `Uring::sweep`).
const SWEEP_LIMIT: usize = 64;
/// Submission queue entries per ring; completions get four times as many slots because
/// multishot operations post many completions per submission.
const SQ_ENTRIES: u32 = 1024;
/// The provided-buffer group every receive of a ring draws on.
const BUF_GROUP: u16 = 0;
/// Buffers in the group. A receive completion holds one only until the poller copies it
/// out in the same turn, so this bounds the connections that can receive in one turn.
const BUF_COUNT: u16 = 1024;
/// Size of each provided buffer.
const BUF_LEN: usize = 4096;
/// What a connection is assumed to have room for until the poller says
/// ([`Uring::pace_reads`]).
const INITIAL_ROOM: usize = 64 * 1024;
/// Room a connection must have left under its input mark for a multishot receive: one
/// may deliver up to 32 buffers per wake-up (the kernel's retry limit), and the cancel
/// that stops it can take effect a wake-up late, so twice that.
const MULTISHOT_ROOM: usize = 2 * 32 * BUF_LEN;
/// Receive completions in one wait from which more deferred task work is assumed to be
/// pending (the kernel runs 20 items per wait; see [`Uring::wait`]).
const LOCAL_WORK_BATCH: usize = 16;
/// Completions a flush of pending task work may produce: at most what the completion
/// queue has room for after a wait's were collected (4 × `SQ_ENTRIES`), less a margin.
const FLUSH_EVENTS: usize = 2 * SQ_ENTRIES as usize;
/// How long dropping a ring waits for cancelled operations to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

// What a completion is about: the token plus an operation kind in bits 59..63 (tokens
// leave those bits clear; see `Token`).
const KIND_SHIFT: u32 = 59;
const KIND_MASK: u64 = 0xf << KIND_SHIFT;
const RECV: u64 = 1;
const POLL_OUT: u64 = 2;
const ACCEPT: u64 = 3;
const WAKE: u64 = 4;
const CANCEL: u64 = 5;
const SEND: u64 = 6;
/// A one-shot readability poll: the poller then reads with `recv(2)`.
const POLL_IN: u64 = 7;
const CONNECT: u64 = 8;

/// What a watch keeps of its token (see [`Watch::tag`]).
fn tag(token: Token) -> u32 {
    (token.0 >> 32) as u32
}

fn user_data(kind: u64, token: Token) -> u64 {
    debug_assert_eq!(token.0 & KIND_MASK, 0);
    token.0 | (kind << KIND_SHIFT)
}

/// The state of one kind of operation on one socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Op {
    #[default]
    Idle,
    Armed,
    /// A cancel was submitted; the operation's final completion has not come yet.
    Cancelling,
}

/// A watched socket: a connection (indexed by slab index) or a listener.
///
/// One per connection, idle ones included, so it is kept to 32 bytes: what only an
/// operation in flight needs lives in its [`SendState`] or in [`Uring::connect_addrs`].
#[derive(Debug)]
struct Watch {
    /// The high half of the socket's token (a connection's generation): the low half is
    /// the index this watch is stored at.
    tag: u32,
    fd: RawFd,
    want: Interest,
    /// The receive (connections) or accept (listeners).
    input: Op,
    /// The armed input operation is a multishot receive (rather than a readability
    /// poll).
    input_multi: bool,
    /// Read one buffer per turn, with a poll and a `recv(2)` into the connection's own
    /// buffer, instead of all that arrives, when the connection has less than
    /// [`MULTISHOT_ROOM`] left under its input mark (`room`, from the poller, less what
    /// was delivered since), or when the last read filled what it asked for or was more
    /// than a small buffer (`bursting`: a stream, or more is probably waiting, and a
    /// multishot receive would take all of it at once, hundreds of KiB in one wait, each
    /// byte copied out of a provided buffer). A new connection starts bursting, so a
    /// peer that floods from the start is read one buffer per turn.
    room: u32,
    bursting: bool,
    /// The input operation ended for good (end-of-file, an error): not re-armed until
    /// the poller re-registers the socket.
    input_ended: bool,
    /// The writable poll (connections only).
    output: Op,
    /// The gathered send in flight (connections only; at most one).
    send: Op,
    /// What the send in flight reads: kept here until its completion, then given back
    /// to [`Uring::spare_sends`].
    send_state: Option<Box<SendState>>,
    /// The connect in flight (dialed connections); the address it reads is in
    /// [`Uring::connect_addrs`].
    connect: Op,
}

impl Watch {
    fn new(token: Token, fd: RawFd, want: Interest) -> Watch {
        Watch {
            tag: tag(token),
            fd,
            want,
            input: Op::Idle,
            input_multi: false,
            room: INITIAL_ROOM as u32,
            bursting: true,
            input_ended: false,
            output: Op::Idle,
            send: Op::Idle,
            send_state: None,
            connect: Op::Idle,
        }
    }

    /// Whether this is the watch of `token`'s socket (not of a closed one that had the
    /// same slot).
    fn is(&self, token: Token) -> bool {
        self.tag == tag(token)
    }

    /// Whether input is taken one receive at a time (see `room`).
    fn one_at_a_time(&self) -> bool {
        self.bursting || (self.room as usize) < MULTISHOT_ROOM
    }

    fn ops_pending(&self) -> u8 {
        u8::from(self.input != Op::Idle)
            + u8::from(self.output != Op::Idle)
            + u8::from(self.send != Op::Idle)
            + u8::from(self.connect != Op::Idle)
    }
}

/// A send's segments, iovec array and message header. The kernel reads them until the
/// send completes, so they live in a box (a stable address) owned by the connection's
/// watch, or by its retiring entry once the connection is closed.
struct SendState {
    /// The connection's tail buffer, lent whole for a one-slice send
    /// ([`Output::lend_tail`]); empty otherwise.
    lent: BytesMut,
    bufs: Vec<Bytes>,
    iov: Vec<libc::iovec>,
    msg: libc::msghdr,
    /// A zero-copy send's result, held until the kernel's notification that it no
    /// longer reads the buffers.
    zero_copy_result: Option<i32>,
}

// SAFETY: the raw pointers in `iov` and `msg` point into `bufs` and `iov`, which this
// value owns; it is used by the poller thread only.
unsafe impl Send for SendState {}

impl std::fmt::Debug for SendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendState")
            .field("segments", &self.bufs.len())
            .finish()
    }
}

impl SendState {
    fn new() -> SendState {
        SendState {
            lent: BytesMut::new(),
            bufs: Vec::new(),
            iov: Vec::new(),
            // SAFETY: an all-zero msghdr is valid.
            msg: unsafe { std::mem::zeroed() },
            zero_copy_result: None,
        }
    }
}

/// A closed socket whose operations have not all finished: closed when they have.
struct Retiring {
    token: Token,
    fd: OwnedFd,
    /// The buffers a cancelled send may still read, the address a connect may still read.
    _send: Option<Box<SendState>>,
    _connect_addr: Option<Box<socket2::SockAddr>>,
    ops: u8,
}

/// What the completion behind the event being handled delivered, for the poller to
/// collect with `receive`, `accept`, `connect_result` or `take_error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Current {
    None,
    /// Received bytes, in a provided buffer.
    Data {
        token: Token,
        bid: u16,
        len: usize,
    },
    /// The socket is readable: the poller's `receive` reads it.
    Ready(Token),
    /// The receive ended: end-of-file.
    Eof,
    /// A listener's new connection.
    Accepted(RawFd),
    /// A connect finished: 0 or `-errno`.
    Connected(i32),
    /// An operation failed with this errno.
    Failed(i32),
}

/// One io_uring instance with its buffers, owned by one poller thread.
pub(crate) struct Uring {
    ring: ManuallyDrop<IoUring>,
    bufs: ManuallyDrop<BufRing>,
    /// The ring is enabled on the poller thread (it is created disabled, so that the
    /// thread that submits is the one the kernel binds it to).
    started: bool,
    waker_fd: RawFd,
    conns: Vec<Option<Watch>>,
    listeners: Vec<Option<Watch>>,
    retiring: Vec<Retiring>,
    /// Connections taken from closed listeners' queues (see [`sweep`](Uring::sweep)),
    /// delivered as accept events before this turn's next completion.
    swept: Vec<(Token, OwnedFd)>,
    /// This turn's completions: (user data, result, flags).
    cqes: Vec<(u64, i32, u32)>,
    cursor: usize,
    current: Current,
    /// Operations submitted whose final completion has not come yet.
    in_flight: usize,
    /// Sends are submitted to the ring (inline dispatch) rather than written at once.
    submit_sends: bool,
    /// Smallest send made zero-copy (`None`: never).
    zero_copy_send: Option<usize>,
    /// Send states (with their vectors' room) not held by a send in flight, the last
    /// given back on top. A connection holds one only while its send is in flight, so
    /// an idle connection costs none (they were ~0.25 KiB each at 10,000 idle
    /// connections), and there are never more than the most sends in flight at once.
    /// Boxed as a watch holds them: a send's submission points into its state, which
    /// must not move while the box does.
    #[allow(clippy::vec_box)]
    spare_sends: Vec<Box<SendState>>,
    /// The addresses connects in flight read, by token: boxed so they stay put while
    /// the map grows. Connects are few next to idle connections, so the address is kept
    /// here rather than in every watch.
    connect_addrs: HashMap<u64, Box<socket2::SockAddr>>,
    /// The buffer lent by the send whose completion is the event being handled, for the
    /// poller to give back to the connection's output ([`take_lent`](Uring::take_lent)).
    lent_back: BytesMut,
}

impl Uring {
    /// Builds a ring (disabled until [`start`](Uring::start)) and its buffer groups.
    /// With `submit_sends` output goes out through send operations (the poller holds
    /// every connection: inline dispatch); without it, whoever holds a connection writes
    /// it at once and the ring reports writability.
    pub(crate) fn new(
        waker: &Waker,
        submit_sends: bool,
        zero_copy_send: Option<usize>,
    ) -> io::Result<Uring> {
        let ring = probe::build_ring(SQ_ENTRIES)?;
        let zero_copy_send = zero_copy_send.filter(|_| submit_sends).filter(|_| {
            let supported = probe::supports(&ring, opcode::SendMsgZc::CODE);
            if !supported {
                tracing::warn!("the kernel has no zero-copy send; sending by copy");
            }
            supported
        });
        let bufs = BufRing::new(&ring, BUF_GROUP, BUF_COUNT, BUF_LEN)?;
        Ok(Uring {
            ring: ManuallyDrop::new(ring),
            bufs: ManuallyDrop::new(bufs),
            started: false,
            waker_fd: waker.raw_fd(),
            conns: Vec::new(),
            listeners: Vec::new(),
            retiring: Vec::new(),
            swept: Vec::new(),
            cqes: Vec::with_capacity(4 * SQ_ENTRIES as usize),
            cursor: 0,
            current: Current::None,
            in_flight: 0,
            submit_sends,
            zero_copy_send,
            spare_sends: Vec::new(),
            connect_addrs: HashMap::new(),
            lent_back: BytesMut::new(),
        })
    }

    /// Enables the ring on the calling thread (the poller's) and arms the waker.
    pub(crate) fn start(&mut self) -> io::Result<()> {
        self.ring.submitter().register_enable_rings()?;
        self.started = true;
        let sqe = opcode::PollAdd::new(types::Fd(self.waker_fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(WAKE << KIND_SHIFT);
        self.push(&sqe);
        self.in_flight += 1;
        Ok(())
    }

    /// Queues a submission, flushing the queue to the kernel first if it is full.
    fn push(&mut self, sqe: &squeue::Entry) {
        loop {
            // SAFETY: every submission refers to memory that outlives it: sockets kept
            // open until their operations finish, and the buffer ring, freed only after
            // the ring itself.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::error!(error = %e, "io_uring submit failed");
                return;
            }
        }
    }

    /// The table entry for `token`'s socket (connections by slab index, listeners by
    /// number), grown to fit if `grow`; `None` for the waker, or past the end.
    fn entry(&mut self, token: Token, grow: bool) -> Option<&mut Option<Watch>> {
        let (list, index) = match token.kind() {
            super::TokenKind::Listener(i) => (&mut self.listeners, i),
            super::TokenKind::Conn { index, .. } => (&mut self.conns, index),
            super::TokenKind::Wake => return None,
        };
        if grow && list.len() <= index {
            list.resize_with(index + 1, || None);
        }
        list.get_mut(index)
    }

    /// The watch of `token`'s socket, if it is still that socket's (not a closed one's
    /// successor in the same slot).
    fn watch_mut(&mut self, token: Token) -> Option<&mut Watch> {
        self.entry(token, false)?.as_mut().filter(|w| w.is(token))
    }

    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        let Some(entry) = self.entry(token, true) else {
            return Ok(());
        };
        match entry {
            Some(w) if w.is(token) => w.want = interest,
            slot => *slot = Some(Watch::new(token, fd, interest)),
        }
        self.reconcile(token);
        Ok(())
    }

    pub(crate) fn reregister(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        if let Some(w) = self.watch_mut(token) {
            w.want = interest;
            w.input_ended = false;
            self.reconcile(token);
            Ok(())
        } else {
            self.register(fd, token, interest)
        }
    }

    /// Whether sends complete later (see [`new`](Uring::new)).
    pub(crate) fn submits_sends(&self) -> bool {
        self.submit_sends
    }

    /// Submits the front of `queue` (up to 64 segments) as one gathered send, unless one
    /// is in flight for `token` already; or, without `submit_sends`, writes it now.
    pub(crate) fn send(&mut self, fd: RawFd, token: Token, queue: &mut Output) -> io::Result<Sent> {
        if !self.submit_sends {
            return sys::send_queue(fd, queue).map(Sent::Now);
        }
        self.submit_send(token, queue);
        Ok(Sent::InFlight)
    }

    fn submit_send(&mut self, token: Token, queue: &mut Output) {
        let zero_copy_from = self.zero_copy_send;
        let Some(w) = self.watch_mut(token) else {
            return;
        };
        if w.send != Op::Idle {
            return;
        }
        let fd = w.fd;
        debug_assert!(w.send_state.is_none(), "a send state outlived its send");
        let mut st = self
            .spare_sends
            .pop()
            .unwrap_or_else(|| Box::new(SendState::new()));
        let flags = libc::MSG_NOSIGNAL as u32;
        let zero_copy_from = zero_copy_from.unwrap_or(usize::MAX);
        // The tail alone (every fan-out delivery, most replies): lent whole, no `Bytes`.
        if queue.len() < zero_copy_from && u32::try_from(queue.len()).is_ok() {
            if let Some(buf) = queue.lend_tail() {
                st.lent = buf;
                let sqe = opcode::Send::new(types::Fd(fd), st.lent.as_ptr(), st.lent.len() as u32)
                    .flags(flags as i32)
                    .build()
                    .user_data(user_data(SEND, token));
                return self.arm_send(token, st, &sqe);
            }
        }
        st.bufs.extend(queue.segments().cloned());
        if st.bufs.is_empty() {
            self.spare_sends.push(st);
            return;
        }
        let len: usize = st.bufs.iter().map(Bytes::len).sum();
        let zero_copy = len >= zero_copy_from;
        let sqe = match &st.bufs[..] {
            // One segment (the common reply, and every fan-out delivery): a plain send,
            // which spares the kernel copying in and checking a msghdr and an iovec
            // array (`io_msg_copy_hdr` and `copy_iovec_from_user` took ~3 % of a
            // 10,000-subscriber broadcast's CPU). The segment is held in `bufs`.
            // (A send's length is a u32; a larger segment goes the msghdr way.)
            [one] if !zero_copy && u32::try_from(one.len()).is_ok() => {
                opcode::Send::new(types::Fd(fd), one.as_ptr(), one.len() as u32)
                    .flags(flags as i32)
                    .build()
            }
            _ => {
                st.iov.extend(st.bufs.iter().map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                }));
                st.msg.msg_iov = st.iov.as_mut_ptr();
                st.msg.msg_iovlen = st.iov.len() as _;
                let msg = &st.msg as *const libc::msghdr;
                if zero_copy {
                    opcode::SendMsgZc::new(types::Fd(fd), msg)
                        .flags(flags)
                        .build()
                } else {
                    opcode::SendMsg::new(types::Fd(fd), msg)
                        .flags(flags)
                        .build()
                }
            }
        }
        .user_data(user_data(SEND, token));
        self.arm_send(token, st, &sqe);
    }

    /// Submits `sqe`, a send reading from `st`, which the watch keeps until it completes.
    fn arm_send(&mut self, token: Token, st: Box<SendState>, sqe: &squeue::Entry) {
        let Some(w) = self.watch_mut(token) else {
            return;
        };
        // Moving the box does not move what the submission points into (nor does moving
        // the lent buffer move its bytes).
        w.send_state = Some(st);
        w.send = Op::Armed;
        self.in_flight += 1;
        self.push(sqe);
    }

    /// Submits a connect of `token`'s socket to `addr`; the address is kept until the
    /// operation's completion.
    pub(crate) fn connect(
        &mut self,
        fd: RawFd,
        token: Token,
        addr: &socket2::SockAddr,
    ) -> io::Result<()> {
        let Some(w) = self.watch_mut(token) else {
            return Err(io::Error::other(
                "connect on a socket that is not registered",
            ));
        };
        if w.connect != Op::Idle {
            return Err(io::Error::other("a connect is already in flight"));
        }
        w.connect = Op::Armed;
        let addr = self
            .connect_addrs
            .entry(token.0)
            .insert_entry(Box::new(addr.clone()))
            .into_mut();
        let sqe = opcode::Connect::new(types::Fd(fd), addr.as_ptr().cast(), addr.len())
            .build()
            .user_data(user_data(CONNECT, token));
        self.in_flight += 1;
        self.push(&sqe);
        Ok(())
    }

    /// The result the current connect completion delivered.
    pub(crate) fn connect_result(&mut self, fd: RawFd) -> io::Result<()> {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Connected(0) => Ok(()),
            Current::Connected(res) | Current::Failed(res) => {
                Err(io::Error::from_raw_os_error(res.abs()))
            }
            _ => sys::socket_error(fd),
        }
    }

    /// The error the current completion delivered, or the socket's own.
    pub(crate) fn take_error(&mut self, fd: RawFd) -> io::Error {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Failed(errno) => io::Error::from_raw_os_error(errno),
            _ => sys::take_socket_error(fd),
        }
    }

    /// The connection the current accept completion delivered (or its error).
    pub(crate) fn accept(&mut self, _fd: RawFd) -> io::Result<Option<(OwnedFd, Option<Addr>)>> {
        match std::mem::replace(&mut self.current, Current::None) {
            // SAFETY: the kernel just created this descriptor for us.
            Current::Accepted(fd) => Ok(Some((unsafe { OwnedFd::from_raw_fd(fd) }, None))),
            Current::Failed(errno) => Err(io::Error::from_raw_os_error(errno)),
            _ => Ok(None),
        }
    }

    /// How many more bytes `token`'s connection should take before its input mark.
    pub(crate) fn pace_reads(&mut self, token: Token, room: usize) {
        if let Some(w) = self.watch_mut(token) {
            let was = w.one_at_a_time();
            w.room = u32::try_from(room).unwrap_or(u32::MAX);
            if w.one_at_a_time() != was {
                self.reconcile(token);
            }
        }
    }

    /// Stops watching `fd` (its operations are cancelled).
    pub(crate) fn deregister(&mut self, _fd: RawFd, token: Token) -> io::Result<()> {
        if let Some(w) = self.watch_mut(token) {
            w.want = Interest::default();
            self.reconcile(token);
        }
        Ok(())
    }

    /// Stops watching `fd` and closes it once no operation can touch it any more.
    pub(crate) fn close(&mut self, fd: OwnedFd, token: Token) {
        let _ = self.deregister(-1, token);
        let (send_armed, connect_armed) = self.watch_mut(token).map_or((false, false), |w| {
            (w.send == Op::Armed, w.connect == Op::Armed)
        });
        if send_armed {
            // The send may be waiting for room the peer will never make.
            self.push(&cancel(user_data(SEND, token)));
        }
        if connect_armed {
            // The connect may be waiting for a peer that never answers.
            self.push(&cancel(user_data(CONNECT, token)));
        }
        let (send, ops) = match self.watch_mut(token) {
            Some(w) => {
                if send_armed {
                    w.send = Op::Cancelling;
                }
                if connect_armed {
                    w.connect = Op::Cancelling;
                }
                (w.send_state.take(), w.ops_pending())
            }
            None => (None, 0),
        };
        let addr = self.connect_addrs.remove(&token.0);
        if let Some(entry) = self.entry(token, false) {
            if entry.as_ref().is_some_and(|w| w.is(token)) {
                *entry = None;
            }
        }
        if ops > 0 {
            self.retiring.push(Retiring {
                token,
                fd,
                _send: send,
                _connect_addr: addr,
                ops,
            });
        }
    }

    /// Arms or cancels operations so they match what the socket is watched for.
    fn reconcile(&mut self, token: Token) {
        let Some(w) = self.watch_mut(token) else {
            return;
        };
        let listener = matches!(token.kind(), super::TokenKind::Listener(_));
        let fd = types::Fd(w.fd);
        let mut sqes: [Option<squeue::Entry>; 2] = [None, None];
        let mut armed = 0;
        let want_input = w.want.read && !w.input_ended;
        // A multishot receive takes everything that arrives; a limited or streaming
        // connection is polled instead, and read one buffer per turn.
        let one_at_a_time = w.one_at_a_time();
        let too_much = !listener && one_at_a_time && w.input_multi;
        match (want_input, w.input) {
            (true, Op::Idle) => {
                sqes[0] = Some(if listener {
                    opcode::AcceptMulti::new(fd)
                        .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                        .build()
                        .user_data(user_data(ACCEPT, token))
                } else if one_at_a_time {
                    opcode::PollAdd::new(fd, libc::POLLIN as u32)
                        .build()
                        .user_data(user_data(POLL_IN, token))
                } else {
                    opcode::RecvMulti::new(fd, BUF_GROUP)
                        .build()
                        .user_data(user_data(RECV, token))
                });
                w.input_multi = !listener && !one_at_a_time;
                w.input = Op::Armed;
                armed += 1;
            }
            (false, Op::Armed) | (true, Op::Armed) if !want_input || too_much => {
                let kind = match (listener, w.input_multi) {
                    (true, _) => ACCEPT,
                    (false, true) => RECV,
                    (false, false) => POLL_IN,
                };
                sqes[0] = Some(cancel(user_data(kind, token)));
                w.input = Op::Cancelling;
            }
            _ => {}
        }
        match (w.want.write && !listener, w.output) {
            (true, Op::Idle) => {
                sqes[1] = Some(
                    opcode::PollAdd::new(fd, libc::POLLOUT as u32)
                        .build()
                        .user_data(user_data(POLL_OUT, token)),
                );
                w.output = Op::Armed;
                armed += 1;
            }
            (false, Op::Armed) => {
                sqes[1] = Some(cancel(user_data(POLL_OUT, token)));
                w.output = Op::Cancelling;
            }
            _ => {}
        }
        self.in_flight += armed;
        for sqe in sqes.iter().flatten() {
            self.push(sqe);
        }
    }

    /// Submits this turn's operations and blocks until something completes or `timeout`
    /// passes (`None`: no time limit), in one system call.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, gather: bool) -> io::Result<()> {
        self.recycle_current();
        // Every buffer a completion handed over has been copied out and given back.
        debug_assert_eq!(self.bufs.out(), 0, "provided buffers leaked");
        self.bufs.publish();
        self.cqes.clear();
        self.cursor = 0;
        let result = match timeout {
            None => self.ring.submit_and_wait(1),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        settle(result)?;
        self.collect();
        if gather && self.received_count() >= LOCAL_WORK_BATCH {
            // The kernel posts receive completions from deferred task work, and one
            // wait runs only a small batch of it once a completion is there (20 items
            // on 6.13+). A full batch means more is probably pending: run it now, with
            // no waiting, so this turn sees everything that arrived. Otherwise a burst
            // from many connections is served a few dozen messages a turn, and a
            // fan-out it causes (a send to every member) is paid again for each turn.
            // Only then: for request-response traffic the small batches cost less
            // (measured: framed RPC 1 KiB took 13 % more CPU per request with it).
            let ts = types::Timespec::new();
            let args = types::SubmitArgs::new().timespec(&ts);
            settle(self.ring.submitter().submit_with_args(FLUSH_EVENTS, &args))?;
            self.collect();
        }
        Ok(())
    }

    /// Receive completions in this turn's list.
    fn received_count(&self) -> usize {
        self.cqes
            .iter()
            .filter(|&&(ud, _, _)| (ud & KIND_MASK) >> KIND_SHIFT == RECV)
            .count()
    }

    /// Moves the completion queue's entries into this turn's list.
    fn collect(&mut self) {
        let cqes = &mut self.cqes;
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
    }

    /// For a send's completion event: the tail buffer the send was lent (empty if it
    /// was sent from segments), to give back with [`Output::take_back`].
    pub(crate) fn take_lent(&mut self) -> BytesMut {
        std::mem::take(&mut self.lent_back)
    }

    /// Gives back what the last event delivered and nobody collected: a receive's
    /// buffer, an accepted descriptor (closed).
    fn recycle_current(&mut self) {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Data { bid, .. } => self.bufs.push(bid),
            // SAFETY: the kernel created this descriptor for us and nobody took it.
            Current::Accepted(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd) }),
            _ => {}
        }
    }

    /// The next event of this turn.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        self.recycle_current();
        loop {
            if let Some((token, fd)) = self.swept.pop() {
                self.current = Current::Accepted(std::os::fd::IntoRawFd::into_raw_fd(fd));
                return Some(readable(token));
            }
            if self.cursor >= self.cqes.len() {
                return None;
            }
            let (ud, res, flags) = self.cqes[self.cursor];
            self.cursor += 1;
            if let Some(event) = self.on_completion(ud, res, flags) {
                return Some(event);
            }
        }
    }

    /// Handles one completion; returns the event it means for the poller, if any.
    fn on_completion(&mut self, ud: u64, res: i32, flags: u32) -> Option<Event> {
        let kind = (ud & KIND_MASK) >> KIND_SHIFT;
        let token = Token(ud & !KIND_MASK);
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.bufs.taken();
        }
        if kind == CANCEL {
            return None;
        }
        if !more {
            self.in_flight -= 1;
        }
        if kind == WAKE {
            if !more {
                // The multishot poll ended (it can, on overflow): arm it again.
                self.start_waker();
            }
            return None;
        }
        let Some(w) = self.watch_mut(token) else {
            // The socket was closed: give back the buffer or descriptor the completion
            // carries, and close the socket once its last operation is over.
            if let Some(bid) = bid {
                self.bufs.push(bid);
            }
            if !more {
                self.retired_op(token);
            }
            if kind == ACCEPT && res >= 0 {
                // A connection accepted before the listener's close took effect: the
                // poller still serves it (it keeps what it needs of a closed listener),
                // so a client the kernel already let in is not dropped, which matters
                // when another process goes on serving the listener.
                self.current = Current::Accepted(res);
                return Some(readable(token));
            }
            return None;
        };
        let errno = -res;
        let event = match kind {
            POLL_IN => {
                w.input = Op::Idle;
                if errno == libc::ECANCELED || !w.want.read || w.input_ended {
                    // Cancelled, or no longer wanted: nothing was taken from the socket,
                    // so nothing is lost by not reporting it.
                    None
                } else if res < 0 {
                    w.input_ended = true;
                    self.current = Current::Failed(errno);
                    Some(Event {
                        error: true,
                        ..Event::new(token)
                    })
                } else {
                    // Readable, at end-of-file or with an error pending: the read says
                    // which.
                    self.current = Current::Ready(token);
                    Some(readable(token))
                }
            }
            RECV => {
                if !more {
                    w.input = Op::Idle;
                }
                if res > 0 {
                    self.current = Current::Data {
                        token,
                        bid: bid.expect("a receive with data names its buffer"),
                        len: res as usize,
                    };
                    Some(readable(token))
                } else if res == 0 {
                    w.input_ended = true;
                    self.current = Current::Eof;
                    Some(readable(token))
                } else if errno == libc::ENOBUFS || errno == libc::ECANCELED {
                    // Out of buffers: re-armed below, and submitted after this turn
                    // has returned its buffers, into a ring offering more of them.
                    // Cancelled: re-armed only if wanted.
                    if errno == libc::ENOBUFS {
                        self.bufs.starved();
                    }
                    None
                } else {
                    w.input_ended = true;
                    self.current = Current::Failed(errno);
                    Some(Event {
                        error: true,
                        ..Event::new(token)
                    })
                }
            }
            POLL_OUT => {
                w.output = Op::Idle;
                if errno == libc::ECANCELED {
                    None
                } else if res < 0 {
                    self.current = Current::Failed(errno);
                    Some(Event {
                        error: true,
                        ..Event::new(token)
                    })
                } else {
                    Some(Event {
                        writable: res & i32::from(libc::POLLOUT) != 0,
                        hangup: res & i32::from(libc::POLLHUP) != 0,
                        error: res & i32::from(libc::POLLERR) != 0,
                        ..Event::new(token)
                    })
                }
            }
            SEND if more => {
                // A zero-copy send's result; its buffers stay in use until the
                // notification that follows.
                if let Some(st) = &mut w.send_state {
                    st.zero_copy_result = Some(res);
                }
                None
            }
            SEND => {
                let res = if cqueue::notif(flags) {
                    (w.send_state.as_mut())
                        .and_then(|st| st.zero_copy_result.take())
                        .unwrap_or(res)
                } else {
                    res
                };
                w.send = Op::Idle;
                if let Some(mut st) = w.send_state.take() {
                    // The kernel is done with them: drop the references now, and keep
                    // the state's room for the next send of any connection. A lent
                    // buffer goes back to its connection ([`Uring::take_lent`]).
                    self.lent_back = std::mem::take(&mut st.lent);
                    st.bufs.clear();
                    st.iov.clear();
                    st.zero_copy_result = None;
                    self.spare_sends.push(st);
                }
                let result = if res >= 0 {
                    Ok(res as usize)
                } else {
                    Err(io::Error::from_raw_os_error(-res).kind())
                };
                Some(Event {
                    sent: Some(result),
                    ..Event::new(token)
                })
            }
            CONNECT => {
                w.connect = Op::Idle;
                self.connect_addrs.remove(&token.0);
                self.current = Current::Connected(res);
                Some(Event {
                    writable: res == 0,
                    error: res < 0,
                    ..Event::new(token)
                })
            }
            ACCEPT => {
                if !more {
                    w.input = Op::Idle;
                }
                if res >= 0 {
                    self.current = Current::Accepted(res);
                    Some(readable(token))
                } else if errno == libc::ECANCELED {
                    None
                } else {
                    // Not re-armed until the poller has decided what the error means
                    // (it pauses accepting when descriptors ran out).
                    w.input_ended = true;
                    self.current = Current::Failed(errno);
                    Some(readable(token))
                }
            }
            _ => None,
        };
        // Level-triggered behaviour: whatever ended and is still wanted is armed again.
        self.reconcile(token);
        event
    }

    fn start_waker(&mut self) {
        let sqe = opcode::PollAdd::new(types::Fd(self.waker_fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(WAKE << KIND_SHIFT);
        self.push(&sqe);
        self.in_flight += 1;
    }

    /// Takes what waits in a closed listener's queue before its descriptor closes.
    ///
    /// io_uring waits on a listener exclusively: each new connection wakes one waiter.
    /// If the socket is shared with another process (a restart), a wake-up that reached
    /// this ring while its accept was being cancelled is lost to the other process, and
    /// that connection would sit in the queue until the next one arrives. Accepting the
    /// queue's head here (these connections are served like any other) leaves none
    /// behind; anything arriving later wakes the remaining waiters.
    fn sweep(&mut self, token: Token, listener: OwnedFd) {
        for _ in 0..SWEEP_LIMIT {
            match sys::accept(std::os::fd::AsRawFd::as_raw_fd(&listener)) {
                Ok((conn, _)) => self.swept.push((token, conn)),
                Err(e) if sys::AcceptError::classify(&e) == sys::AcceptError::Transient => {}
                Err(_) => break,
            }
        }
    }

    /// An operation of a closed socket finished; closes the socket after the last one.
    fn retired_op(&mut self, token: Token) {
        if let Some(i) = self.retiring.iter().position(|r| r.token == token) {
            self.retiring[i].ops -= 1;
            if self.retiring[i].ops == 0 {
                let done = self.retiring.swap_remove(i);
                if let super::TokenKind::Listener(_) = token.kind() {
                    self.sweep(token, done.fd);
                }
            }
        }
    }

    /// Sockets closed by the poller that wait for their operations to finish.
    pub(crate) fn closing(&self) -> usize {
        self.retiring.len()
    }

    /// Appends the bytes of the current receive event to `buf` (after a readability
    /// poll, reads them from the socket into it): `Ok(0)` at end-of-file, `WouldBlock`
    /// if the event carried none.
    pub(crate) fn receive(
        &mut self,
        fd: RawFd,
        buf: &mut BytesMut,
        max: usize,
    ) -> io::Result<usize> {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Data { token, bid, len } => {
                buf.extend_from_slice(self.bufs.data(bid, len));
                self.bufs.push(bid);
                // A full provided buffer: more is probably waiting.
                self.received(token, len, len == BUF_LEN);
                Ok(len)
            }
            Current::Ready(token) => {
                let asked = (buf.capacity() - buf.len()).min(max);
                let result = sys::read_into(fd, buf, max);
                match &result {
                    Ok(0) => self.input_ended(token),
                    // More than a small buffer's worth: a stream, which stays on reads
                    // into its own buffer (the end of each of its messages is a short
                    // read, and switching to a multishot receive there would copy the
                    // start of the next one through provided buffers).
                    Ok(n) => self.received(token, *n, *n == asked || *n > BUF_LEN),
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => self.input_ended(token),
                }
                result
            }
            Current::Eof => Ok(0),
            Current::Failed(errno) => Err(io::Error::from_raw_os_error(errno)),
            other => {
                self.current = other;
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }

    /// A read delivered `len` bytes (`bursting`: probably more waiting): keeps the
    /// watch's pacing in step.
    fn received(&mut self, token: Token, len: usize, bursting: bool) {
        if let Some(w) = self.watch_mut(token) {
            let was = w.one_at_a_time();
            w.bursting = bursting;
            w.room = w
                .room
                .saturating_sub(u32::try_from(len).unwrap_or(u32::MAX));
            if w.one_at_a_time() != was {
                self.reconcile(token);
            }
        }
    }

    /// A read found end-of-file or an error: the poll re-armed meanwhile is cancelled,
    /// and nothing is armed again until the poller re-registers the socket.
    fn input_ended(&mut self, token: Token) {
        if let Some(w) = self.watch_mut(token) {
            w.input_ended = true;
            self.reconcile(token);
        }
    }
}

/// What a wait's result means: completions, a timeout or an interrupted wait are all
/// fine (the caller collects what there is).
fn settle(result: io::Result<usize>) -> io::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
    }
}

fn readable(token: Token) -> Event {
    Event {
        readable: true,
        ..Event::new(token)
    }
}

fn cancel(target: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(target)
        .build()
        .user_data(CANCEL << KIND_SHIFT)
}

impl Drop for Uring {
    fn drop(&mut self) {
        self.recycle_current();
        if self.started {
            // Cancel everything and wait for every final completion, so no operation
            // outlives the sockets and buffers it uses.
            let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(CANCEL << KIND_SHIFT);
            self.push(&sqe);
            let deadline = Instant::now() + DRAIN_LIMIT;
            while self.in_flight > 0 && Instant::now() < deadline {
                let ts = types::Timespec::from(Duration::from_millis(10));
                let args = types::SubmitArgs::new().timespec(&ts);
                let _ = self.ring.submitter().submit_with_args(1, &args);
                self.cqes.clear();
                self.collect();
                for &(ud, res, flags) in &self.cqes {
                    let kind = (ud & KIND_MASK) >> KIND_SHIFT;
                    if kind == ACCEPT && res >= 0 {
                        // Nobody is left to serve it: closed, not leaked (a leaked
                        // descriptor would leave its client waiting forever).
                        // SAFETY: the kernel just created this descriptor for us.
                        drop(unsafe { OwnedFd::from_raw_fd(res) });
                    }
                    if kind != CANCEL && !cqueue::more(flags) {
                        self.in_flight -= 1;
                    }
                }
            }
            if self.in_flight > 0 {
                // The kernel may still use the ring, its buffers and pending sends'
                // segments: leak them all rather than free memory it could touch.
                tracing::error!(
                    in_flight = self.in_flight,
                    "io_uring operations did not finish; leaking the ring and its buffers"
                );
                std::mem::forget(std::mem::take(&mut self.conns));
                std::mem::forget(std::mem::take(&mut self.retiring));
                std::mem::forget(std::mem::take(&mut self.connect_addrs));
                return;
            }
        }
        self.retiring.clear();
        // SAFETY: both are dropped exactly once, here; the ring first, so the kernel has
        // let go of the buffer group before its memory is freed.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            ManuallyDrop::drop(&mut self.bufs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_32_bytes() {
        // Every connection has one, idle ones included (see `Watch`).
        assert_eq!(std::mem::size_of::<Option<Watch>>(), 32);
    }
}
