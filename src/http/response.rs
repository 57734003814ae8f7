//! Writing a response straight into the connection's output.

use std::mem::MaybeUninit;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use crate::Output;

use super::date::with_date;

/// The response to one request, written into the connection's output as it is built (no
/// intermediate allocation).
///
/// Call [`status`](Response::status) first if the status is not `200 OK`, then
/// [`header`](Response::header) any number of times, then one of the `body` methods.
/// `Server`, `Content-Length`, `Date` (and `Connection: close` when the connection is
/// closing) are added by the layer; do not set them. A response left without a body is
/// finished with an empty one.
pub struct Response<'a> {
    out: &'a mut Output,
    head_only: bool,
    close: bool,
    stage: Stage,
    /// The poller's turn time, for the `Date` header's cache.
    now: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Start,
    Headers,
    Done,
}

impl<'a> Response<'a> {
    pub(crate) fn new(
        out: &'a mut Output,
        head_only: bool,
        close: bool,
        now: Instant,
    ) -> Response<'a> {
        Response {
            out,
            head_only,
            close,
            stage: Stage::Start,
            now,
        }
    }

    /// Sets the status line. Only before any header or body.
    ///
    /// # Panics
    /// If a header or the body was already written, or `reason` contains CR or LF.
    pub fn status(&mut self, code: u16, reason: &str) -> &mut Self {
        assert!(
            self.stage == Stage::Start,
            "Response::status after headers or body"
        );
        assert_clean(reason.as_bytes(), "status reason");
        self.start(code, reason);
        self
    }

    /// Adds a header.
    ///
    /// # Panics
    /// If the body was already written, or the name or value contains CR or LF (header
    /// injection), or the name is one the layer sets itself.
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        assert!(self.stage != Stage::Done, "Response::header after the body");
        assert_clean(name.as_bytes(), "header name");
        assert_clean(value, "header value");
        assert!(
            !is_reserved(name),
            "Response::header({name:?}): the HTTP layer sets this header"
        );
        if self.stage == Stage::Start {
            self.start(200, "OK");
        }
        append(self.out.buf_mut(), name.len() + value.len() + 4, |line| {
            line.push(name.as_bytes());
            line.push(b": ");
            line.push(value);
            line.push(b"\r\n");
        });
        self
    }

    /// Closes the connection after this response (adds `Connection: close`).
    pub fn close(&mut self) -> &mut Self {
        self.close = true;
        self
    }

    /// Finishes the response with `body`, copied into the output.
    pub fn body(&mut self, body: &[u8]) {
        self.finish_head(body.len());
        if !self.head_only {
            self.out.write(body);
        }
    }

    /// Finishes the response with `body`, queued without copying.
    pub fn body_bytes(&mut self, body: Bytes) {
        self.finish_head(body.len());
        if !self.head_only {
            self.out.write_bytes(body);
        }
    }

    /// Whether the connection closes after this response.
    pub(crate) fn closes(&self) -> bool {
        self.close
    }

    /// Finishes a response that got no body.
    pub(crate) fn finish(&mut self) {
        if self.stage != Stage::Done {
            self.body(b"");
        }
    }

    #[inline]
    fn start(&mut self, code: u16, reason: &str) {
        let buf = self.out.buf_mut();
        if code == 200 && reason == "OK" {
            // Nearly every response: one copy of the whole line instead of five pieces
            // and a number to format.
            buf.put_slice(b"HTTP/1.1 200 OK\r\nServer: netloop\r\n");
            self.stage = Stage::Headers;
            return;
        }
        buf.put_slice(b"HTTP/1.1 ");
        let mut digits = itoa::Buffer::new();
        buf.put_slice(digits.format(code).as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(reason.as_bytes());
        buf.put_slice(b"\r\nServer: netloop\r\n");
        self.stage = Stage::Headers;
    }

    fn finish_head(&mut self, len: usize) {
        assert!(self.stage != Stage::Done, "Response body written twice");
        if self.stage == Stage::Start {
            self.start(200, "OK");
        }
        // The head's last lines go into the output after one reservation: six small
        // copies each paid a capacity check, and the variable ones a call to `memcpy`.
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(len).as_bytes();
        let (close, now) = (self.close, self.now);
        append(self.out.buf_mut(), HEAD_TAIL_MAX, |tail| {
            tail.push(b"Content-Length: ");
            tail.push(digits);
            tail.push(b"\r\nDate: ");
            with_date(now, |date| tail.push(date));
            if close {
                tail.push(b"\r\nConnection: close");
            }
            tail.push(b"\r\n\r\n");
        });
        self.stage = Stage::Done;
    }
}

