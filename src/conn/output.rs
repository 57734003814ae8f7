//! The write side a handler sees: bytes queued for one connection, sent with one
//! gathered write.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use bytes::{Buf, Bytes, BytesMut};

use crate::sys;

/// At most this many segments go into one `sendmsg`; more are sent by the next one.
const MAX_IOVECS: usize = 64;

/// The connection's output queue.
///
/// [`write`](Output::write) copies into a tail buffer; [`write_bytes`](Output::write_bytes)
/// queues a [`Bytes`] without copying (for example one taken from the input with
/// [`Input::next`](crate::Input::next)). [`flush`](Output::flush) sends everything queued
/// with one gathered `sendmsg`; whatever the socket does not take at once stays queued
/// and the poller finishes it when the socket becomes writable. Output still queued when
/// the handler returns is flushed then.
#[derive(Debug)]
pub struct Output {
    queue: VecDeque<Bytes>,
    queued: usize,
    pub(crate) tail: BytesMut,
    fd: RawFd,
    /// The first write error; the connection closes with it.
    pub(crate) error: Option<io::ErrorKind>,
    /// Bytes sent since the poller last collected the count.
    pub(crate) sent: u64,
    /// The poller's ring has a send of the front of the queue in flight: until it
    /// completes, nothing else may write to the socket (the kernel would interleave the
    /// bytes), so `flush` leaves the output to it.
    pub(crate) ring_send: bool,
    /// The poller's driver sends this output (io_uring, inline dispatch): `flush` leaves
    /// it queued, and it is submitted to the ring when the handler returns, so one
    /// system call carries a whole turn's replies.
    pub(crate) driver_sends: bool,
    /// The handler wrote into the tail buffer during its last call: the poller hands it a
    /// pooled buffer before the next one, so the response does not grow a fresh one.
    pub(crate) used_tail: bool,
}

impl Output {
    pub(crate) fn new(fd: RawFd) -> Output {
        Output {
            queue: VecDeque::new(),
            queued: 0,
            tail: BytesMut::new(),
            fd,
            error: None,
            sent: 0,
            ring_send: false,
            driver_sends: false,
            // A new connection gets a pooled tail for its first call; a handler that
            // never writes through it stops getting one.
            used_tail: true,
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Bytes queued and not yet sent.
    pub fn len(&self) -> usize {
        self.queued + self.tail.len()
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
    pub fn write_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.seal_tail();
        self.queued += data.len();
        self.queue.push_back(data);
    }

    /// Sends as much of the queued output as the socket takes now, with one gathered
    /// write (more only if over 64 segments are queued). Returns `Ok` even if some output
    /// remains queued: the poller sends the rest when the socket is writable. An error
    /// means the connection is broken; it is closed after the handler returns.
    ///
    /// On the io_uring backend with inline dispatch the poller's ring sends the output:
    /// `flush` then leaves it queued, and it is submitted when the handler returns, in
    /// the same system call as everything else of that loop turn.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(kind) = self.error {
            return Err(kind.into());
        }
        if self.ring_send || self.driver_sends {
            return Ok(());
        }
        while !self.is_empty() {
            let (n, total) = {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                let mut total = 0;
                for seg in self.queue.iter().take(MAX_IOVECS) {
                    slices[count] = IoSlice::new(seg);
                    total += seg.len();
                    count += 1;
                }
                if count < MAX_IOVECS && !self.tail.is_empty() {
                    slices[count] = IoSlice::new(&self.tail);
                    total += self.tail.len();
                    count += 1;
                }
                match sys::send_vectored(self.fd, &slices[..count]) {
                    Ok(n) => (n, total),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.error = Some(e.kind());
                        return Err(e);
                    }
                }
            };
            self.consume(n);
            if n < total {
                // The socket buffer is full: another write now would only return EAGAIN.
                break;
            }
        }
        Ok(())
    }

    /// Moves the tail's bytes into the queue so later `write_bytes` stay in order.
    /// The queued output as segments to send (at most [`MAX_IOVECS`]), the tail sealed
    /// into the queue first so every byte is in a shareable `Bytes`.
    pub(crate) fn segments(&mut self) -> impl Iterator<Item = &Bytes> {
        self.seal_tail();
        self.queue.iter().take(MAX_IOVECS)
    }

    /// `n` bytes from the front of the queue were sent by the poller's ring.
    pub(crate) fn ring_sent(&mut self, n: usize) {
        self.ring_send = false;
        self.consume(n);
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let sealed = self.tail.split().freeze();
            self.queued += sealed.len();
            self.queue.push_back(sealed);
        }
    }

    fn consume(&mut self, mut n: usize) {
        self.sent += n as u64;
        while n > 0 {
            match self.queue.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.queued -= front.len();
                    self.queue.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    self.queued -= n;
                    return;
                }
                None => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn flush_sends_copied_and_zero_copy_segments_in_order() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut out = Output::new(a.as_raw_fd());
        out.write(b"one ");
        out.write_bytes(Bytes::from_static(b"two "));
        out.malloc(5).copy_from_slice(b"three");
        assert_eq!(out.len(), 13);
        out.flush().unwrap();
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
        let mut out = Output::new(a.as_raw_fd());
        let big = Bytes::from(vec![7u8; 8 << 20]);
        out.write_bytes(big);
        out.flush().unwrap();
        assert!(!out.is_empty(), "8 MiB cannot fit in a socket buffer");
        assert_eq!(out.len() as u64 + out.sent, 8 << 20);
    }

    #[test]
    fn a_broken_socket_reports_the_error_and_keeps_it() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let mut out = Output::new(a.as_raw_fd());
        out.write(b"x");
        assert!(out.flush().is_err());
        assert!(out.error.is_some());
        assert!(out.flush().is_err());
    }
}
