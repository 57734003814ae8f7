//! The write side a handler sees: bytes queued for one connection. A queue only: putting
//! the bytes on the wire is the transport's and the driver's job (see [`Conn::flush`]).
//!
//! [`Conn::flush`]: crate::Conn::flush

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// At most this many segments go into one gathered write; more are sent by the next one.
pub(crate) const MAX_IOVECS: usize = 64;

/// A queue of bytes to send: the handler's output, and the wire-side queue of a
/// [`Transport`](crate::transport::Transport).
///
/// [`write`](Output::write) copies into a tail buffer; [`write_bytes`](Output::write_bytes)
/// queues a [`Bytes`] without copying (for example one taken from the input with
/// [`Input::next`](crate::Input::next)). Everything queued leaves in order, gathered into
/// as few system calls as the socket allows, when the handler returns (or earlier, with
/// [`Conn::flush`](crate::Conn::flush)).
///
/// ```
/// use netloop::{Bytes, Output};
///
/// let mut out = Output::new();
/// out.write(b"head ");
/// out.write_bytes(Bytes::from_static(b"shared body"));
/// assert_eq!(out.len(), 16);
/// let segments: Vec<Bytes> = std::iter::from_fn(|| out.pop_front()).collect();
/// assert_eq!(segments.concat(), b"head shared body");
/// ```
#[derive(Debug, Default)]
pub struct Output {
    /// The first queued segment, held in place rather than in `queue` (empty when
    /// nothing is queued; `queue` is then empty too). The usual reply is one segment, so
    /// a connection's queue never allocates storage for it: an io_uring send seals every
    /// reply into a segment, and a `VecDeque` grown for it stayed with the connection,
    /// ~0.13 KiB per idle connection.
    front: Bytes,
    /// The segments after `front`.
    queue: VecDeque<Bytes>,
    /// Bytes in `front` and `queue`.
    queued: usize,
    /// Bytes ahead of `front` whose buffer is lent to a send in flight
    /// ([`lend_tail`](Output::lend_tail)): counted as queued, out of reach until
    /// [`take_back`](Output::take_back).
    // (A u32, as a send's length is: with `used_tail` it fits where the padding was.)
    lent: u32,
    pub(crate) tail: BytesMut,
    /// Bytes consumed from the front (sent) since the poller last collected the count.
    pub(crate) sent: u64,
    /// The handler wrote into the tail buffer during its last call: the poller hands it a
    /// pooled buffer before the next one, so the response does not grow a fresh one.
    pub(crate) used_tail: bool,
}

impl Output {
    /// An empty queue.
    pub fn new() -> Output {
        Output::default()
    }

    /// A connection's output queue: its first call gets a pooled tail buffer; a handler
    /// that never writes through it stops getting one.
    pub(crate) fn for_connection() -> Output {
        Output {
            used_tail: true,
            ..Output::default()
        }
    }

    /// Bytes queued and not yet sent.
    pub fn len(&self) -> usize {
        self.lent as usize + self.queued + self.tail.len()
    }

    /// Whether nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for at least `additional` more bytes in the tail buffer, so the writes
    /// that follow do not reallocate.
    pub fn reserve(&mut self, additional: usize) {
        self.used_tail = true;
        self.tail.reserve(additional);
    }

    /// Appends `n` zeroed bytes and returns them to be filled in place: the equivalent of
    /// netpoll's `Malloc`.
    pub fn malloc(&mut self, n: usize) -> &mut [u8] {
        self.used_tail = true;
        let start = self.tail.len();
        self.tail.resize(start + n, 0);
        &mut self.tail[start..]
    }

