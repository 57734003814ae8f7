//! The read side a handler sees: the bytes buffered for one connection.

use bytes::{Bytes, BytesMut};

/// The connection's input buffer, filled by the poller and drained by the handler.
///
/// Data taken with [`next`](Input::next) or [`until`](Input::until) is a [`Bytes`] that
/// shares the buffer's memory (no copy) and stays valid for as long as it is kept: after
/// the handler returns and after later reads. The buffer it came from is not reused
/// while any such `Bytes` is alive.
#[derive(Debug)]
pub struct Input {
    pub(crate) buf: BytesMut,
    /// Do not call the handler until this many bytes are buffered.
    pub(crate) want: usize,
    /// This many bytes will be needed, but call the handler as they arrive
    /// ([`want_streaming`](Input::want_streaming)).
    pub(crate) streaming: usize,
    /// The most [`want`](Input::want) may ask for ([`Builder::max_want`](crate::Builder::max_want)).
    pub(crate) want_limit: usize,
    /// A `want` above the limit was refused: the connection closes with
    /// [`CloseReason::InputLimit`](crate::CloseReason::InputLimit).
    pub(crate) over_limit: bool,
    /// Bytes removed since the runner last looked: tells "made progress" apart from
    /// "returned without consuming".
    pub(crate) consumed: usize,
    /// The last call consumed nothing; wait for new bytes before calling again.
    pub(crate) stalled: bool,
    /// Some call consumed input since the poller last looked (restarts the read timeout).
    pub(crate) progressed: bool,
}

/// What [`Input::want`] may ask for when no server set a limit ([`Input::from_slice`]):
/// the same as [`Builder::max_want`](crate::Builder::max_want)'s default.
pub(crate) const DEFAULT_WANT_LIMIT: usize = 64 << 20;

impl Default for Input {
    fn default() -> Input {
        Input::with_limit(DEFAULT_WANT_LIMIT)
    }
}

impl Input {
    pub(crate) fn with_limit(want_limit: usize) -> Input {
        Input {
            buf: BytesMut::new(),
            want: 0,
            streaming: 0,
            want_limit,
            over_limit: false,
            consumed: 0,
            stalled: false,
            progressed: false,
        }
    }

    /// Number of buffered bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// All buffered bytes, without consuming them.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The first `n` buffered bytes, without consuming them.
    ///
    /// # Panics
    /// If fewer than `n` bytes are buffered (check [`len`](Input::len) first).
    pub fn peek(&self, n: usize) -> &[u8] {
        self.check(n, "peek");
        &self.buf[..n]
    }

    /// Takes the first `n` buffered bytes without copying them.
    ///
    /// # Panics
    /// If fewer than `n` bytes are buffered.
    #[inline]
    pub fn next(&mut self, n: usize) -> Bytes {
        self.check(n, "next");
        self.consumed += n;
        self.buf.split_to(n).freeze()
    }

    /// Takes the first `n` buffered bytes as a mutable buffer, without copying: for
    /// transforming them where they lie (unmasking, decrypting) before
    /// [`freeze`](BytesMut::freeze)-ing them into `Bytes`. Like [`next`](Input::next),
    /// the memory is never reused while the buffer lives.
    ///
    /// ```
    /// # let mut input = netloop::Input::from_slice(&[0x21, 0x20, 0x23]);
    /// let mut frame = input.next_mut(3);
    /// for b in frame.iter_mut() {
    ///     *b ^= 0x40; // unmask in place
    /// }
    /// assert_eq!(&frame.freeze()[..], b"a`c");
    /// ```
    ///
    /// # Panics
    /// If fewer than `n` bytes are buffered.
    pub fn next_mut(&mut self, n: usize) -> BytesMut {
        self.check(n, "next_mut");
        self.consumed += n;
        self.buf.split_to(n)
    }

    /// Discards the first `n` buffered bytes.
    ///
    /// # Panics
    /// If fewer than `n` bytes are buffered.
    pub fn skip(&mut self, n: usize) {
        self.check(n, "skip");
        self.consumed += n;
        // Advancing moves the start; split_to would make (and drop) a second handle to
        // the buffer, promoting it to the shared representation.
        bytes::Buf::advance(&mut self.buf, n);
    }

