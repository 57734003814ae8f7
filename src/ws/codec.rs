//! Messages from frames and frames from messages, with no I/O.
//!
//! The [`Decoder`] takes frames off the front of an [`Input`] and hands out complete
//! messages and control frames, enforcing RFC 6455's framing rules, the size limits
//! (checked against a frame's declared length before its payload is buffered), UTF-8 of
//! text (fragment by fragment, so an invalid byte fails at once) and permessage-deflate.
//! A single-frame message is the frame's payload itself, unmasked in place: no copy.
//! The [`Encoder`] writes messages and control frames into an [`Output`].

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::close;
use super::deflate::{Deflate, InflateError};
use super::frame::{self, OpCode, Parsed};
use super::mask;
use super::message::{Message, Text};
use super::utf8::Validator;
use crate::{Input, Output};

/// The sizes a decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame payload.
    pub max_frame: usize,
    /// The largest message (all its fragments, after inflating).
    pub max_message: usize,
}

/// Which end of the connection this is: a server's peers mask their frames, a client's
/// do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// This end accepted the connection.
    Server,
    /// This end dialed it.
    Client,
}

/// What the decoder took off the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete data message.
    Message(Message),
    /// A ping, with its payload.
    Ping(Bytes),
    /// A pong, with its payload.
    Pong(Bytes),
    /// A close frame: its code ([`close::NO_STATUS`] if it had none) and reason.
    Close {
        /// The status code.
        code: u16,
        /// The reason (UTF-8, checked).
        reason: Bytes,
    },
}

/// The peer broke the protocol: the connection fails with this close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// The close code to fail with (1002, 1007 or 1009).
    pub code: u16,
    /// What was wrong.
    pub what: &'static str,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (close code {})", self.what, self.code)
    }
}

impl std::error::Error for ProtocolError {}

fn fail(code: u16, what: &'static str) -> ProtocolError {
    ProtocolError { code, what }
}

/// A fragmented message being assembled.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    data: BytesMut,
    utf8: Validator,
}

/// Takes frames off an input and hands out messages.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    limits: Limits,
    /// permessage-deflate was negotiated: RSV1 marks compressed messages.
    compressed_allowed: bool,
    message: Option<Partial>,
    /// UTF-8 of the front frame's payload checked while it is still arriving.
    early: Early,
}

/// Text checked before its frame is complete, so a peer sending one long frame with an
/// invalid byte near its start fails when that byte arrives, not a megabyte later.
#[derive(Debug, Default)]
struct Early {
    /// Payload bytes of the front frame already checked.
    checked: usize,
    /// The validator for a first frame (a continuation uses its message's).
    utf8: Validator,
}

/// Bytes unmasked at a time for the early check (a copy: the frame stays masked in the
/// input until it is complete and unmasked in place).
const EARLY_CHUNK: usize = 256;

impl Decoder {
    /// A decoder for this end of a connection.
    pub fn new(role: Role, limits: Limits, compressed_allowed: bool) -> Decoder {
        Decoder {
            role,
            limits,
            compressed_allowed,
            message: None,
            early: Early::default(),
        }
    }

    /// Checks the UTF-8 of a text frame's payload that has arrived so far; `false` if
    /// the frame is not uncompressed text (nothing to check before it is complete).
    fn check_early(&mut self, input: &Input, h: &frame::Header) -> Result<bool, ProtocolError> {
        let first = h.opcode == OpCode::Text && !h.rsv1;
        let utf8 = match &mut self.message {
            Some(m) if h.opcode == OpCode::Continuation && m.text && !m.compressed => &mut m.utf8,
            None if first => &mut self.early.utf8,
            _ => return Ok(false),
        };
        let arrived = &input.as_slice()[h.header_len..];
        let mut buf = [0u8; EARLY_CHUNK];
        while self.early.checked < arrived.len() {
            let at = self.early.checked;
            let n = (arrived.len() - at).min(EARLY_CHUNK);
            let chunk = &mut buf[..n];
            chunk.copy_from_slice(&arrived[at..at + n]);
            if let Some(key) = h.mask {
                mask::apply(chunk, key, at);
            }
            utf8.feed(chunk, false)
                .map_err(|_| fail(close::INVALID_PAYLOAD, "text that is not UTF-8"))?;
            self.early.checked += n;
        }
        Ok(true)
    }