    /// The tail buffer itself, for [`bytes::BufMut`]-style writes (`put_u32`, `put_slice`,
    /// formatting with `write!`). Whatever is appended to it is sent in order.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        self.used_tail = true;
        &mut self.tail
    }

    /// Copies `data` into the output.
    pub fn write(&mut self, data: &[u8]) {
        self.used_tail = true;
        self.tail.extend_from_slice(data);
    }

    /// Queues `data` without copying it.
    #[inline]
    pub fn write_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.seal_tail();
        self.push(data);
    }

    /// Takes the first queued segment whole (what was written, split where `write_bytes`
    /// calls and copies met): for a transport that encodes the handler's output. Bytes
    /// already handed to a send that has not finished are not among them.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        self.seal_tail();
        if self.front.is_empty() {
            return None;
        }
        let front = self.take_front();
        self.queued -= front.len();
        Some(front)
    }

    /// The length of the segment [`pop_front`](Output::pop_front) would take next.
    #[cfg(feature = "tls")]
    pub(crate) fn front_len(&mut self) -> Option<usize> {
        self.seal_tail();
        Some(self.front.len()).filter(|&n| n > 0)
    }

    /// Removes the first `n` queued bytes, as a writer that sent them does. Bytes
    /// already handed to a send that has not finished are not among them.
    ///
    /// # Panics
    /// If fewer than `n` such bytes are queued.
    pub fn advance(&mut self, mut n: usize) {
        let len = self.len() - self.lent as usize;
        if n > len {
            too_few(n, len);
        }
        self.sent += n as u64;
        if n == len {
            // Everything went (the common case): no segment-by-segment walk. The tail
            // is cleared in place rather than advanced, keeping its whole capacity.
            // (pop_front: VecDeque::clear's truncate costs more than a loop that usually
            // finds nothing.)
            self.front = Bytes::new();
            while self.queue.pop_front().is_some() {}
            self.queued = 0;
            self.tail.clear();
            return;
        }
        while n > 0 {
            let front = self.front.len();
            if front == 0 {
                self.tail.advance(n);
                return;
            }
            if front > n {
                self.front.advance(n);
                self.queued -= n;
                return;
            }
            n -= front;
            self.queued -= front;
            self.take_front();
        }
    }

    /// The queued bytes as segments, each a shareable `Bytes` (the tail sealed into the
    /// queue first): for a driver that keeps them alive until its send completes.
    pub(crate) fn segments(&mut self) -> impl Iterator<Item = &Bytes> {
        debug_assert_eq!(self.lent, 0, "segments asked for while a send is in flight");
        self.seal_tail();
        std::iter::once(&self.front)
            .filter(|b| !b.is_empty())
            .chain(self.queue.iter())
            .take(MAX_IOVECS)
    }

    /// The queued bytes if they are one contiguous slice (one segment, or the tail
    /// alone): sent with a plain `send`.
    pub(crate) fn only_slice(&self) -> Option<&[u8]> {
        match (
            self.front.is_empty(),
            self.queue.is_empty(),
            self.tail.is_empty(),
        ) {
            (true, _, _) => Some(&self.tail),
            (false, true, true) => Some(&self.front),
            _ => None,
        }
    }

    /// Fills `slices` with the front of the queue for one gathered write, the tail in
    /// place (not sealed: a copy-only reply costs no `Bytes`). Returns the number of slices
    /// and their total length.
    pub(crate) fn io_slices<'a>(
        &'a self,
        slices: &mut [IoSlice<'a>; MAX_IOVECS],
    ) -> (usize, usize) {
        let mut count = 0;
        let mut total = 0;
        let queued = std::iter::once(&self.front)
            .filter(|b| !b.is_empty())
            .chain(self.queue.iter());
        for seg in queued.take(MAX_IOVECS) {
            slices[count] = IoSlice::new(seg);
            total += seg.len();
            count += 1;
        }
        if count < MAX_IOVECS && !self.tail.is_empty() {
            slices[count] = IoSlice::new(&self.tail);
            total += self.tail.len();
            count += 1;
        }
        (count, total)
    }

    /// Lends the tail buffer, when it holds everything queued, to a send that the kernel
    /// performs later: the buffer moves out whole, so nothing is sealed into a shared
    /// `Bytes` (an allocation, two reference counts and a second free for every send:
    /// ~4 % of a 10,000-subscriber broadcast on io_uring). Its bytes stay counted as
    /// queued; later writes go to a new tail behind them. `None` (nothing lent) if other
    /// segments are queued, or a lent buffer is still out.
    pub(crate) fn lend_tail(&mut self) -> Option<BytesMut> {
        if self.lent > 0 || self.queued > 0 || self.tail.is_empty() {
            return None;
        }
        self.lent = u32::try_from(self.tail.len()).ok()?;
        Some(std::mem::take(&mut self.tail))
    }

    /// The send of the lent buffer `buf` finished having sent `n` of its bytes. The
    /// rest (after a short send or an error) goes back to the front of the queue. The
    /// emptied buffer becomes the tail again if nothing was written since, keeping its
    /// capacity; otherwise it is given back to the caller (for a pool, or to drop).
    ///
    /// # Panics
    /// If nothing is lent or `n` is more than was.
    pub(crate) fn take_back(&mut self, mut buf: BytesMut, n: usize) -> Option<BytesMut> {
        assert!(
            self.lent > 0 && self.lent as usize == buf.len() && n <= buf.len(),
            "{n} of {} lent bytes taken back (buffer of {})",
            self.lent,
            buf.len()
        );
        self.lent = 0;
        self.sent += n as u64;
        if n < buf.len() {
            // Rare: sealed and put in front of what was queued since.
            buf.advance(n);
            let rest = buf.split().freeze();
            self.queued += rest.len();
            let front = std::mem::replace(&mut self.front, rest);
            if !front.is_empty() {
                self.queue.push_front(front);
            }
        }
        buf.clear();
        if self.tail.capacity() == 0 {
            self.tail = buf;
            return None;
        }
        Some(buf)
    }

    /// Moves the tail's bytes into the queue so later `write_bytes` stay in order.
    // Inlined check: usually the tail is empty, and this runs for every queued segment.
    #[inline]
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.seal_nonempty_tail();
        }
    }

    #[inline(never)]
    fn seal_nonempty_tail(&mut self) {
        let sealed = self.tail.split().freeze();
        self.push(sealed);
    }

    /// Queues a non-empty segment behind the others.
    #[inline]
    fn push(&mut self, segment: Bytes) {
        self.queued += segment.len();
        if self.front.is_empty() {
            self.front = segment;
        } else {
            self.queue.push_back(segment);
        }
    }

    /// Takes the first segment, moving the next (if any) into its place.
    #[inline]
    fn take_front(&mut self) -> Bytes {
        let next = self.queue.pop_front().unwrap_or_default();
        std::mem::replace(&mut self.front, next)
    }
}