    /// Takes everything up to and including the first occurrence of `delim`, without
    /// copying, or returns `None` (consuming nothing) if `delim` is not buffered yet.
    ///
    /// ```
    /// # let mut input = netloop::Input::from_slice(b"GET / HTTP/1.1\r\n\r\nrest");
    /// let head = input.until(b"\r\n\r\n").unwrap();
    /// assert_eq!(&head[..], b"GET / HTTP/1.1\r\n\r\n");
    /// assert_eq!(input.as_slice(), b"rest");
    /// assert!(input.until(b"\n").is_none());
    /// ```
    ///
    /// # Panics
    /// If `delim` is empty.
    pub fn until(&mut self, delim: &[u8]) -> Option<Bytes> {
        let at = find(&self.buf, delim)?;
        Some(self.next(at + delim.len()))
    }

    /// Declares that the handler needs at least `n` buffered bytes before it can make
    /// progress: it is not called again until that many are buffered. The declaration
    /// lasts until the next call. A `want` above the input high-water mark raises the
    /// mark for this connection, so the bytes can arrive.
    ///
    /// A `want` above [`want_limit`](Input::want_limit) is refused: nothing more is read,
    /// and once the call returns the connection closes (after sending what the handler
    /// wrote) with [`CloseReason::InputLimit`](crate::CloseReason::InputLimit). So a
    /// length a peer declares can never make the server buffer without bound; a protocol
    /// that wants to answer first (HTTP's `413`, WebSocket's close code 1009) compares
    /// the length with the limit before asking.
    pub fn want(&mut self, n: usize) {
        if n > self.want_limit {
            self.over_limit = true;
        } else {
            self.want = n;
        }
    }

    /// Like [`want`](Input::want) (the mark is raised so `n` bytes can arrive, and the
    /// same limit applies), but the handler is still called each time new bytes
    /// arrive, before `n` are buffered: for a protocol that checks a long frame while it
    /// comes in, such as WebSocket failing invalid UTF-8 in a text frame at once. A call
    /// that consumes nothing still waits for new bytes. The declaration lasts until the
    /// next call.
    ///
    /// ```
    /// # let mut input = netloop::Input::from_slice(b"partial frame");
    /// input.want_streaming(1 << 20); // a 1 MiB frame; look at each piece as it comes
    /// assert!(input.len() < 1 << 20);
    /// ```
    pub fn want_streaming(&mut self, n: usize) {
        if n > self.want_limit {
            self.over_limit = true;
        } else {
            self.streaming = n;
        }
    }

    /// What the handler declared it needs buffered ([`want`](Input::want) or
    /// [`want_streaming`](Input::want_streaming)): the mark is raised to it.
    pub(crate) fn declared(&self) -> usize {
        self.want.max(self.streaming)
    }

    /// Forgets the last call's declarations (a new call makes its own).
    pub(crate) fn reset_declarations(&mut self) {
        self.want = 0;
        self.streaming = 0;
    }

    /// The largest [`want`](Input::want) this connection accepts
    /// ([`Builder::max_want`](crate::Builder::max_want)).
    pub fn want_limit(&self) -> usize {
        self.want_limit
    }

    /// An input holding `data`: for unit-testing request parsers outside a server.
    pub fn from_slice(data: &[u8]) -> Input {
        Input {
            buf: BytesMut::from(data),
            ..Input::default()
        }
    }

    /// Whether the runner should call the handler now.
    pub(crate) fn ready(&self) -> bool {
        !self.stalled && !self.over_limit && !self.buf.is_empty() && self.buf.len() >= self.want
    }

    /// New bytes were appended: lift a stall.
    pub(crate) fn appended(&mut self) {
        self.stalled = false;
    }