    /// Takes the next message or control frame off `input`. `Ok(None)` means more bytes
    /// are needed (and [`Input::want`] was told how many); call again when they come.
    /// `deflate` must be given if permessage-deflate was negotiated.
    ///
    /// # Errors
    /// The peer broke the protocol; the connection must fail with the error's code.
    pub fn decode(
        &mut self,
        input: &mut Input,
        mut deflate: Option<&mut Deflate>,
    ) -> Result<Option<Incoming>, ProtocolError> {
        loop {
            let h = match frame::parse(input.as_slice(), self.compressed_allowed) {
                Ok(Parsed::Need(n)) => {
                    input.want(n);
                    return Ok(None);
                }
                Ok(Parsed::Header(h)) => h,
                Err(frame::FrameError::ReservedBits) => {
                    return Err(fail(close::PROTOCOL_ERROR, "reserved bits set"))
                }
                Err(frame::FrameError::ReservedOpcode) => {
                    return Err(fail(close::PROTOCOL_ERROR, "reserved opcode"))
                }
                Err(frame::FrameError::BadControlFrame) => {
                    return Err(fail(
                        close::PROTOCOL_ERROR,
                        "control frame fragmented or too long",
                    ))
                }
                Err(_) => return Err(fail(close::PROTOCOL_ERROR, "bad frame length")),
            };
            match (self.role, h.mask.is_some()) {
                (Role::Server, false) => {
                    return Err(fail(close::PROTOCOL_ERROR, "unmasked client frame"))
                }
                (Role::Client, true) => {
                    return Err(fail(close::PROTOCOL_ERROR, "masked server frame"))
                }
                _ => {}
            }
            if h.len > self.limits.max_frame as u64 {
                return Err(fail(close::MESSAGE_TOO_BIG, "frame over the size limit"));
            }
            let len = h.len as usize;
            let total = h.header_len + len;
            if total > input.want_limit() {
                return Err(fail(
                    close::MESSAGE_TOO_BIG,
                    "frame larger than the server buffers",
                ));
            }
            let so_far = self.message.as_ref().map_or(0, |m| m.data.len());
            match h.opcode {
                OpCode::Continuation if self.message.is_none() => {
                    return Err(fail(
                        close::PROTOCOL_ERROR,
                        "continuation without a message",
                    ))
                }
                OpCode::Continuation if h.rsv1 => {
                    return Err(fail(close::PROTOCOL_ERROR, "RSV1 on a continuation frame"))
                }
                OpCode::Text | OpCode::Binary if self.message.is_some() => {
                    return Err(fail(
                        close::PROTOCOL_ERROR,
                        "a new message before the last one ended",
                    ))
                }
                op if op.is_control() && h.rsv1 => {
                    return Err(fail(close::PROTOCOL_ERROR, "RSV1 on a control frame"))
                }
                _ => {}
            }
            if !h.opcode.is_control() && so_far + len > self.limits.max_message {
                return Err(fail(close::MESSAGE_TOO_BIG, "message over the size limit"));
            }
            if input.len() < total {
                if self.check_early(input, &h)? {
                    // Called again as each piece arrives, to check it then.
                    input.want_streaming(total);
                } else {
                    input.want(total);
                }
                return Ok(None);
            }
            input.skip(h.header_len);
            let mut payload = input.next_mut(len);
            if let Some(key) = h.mask {
                mask::apply(&mut payload, key, 0);
            }
            let early = std::mem::take(&mut self.early);
            match h.opcode {
                OpCode::Ping => return Ok(Some(Incoming::Ping(payload.freeze()))),
                OpCode::Pong => return Ok(Some(Incoming::Pong(payload.freeze()))),
                OpCode::Close => {
                    let (code, reason) = close::parse(&payload.freeze())
                        .map_err(|_| fail(close::PROTOCOL_ERROR, "malformed close frame"))?;
                    return Ok(Some(Incoming::Close { code, reason }));
                }
                OpCode::Text | OpCode::Binary => {
                    let mut m = Partial {
                        text: h.opcode == OpCode::Text,
                        compressed: h.rsv1,
                        data: payload,
                        utf8: early.utf8,
                    };
                    if m.text && !m.compressed {
                        m.utf8
                            .feed(&m.data[early.checked..], h.fin)
                            .map_err(|_| fail(close::INVALID_PAYLOAD, "text that is not UTF-8"))?;
                    }
                    if h.fin {
                        return complete(m, deflate.as_deref_mut(), self.limits.max_message)
                            .map(Some);
                    }
                    self.message = Some(m);
                }
                OpCode::Continuation => {
                    let m = self.message.as_mut().expect("checked above");
                    if m.text && !m.compressed {
                        m.utf8
                            .feed(&payload[early.checked..], h.fin)
                            .map_err(|_| fail(close::INVALID_PAYLOAD, "text that is not UTF-8"))?;
                    }
                    m.data.extend_from_slice(&payload);
                    if h.fin {
                        let m = self.message.take().expect("checked above");
                        return complete(m, deflate.as_deref_mut(), self.limits.max_message)
                            .map(Some);
                    }
                }
            }
        }
    }
}