/// The panic of an `advance` past the queued bytes (out of line: `advance` runs for every
/// send).
#[cold]
#[inline(never)]
fn too_few(n: usize, len: usize) -> ! {
    panic!("Output::advance({n}) with only {len} bytes queued");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn copied_and_zero_copy_segments_leave_in_order() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut out = Output::new();
        out.write(b"one ");
        out.write_bytes(Bytes::from_static(b"two "));
        out.malloc(5).copy_from_slice(b"three");
        assert_eq!(out.len(), 13);
        assert_eq!(crate::sys::send_queue(a.as_raw_fd(), &mut out).unwrap(), 13);
        assert!(out.is_empty());
        assert_eq!(out.sent, 13);
        let mut got = [0u8; 13];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one two three");
    }

    #[test]
    fn a_full_socket_leaves_the_rest_queued() {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut out = Output::new();
        let big = Bytes::from(vec![7u8; 8 << 20]);
        out.write_bytes(big);
        crate::sys::send_queue(a.as_raw_fd(), &mut out).unwrap();
        assert!(!out.is_empty(), "8 MiB cannot fit in a socket buffer");
        assert_eq!(out.len() as u64 + out.sent, 8 << 20);
    }

    #[test]
    fn a_broken_socket_reports_the_error() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let mut out = Output::new();
        out.write(b"x");
        assert!(crate::sys::send_queue(a.as_raw_fd(), &mut out).is_err());
        assert_eq!(out.len(), 1, "nothing was consumed");
    }

    #[test]
    fn advance_crosses_segments_and_the_tail() {
        let mut out = Output::new();
        out.write_bytes(Bytes::from_static(b"abc"));
        out.write(b"def");
        out.advance(4);
        assert_eq!(out.len(), 2);
        assert_eq!(out.pop_front().unwrap(), "ef");
        assert!(out.pop_front().is_none());
    }

    #[test]
    fn a_one_segment_reply_never_allocates_queue_storage() {
        let mut out = Output::new();
        for _ in 0..3 {
            // A copied reply, sealed for a driver that holds it until the send completes.
            out.write(b"reply");
            let sealed: Vec<Bytes> = out.segments().cloned().collect();
            assert_eq!(sealed, [Bytes::from_static(b"reply")]);
            out.advance(out.len());
            // A zero-copy one.
            out.write_bytes(Bytes::from_static(b"shared"));
            assert_eq!(out.only_slice(), Some(&b"shared"[..]));
            out.advance(out.len());
            assert!(out.is_empty());
        }
        assert_eq!(
            out.queue.capacity(),
            0,
            "one segment at a time stays in `front`"
        );
    }

    #[test]
    fn segments_keep_their_order_through_the_front_the_queue_and_the_tail() {
        let mut out = Output::new();
        out.write_bytes(Bytes::from_static(b"ab"));
        out.write_bytes(Bytes::from_static(b"cd"));
        out.write(b"ef");
        out.write_bytes(Bytes::from_static(b"gh"));
        out.write(b"ij");
        assert_eq!(out.len(), 10);
        assert_eq!(out.only_slice(), None);
        let all: Vec<u8> = out.segments().flat_map(|b| b.to_vec()).collect();
        assert_eq!(all, b"abcdefghij");
        out.advance(3);
        assert_eq!(out.len(), 7);
        assert_eq!(out.pop_front().unwrap(), "d");
        out.advance(2);
        assert_eq!(out.pop_front().unwrap(), "gh");
        assert_eq!(out.only_slice(), Some(&b"ij"[..]));
        assert_eq!(out.pop_front().unwrap(), "ij");
        assert!(out.pop_front().is_none());
        assert!(out.is_empty());
        assert_eq!(out.sent, 5);
    }

    #[test]
    fn a_lent_tail_stays_queued_and_comes_back_as_the_tail_when_all_was_sent() {
        let mut out = Output::new();
        out.write(b"reply");
        let cap = out.tail.capacity();
        let lent = out.lend_tail().expect("the tail alone is lent");
        assert_eq!(&lent[..], b"reply");
        assert_eq!(out.len(), 5, "still queued while the send is out");
        assert!(out.lend_tail().is_none(), "one lent buffer at a time");
        assert_eq!(out.take_back(lent, 5), None, "it is the tail again");
        assert!(out.is_empty());
        assert_eq!(out.sent, 5);
        assert_eq!(out.tail.capacity(), cap, "with its capacity");
    }

    #[test]
    fn what_a_short_send_left_of_a_lent_tail_goes_out_before_what_was_written_since() {
        let mut out = Output::new();
        out.write(b"abcdef");
        let lent = out.lend_tail().unwrap();
        out.write(b"gh");
        out.write_bytes(Bytes::from_static(b"ij"));
        assert_eq!(out.len(), 10);
        // Only what follows the lent bytes can be taken or advanced meanwhile.
        assert_eq!(out.pop_front().unwrap(), "gh");
        let spare = out.take_back(lent, 4).expect("the tail was in use");
        assert!(spare.is_empty());
        assert_eq!(out.len(), 4);
        assert_eq!(out.sent, 4);
        let rest: Vec<u8> = out.segments().flat_map(|b| b.to_vec()).collect();
        assert_eq!(rest, b"efij");
    }

    #[test]
    fn only_the_tail_alone_is_lent() {
        let mut out = Output::new();
        assert!(out.lend_tail().is_none(), "nothing queued");
        out.write_bytes(Bytes::from_static(b"seg"));
        out.write(b"tail");
        assert!(out.lend_tail().is_none(), "a segment is ahead of the tail");
        assert_eq!(out.len(), 7);
    }

    #[test]
    fn the_lent_length_fits_in_what_was_padding() {
        // front, queue and tail (32 bytes each), queued and sent (8 each), then the
        // lent length (4) and `used_tail` (1) in the last word.
        assert_eq!(std::mem::size_of::<Output>(), 120);
    }
}