    /// Appends bytes read while the handler was away on a worker.
    pub(crate) fn absorb(&mut self, incoming: &mut BytesMut) {
        if incoming.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            // Cheaper to swap than to copy: the empty buffer goes back to the caller.
            std::mem::swap(&mut self.buf, incoming);
        } else {
            self.buf.extend_from_slice(incoming);
            incoming.clear();
        }
        self.appended();
    }

    #[inline]
    fn check(&self, n: usize, what: &str) {
        if n > self.buf.len() {
            too_few(what, n, self.buf.len());
        }
    }
}

/// The panic of a consuming call asked for more than is buffered (out of line: the
/// calls that check are on every request's path).
#[cold]
#[inline(never)]
fn too_few(what: &str, n: usize, len: usize) -> ! {
    panic!("Input::{what}({n}) with only {len} bytes buffered");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    assert!(!needle.is_empty(), "Input::until with an empty delimiter");
    if needle.len() == 1 {
        return haystack.iter().position(|&b| b == needle[0]);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hands_out_bytes_that_survive_further_appends() {
        let mut input = Input::from_slice(b"abcdef");
        let first = input.next(3);
        input.buf.extend_from_slice(b"ghi");
        input.skip(2);
        assert_eq!(&first[..], b"abc");
        assert_eq!(input.as_slice(), b"fghi");
        assert_eq!(input.consumed, 5);
    }

    #[test]
    fn until_finds_single_and_multi_byte_delimiters() {
        let mut input = Input::from_slice(b"a\nbc\r\n");
        assert_eq!(&input.until(b"\n").unwrap()[..], b"a\n");
        assert_eq!(&input.until(b"\r\n").unwrap()[..], b"bc\r\n");
        assert!(input.until(b"\n").is_none());
    }

    #[test]
    #[should_panic(expected = "only 2 bytes buffered")]
    fn next_past_the_end_panics_with_a_clear_message() {
        Input::from_slice(b"ab").next(3);
    }

    #[test]
    fn ready_respects_stall_and_want() {
        let mut input = Input::from_slice(b"abc");
        assert!(input.ready());
        input.want(4);
        assert!(!input.ready());
        input.want(0);
        input.stalled = true;
        assert!(!input.ready());
        input.appended();
        assert!(input.ready());
    }

    #[test]
    fn want_streaming_declares_the_need_without_holding_calls_back() {
        let mut input = Input::from_slice(b"abc");
        input.want_streaming(1000);
        assert!(input.ready(), "called as bytes arrive");
        assert_eq!(input.declared(), 1000, "the mark still rises to it");
        input.stalled = true;
        assert!(!input.ready(), "but not again without new bytes");
        input.reset_declarations();
        assert_eq!(input.declared(), 0);
        let mut input = Input::with_limit(100);
        input.want_streaming(101);
        assert!(input.over_limit, "the limit applies as for want");
    }

    #[test]
    fn a_want_above_the_limit_is_refused_and_stops_calls() {
        let mut input = Input::with_limit(100);
        input.buf.extend_from_slice(b"abc");
        input.want(100);
        assert!(!input.over_limit);
        input.want(101);
        assert!(input.over_limit);
        assert_eq!(
            input.want, 100,
            "the refused want does not replace the last one"
        );
        assert!(!input.ready());
    }

    #[test]
    fn next_mut_hands_out_a_writable_slice_of_the_buffer() {
        let mut input = Input::from_slice(b"abcdef");
        let ptr = input.as_slice().as_ptr();
        let mut head = input.next_mut(2);
        assert_eq!(head.as_ptr(), ptr, "no copy");
        head[0] = b'X';
        assert_eq!(&head[..], b"Xb");
        assert_eq!(input.as_slice(), b"cdef");
        assert_eq!(input.consumed, 2);
    }

    #[test]
    fn absorb_swaps_into_an_empty_buffer_and_appends_otherwise() {
        let mut input = Input::default();
        let mut incoming = BytesMut::from(&b"xy"[..]);
        input.absorb(&mut incoming);
        assert_eq!(input.as_slice(), b"xy");
        assert!(incoming.is_empty());
        let mut more = BytesMut::from(&b"z"[..]);
        input.absorb(&mut more);
        assert_eq!(input.as_slice(), b"xyz");
    }
}