/// A message whose last frame arrived: inflated if compressed, checked if text.
fn complete(
    m: Partial,
    deflate: Option<&mut Deflate>,
    max_message: usize,
) -> Result<Incoming, ProtocolError> {
    let data = if m.compressed {
        let deflate = deflate.ok_or(fail(
            close::PROTOCOL_ERROR,
            "compressed without permessage-deflate",
        ))?;
        let mut out = BytesMut::new();
        deflate
            .decompress(&m.data, &mut out, max_message)
            .map_err(|e| match e {
                InflateError::TooBig => fail(
                    close::MESSAGE_TOO_BIG,
                    "message inflates past the size limit",
                ),
                InflateError::Corrupt => {
                    fail(close::INVALID_PAYLOAD, "compressed message is not DEFLATE")
                }
            })?;
        if m.text {
            Validator::default()
                .feed(&out, true)
                .map_err(|_| fail(close::INVALID_PAYLOAD, "text that is not UTF-8"))?;
        }
        out.freeze()
    } else {
        m.data.freeze()
    };
    Ok(Incoming::Message(if m.text {
        Message::Text(Text::from_checked(data))
    } else {
        Message::Binary(data)
    }))
}

/// Payloads up to this size are copied behind their header (one segment); larger ones
/// are queued by reference (no copy).
const COPY_LIMIT: usize = 4096;

/// Writes messages and control frames. A server's encoder ([`Encoder::new`]) sends
/// unmasked frames; a client's ([`Encoder::masking`]) masks each frame with a fresh key.
///
/// It holds nothing between messages: compressed payloads are built in a buffer of the
/// thread's, so an idle connection does not keep one (a kept per-connection buffer
/// cost about half a KiB for every connection that ever sent a compressed message).
#[derive(Debug, Default)]
pub struct Encoder {
    /// Frames are masked (this end is a client). A masked payload is copied: the key
    /// changes per frame, so a shared payload cannot be sent as it is.
    masking: bool,
}

thread_local! {
    /// Where compressed payloads are built before they are copied into the output.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A compressed payload larger than this leaves the thread's scratch buffer at this
/// size afterwards, so one huge message does not pin its size for the thread's life.
const SCRATCH_KEEP: usize = 256 * 1024;

impl Encoder {
    /// A server's encoder: frames go unmasked.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// A client's encoder: every frame is masked with a fresh key from
    /// [`mask::new_key`].
    pub fn masking() -> Encoder {
        Encoder { masking: true }
    }

    /// Writes a data message as one frame, compressed if `deflate` is given and the
    /// message is worth it.
    pub fn message(&mut self, out: &mut Output, msg: &Message, deflate: Option<&mut Deflate>) {
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        match deflate {
            Some(d) if d.worth_compressing(payload.len()) => SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                scratch.clear();
                d.compress(payload, &mut scratch);
                let key = self.key();
                write_frame_header(out, opcode, true, key, scratch.len());
                if let Some(key) = key {
                    mask::apply(&mut scratch, key, 0);
                }
                out.write(&scratch);
                if scratch.capacity() > SCRATCH_KEEP {
                    scratch.clear();
                    scratch.shrink_to(SCRATCH_KEEP);
                }
            }),
            _ => {
                let key = self.key();
                write_frame_header(out, opcode, false, key, payload.len());
                match key {
                    Some(key) => masked_copy(out, payload, key),
                    None if payload.len() <= COPY_LIMIT => out.write(payload),
                    None => out.write_bytes(payload.clone()),
                }
            }
        }
    }

    /// Writes a control frame (at most 125 bytes of payload, which the caller keeps to).
    pub fn control(&mut self, out: &mut Output, opcode: OpCode, payload: &[u8]) {
        debug_assert!(opcode.is_control() && payload.len() <= 125);
        let key = self.key();
        write_frame_header(out, opcode, false, key, payload.len());
        match key {
            Some(key) => masked_copy(out, payload, key),
            None => out.write(payload),
        }
    }

    /// A data message as one frame in a buffer of its own, uncompressed: for queueing
    /// from another thread ([`crate::ConnHandle::send`]). A masking encoder masks it.
    pub fn frame(&self, msg: &Message) -> Bytes {
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        let key = self.key();
        let mut h = [0u8; frame::MAX_HEADER_LEN];
        let n = frame::write_header(&mut h, true, false, opcode, key, payload.len() as u64);
        let mut buf = BytesMut::with_capacity(n + payload.len());
        buf.extend_from_slice(&h[..n]);
        buf.extend_from_slice(payload);
        if let Some(key) = key {
            mask::apply(&mut buf[n..], key, 0);
        }
        buf.freeze()
    }

    fn key(&self) -> Option<[u8; 4]> {
        self.masking.then(mask::new_key)
    }
}