/// The most the end of a response head takes, from `Content-Length` to the blank
/// line: `Content-Length: ` and 20 digits, `\r\nDate: ` and the date,
/// `\r\nConnection: close`, `\r\n\r\n`.
const HEAD_TAIL_MAX: usize = 16 + 20 + 8 + super::date::DATE_LEN + 19 + 4;

/// Appends what `write` pushes to `buf`, after one reservation of at least `room`
/// bytes: no capacity check per piece. A push past the spare room panics, and then
/// nothing is appended.
#[inline(always)]
fn append(buf: &mut BytesMut, room: usize, write: impl FnOnce(&mut Spare<'_>)) {
    buf.reserve(room);
    let mut spare = Spare {
        room: buf.spare_capacity_mut(),
        written: 0,
    };
    write(&mut spare);
    let written = spare.written;
    let len = buf.len() + written;
    // SAFETY: `Spare::push` initialised the first `written` bytes of the spare room.
    unsafe { buf.set_len(len) };
}

/// A buffer's spare room, written from the front.
struct Spare<'a> {
    room: &'a mut [MaybeUninit<u8>],
    /// Bytes written so far, all initialised.
    written: usize,
}

impl Spare<'_> {
    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) {
        let end = self.written + bytes.len();
        self.room[self.written..end].write_copy_of_slice(bytes);
        self.written = end;
    }
}

/// Whether `name` is a header the layer sets itself (compared without regard to case).
fn is_reserved(name: &str) -> bool {
    let reserved: &[u8] = match name.len() {
        4 => b"date",
        6 => b"server",
        14 => b"content-length",
        17 => b"transfer-encoding",
        _ => return false,
    };
    name.as_bytes().eq_ignore_ascii_case(reserved)
}

/// Writes a `101 Switching Protocols` answer with `headers` into `out`: what an upgrade
/// hook sends before it switches the connection to the new protocol
/// ([`Http::on_upgrade`](super::Http::on_upgrade)). No `Content-Length` or `Date`: the
/// bytes after it belong to the new protocol.
///
/// ```
/// let mut out = netloop::Output::new();
/// netloop::http::switching_protocols(&mut out, &[("Upgrade", "websocket"), ("Connection", "Upgrade")]);
/// let bytes: Vec<u8> = std::iter::from_fn(|| out.pop_front()).flat_map(|b| b.to_vec()).collect();
/// assert_eq!(bytes, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
/// ```
///
/// # Panics
/// If a header name or value contains CR or LF (header injection).
pub fn switching_protocols(out: &mut Output, headers: &[(&str, &str)]) {
    for (name, value) in headers {
        assert_clean(name.as_bytes(), "header name");
        assert_clean(value.as_bytes(), "header value");
    }
    let buf = out.buf_mut();
    buf.put_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in headers {
        buf.put_slice(name.as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
    buf.put_slice(b"\r\n");
}

fn assert_clean(bytes: &[u8], what: &str) {
    assert!(!has_cr_or_lf(bytes), "{what} contains CR or LF");
}

/// Whether `bytes` holds a CR or an LF. Every header a service sets is checked, so this
/// looks at eight bytes at a time: a byte of `x ^ pattern` is zero where `x` holds the
/// pattern's byte, and `(v - 0x01…) & !v & 0x80…` is non-zero exactly when some byte
/// of `v` is zero. The last word overlaps the one before it instead of going byte by
/// byte through the rest.
fn has_cr_or_lf(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let word_has = |chunk: &[u8]| {
        let x = u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
        has_zero_byte(x ^ (ONES * u64::from(b'\r'))) || has_zero_byte(x ^ (ONES * u64::from(b'\n')))
    };
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| b == b'\r' || b == b'\n');
    }
    let mut chunks = bytes.chunks_exact(8);
    if chunks.any(word_has) {
        return true;
    }
    !bytes.len().is_multiple_of(8) && word_has(&bytes[bytes.len() - 8..])
}

#[cfg(test)]
mod tests {
    use super::has_cr_or_lf;

    #[test]
    fn finds_a_cr_or_lf_at_every_position_of_every_length() {
        for len in 0..24 {
            let clean = vec![b'a'; len];
            assert!(!has_cr_or_lf(&clean), "clean, length {len}");
            for at in 0..len {
                for bad in [b'\r', b'\n'] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    assert!(has_cr_or_lf(&v), "{bad:#x} at {at} of {len}");
                }
            }
        }
        // Bytes next to CR and LF, and the high bit, are not mistaken for them.
        assert!(!has_cr_or_lf(
            b"\x0b\x0c\x0e\x09\x8a\x8d\xff\x00\x0b\x0c\x0e\x09\x8a\x8d"
        ));
    }
}
