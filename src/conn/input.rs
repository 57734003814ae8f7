//! The read side a handler sees: the bytes buffered for one connection.

use bytes::{Bytes, BytesMut};

/// The connection's input buffer, filled by the poller and drained by the handler.
///
/// Data taken with [`next`](Input::next) or [`until`](Input::until) is a [`Bytes`] that
/// shares the buffer's memory (no copy) and stays valid for as long as it is kept: after
/// the handler returns and after later reads. The buffer it came from is not reused
/// while any such `Bytes` is alive.
#[derive(Debug, Default)]
pub struct Input {
    pub(crate) buf: BytesMut,
    /// Do not call the handler until this many bytes are buffered.
    pub(crate) want: usize,
    /// Bytes removed since the runner last looked: tells "made progress" apart from
    /// "returned without consuming".
    pub(crate) consumed: usize,
    /// The last call consumed nothing; wait for new bytes before calling again.
    pub(crate) stalled: bool,
    /// Some call consumed input since the poller last looked (restarts the read timeout).
    pub(crate) progressed: bool,
}

impl Input {
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
    pub fn next(&mut self, n: usize) -> Bytes {
        self.check(n, "next");
        self.consumed += n;
        self.buf.split_to(n).freeze()
    }

    /// Discards the first `n` buffered bytes.
    ///
    /// # Panics
    /// If fewer than `n` bytes are buffered.
    pub fn skip(&mut self, n: usize) {
        self.check(n, "skip");
        self.consumed += n;
        let _ = self.buf.split_to(n);
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
    pub fn want(&mut self, n: usize) {
        self.want = n;
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
        !self.stalled && !self.buf.is_empty() && self.buf.len() >= self.want
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

    fn check(&self, n: usize, what: &str) {
        assert!(
            n <= self.buf.len(),
            "Input::{what}({n}) with only {} bytes buffered",
            self.buf.len()
        );
    }
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