/// Copies `payload` into the output and masks the copy in place.
fn masked_copy(out: &mut Output, payload: &[u8], key: [u8; 4]) {
    if payload.is_empty() {
        return;
    }
    let dst = out.malloc(payload.len());
    dst.copy_from_slice(payload);
    mask::apply(dst, key, 0);
}

fn write_frame_header(
    out: &mut Output,
    opcode: OpCode,
    compressed: bool,
    key: Option<[u8; 4]>,
    len: usize,
) {
    let mut h = [0u8; frame::MAX_HEADER_LEN];
    let n = frame::write_header(&mut h, true, compressed, opcode, key, len as u64);
    out.write(&h[..n]);
}

/// The header of an unmasked, unfragmented frame, as its own `Bytes`: for sending a
/// shared payload from another thread behind it ([`crate::ConnHandle::send_all`]).
pub fn frame_header(opcode: OpCode, compressed: bool, len: usize) -> Bytes {
    let mut h = [0u8; frame::MAX_HEADER_LEN];
    let n = frame::write_header(&mut h, true, compressed, opcode, None, len as u64);
    Bytes::copy_from_slice(&h[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_frame: 1 << 20,
        max_message: 1 << 20,
    };

    /// A masked client frame.
    fn client_frame(fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut h = [0u8; frame::MAX_HEADER_LEN];
        let n = frame::write_header(&mut h, fin, rsv1, opcode, Some(key), payload.len() as u64);
        let mut f = h[..n].to_vec();
        let mut p = payload.to_vec();
        mask::apply(&mut p, key, 0);
        f.extend_from_slice(&p);
        f
    }

    /// Decodes everything in `bytes`, fed `split` bytes at a time.
    fn decode_all(bytes: &[u8], split: usize) -> Result<Vec<Incoming>, ProtocolError> {
        let mut d = Decoder::new(Role::Server, LIMITS, false);
        let mut input = Input::from_slice(&[]);
        let mut out = Vec::new();
        for chunk in bytes.chunks(split.max(1)) {
            input.buf.extend_from_slice(chunk);
            while let Some(event) = d.decode(&mut input, None)? {
                out.push(event);
            }
        }
        assert!(input.is_empty(), "everything consumed");
        Ok(out)
    }

    #[test]
    fn fragmented_messages_with_interleaved_control_frames_at_any_split() {
        let mut wire = client_frame(false, false, OpCode::Text, "frag".as_bytes());
        wire.extend(client_frame(true, false, OpCode::Ping, b"p"));
        wire.extend(client_frame(
            false,
            false,
            OpCode::Continuation,
            "men".as_bytes(),
        ));
        wire.extend(client_frame(
            true,
            false,
            OpCode::Continuation,
            "tée €".as_bytes(),
        ));
        wire.extend(client_frame(true, false, OpCode::Binary, &[0, 1, 2]));
        wire.extend(client_frame(
            true,
            false,
            OpCode::Close,
            &[0x03, 0xe8, b'o', b'k'],
        ));
        for split in 1..=wire.len() {
            let got = decode_all(&wire, split).unwrap();
            assert_eq!(
                got,
                [
                    Incoming::Ping(Bytes::from_static(b"p")),
                    Incoming::Message(Message::from("fragmentée €")),
                    Incoming::Message(Message::Binary(Bytes::from_static(&[0, 1, 2]))),
                    Incoming::Close {
                        code: 1000,
                        reason: Bytes::from_static(b"ok")
                    },
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn a_single_frame_message_is_the_input_buffer_itself() {
        let wire = client_frame(true, false, OpCode::Binary, &[7u8; 300]);
        let mut input = Input::from_slice(&wire);
        let start = input.as_slice().as_ptr() as usize;
        let mut d = Decoder::new(Role::Server, LIMITS, false);
        let Some(Incoming::Message(Message::Binary(b))) = d.decode(&mut input, None).unwrap()
        else {
            panic!("a message");
        };
        assert_eq!(b.as_ptr() as usize, start + 8, "unmasked in place, no copy");
        assert!(b.iter().all(|&x| x == 7));
    }

    #[test]
    fn protocol_violations_fail_with_their_close_code() {
        let unmasked = {
            let mut h = [0u8; frame::MAX_HEADER_LEN];
            let n = frame::write_header(&mut h, true, false, OpCode::Text, None, 2);
            let mut f = h[..n].to_vec();
            f.extend_from_slice(b"hi");
            f
        };
        let cont_first = client_frame(true, false, OpCode::Continuation, b"x");
        let mut two_starts = client_frame(false, false, OpCode::Text, b"a");
        two_starts.extend(client_frame(true, false, OpCode::Text, b"b"));
        let bad_utf8 = client_frame(true, false, OpCode::Text, b"\xff");
        let bad_close = client_frame(true, false, OpCode::Close, &[0x03, 0xed]);
        let rsv1 = client_frame(true, true, OpCode::Text, b"x");
        let big = client_frame(true, false, OpCode::Binary, &vec![0; (1 << 20) + 1]);
        for (wire, code) in [
            (unmasked, 1002),
            (cont_first, 1002),
            (two_starts, 1002),
            (bad_utf8, 1007),
            (bad_close, 1002),
            (rsv1, 1002),
            (big, 1009),
        ] {
            assert_eq!(decode_all(&wire, 7).unwrap_err().code, code);
        }
    }

    #[test]
    fn an_oversized_frame_fails_before_its_payload_is_buffered() {
        let mut d = Decoder::new(Role::Server, LIMITS, false);
        // The header of a 2 MiB frame and nothing more.
        let wire = client_frame(true, false, OpCode::Binary, &vec![0; 2 << 20]);
        let mut input = Input::from_slice(&wire[..14]);
        assert_eq!(d.decode(&mut input, None).unwrap_err().code, 1009);
    }

    #[test]
    fn invalid_text_fails_when_its_byte_arrives_not_when_its_frame_completes() {
        // One 64 KiB text frame (first or continuation) whose 1000th byte is not UTF-8,
        // fed 700 bytes at a time: it fails within two feeds.
        let mut text = "é".repeat(32 << 10).into_bytes();
        text[1000] = 0xff;
        let first = client_frame(true, false, OpCode::Text, &text);
        let mut fragmented = client_frame(false, false, OpCode::Text, b"ok ");
        fragmented.extend(client_frame(true, false, OpCode::Continuation, &text));
        for wire in [first, fragmented] {
            let mut d = Decoder::new(Role::Server, LIMITS, false);
            let mut input = Input::from_slice(&[]);
            let mut fed = 0;
            let err = wire
                .chunks(700)
                .find_map(|chunk| {
                    fed += chunk.len();
                    input.buf.extend_from_slice(chunk);
                    d.decode(&mut input, None).err()
                })
                .expect("fails");
            assert_eq!(err.code, 1007);
            assert!(fed < 2100, "failed after {fed} of {} bytes", wire.len());
        }
        // The same frames, valid, still decode at any split: the early check and the
        // final one together see each byte once.
        let text = "é€😀".repeat(5000);
        let wire = client_frame(true, false, OpCode::Text, text.as_bytes());
        for split in [1, 3, 255, 256, 257, 4096] {
            let got = decode_all(&wire, split).unwrap();
            assert_eq!(
                got,
                vec![Incoming::Message(Message::Text(text.as_str().into()))]
            );
        }
    }

    #[test]
    fn compressed_messages_inflate_and_encode_back() {
        let cfg = super::super::DeflateConfig::default().threshold(0);
        let (params, _) = cfg.negotiate([&b"permessage-deflate"[..]]).unwrap();
        let mut ours = Deflate::new(params);
        let text = "compress me, compress me, compress me";
        // Encode as the server would, then decode it as if a client had sent it
        // (re-masked): the payload format is the same both ways.
        let mut out = Output::new();
        Encoder::new().message(&mut out, &Message::from(text), Some(&mut ours));
        let mut bytes: Vec<u8> = std::iter::from_fn(|| out.pop_front())
            .flat_map(|b| b.to_vec())
            .collect();
        let Parsed::Header(h) = frame::parse(&bytes, true).unwrap() else {
            panic!()
        };
        assert!(h.rsv1 && (h.len as usize) < text.len());
        let payload = bytes.split_off(h.header_len);
        let wire = client_frame(true, true, OpCode::Text, &payload);
        let mut input = Input::from_slice(&wire);
        let mut d = Decoder::new(Role::Server, LIMITS, true);
        let got = d.decode(&mut input, Some(&mut ours)).unwrap();
        assert_eq!(got, Some(Incoming::Message(Message::from(text))));
    }
}
