//! The task protocol's frames (`PROTOCOL.md`), with no I/O: the hello and welcome of
//! the handshake, client frames and server frames, each parsed from the front of a
//! buffer ("need more", a frame and its length, or what rule it broke) and written into
//! one.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// The magic both hellos start with (§2).
pub const MAGIC: [u8; 4] = *b"NLTK";
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// The first reserved task code (§5.3): codes from here up are the protocol's.
pub const RESERVED_CODES: u32 = 0xFFFF_FF00;
/// The largest DATA chunk (§4).
pub const MAX_CHUNK: usize = 64 * 1024;
/// ERROR's code for a task code with no function (§4.2).
pub const UNKNOWN_TASK: u8 = 255;
/// The first error code reserved for the protocol (§4.2).
pub const RESERVED_ERRORS: u8 = 250;

/// The byte order of a connection's integers (§1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Least significant byte first (`L`).
    Little,
    /// Most significant byte first (`B`).
    Big,
}

impl ByteOrder {
    fn marker(self) -> u8 {
        match self {
            ByteOrder::Little => b'L',
            ByteOrder::Big => b'B',
        }
    }

    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            ByteOrder::Little => u64::from_le_bytes(b),
            ByteOrder::Big => u64::from_be_bytes(b),
        }
    }

    fn put_u16(self, out: &mut BytesMut, v: u16) {
        match self {
            ByteOrder::Little => out.put_u16_le(v),
            ByteOrder::Big => out.put_u16(v),
        }
    }

    fn put_u32(self, out: &mut BytesMut, v: u32) {
        match self {
            ByteOrder::Little => out.put_u32_le(v),
            ByteOrder::Big => out.put_u32(v),
        }
    }

    fn put_u64(self, out: &mut BytesMut, v: u64) {
        match self {
            ByteOrder::Little => out.put_u64_le(v),
            ByteOrder::Big => out.put_u64(v),
        }
    }
}

impl fmt::Display for ByteOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ByteOrder::Little => "little-endian",
            ByteOrder::Big => "big-endian",
        })
    }
}

/// What a parse found at the front of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// At least this many more bytes are needed.
    Need(usize),
    /// A value, and how many bytes it took.
    Done(T, usize),
}

/// A rule of `PROTOCOL.md` the peer broke: its section and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// The section of `PROTOCOL.md`, e.g. "5.1".
    pub rule: &'static str,
    /// What was wrong.
    pub what: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PROTOCOL.md §{}: {}", self.rule, self.what)
    }
}

impl std::error::Error for Malformed {}

fn malformed(rule: &'static str, what: impl Into<String>) -> Malformed {
    Malformed {
        rule,
        what: what.into(),
    }
}

/// The client's hello (§2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The byte order of the connection.
    pub order: ByteOrder,
    /// The highest version the client speaks.
    pub version: u16,
    /// Its name.
    pub name: String,
}

/// Why a hello is refused (§2.3): the status to answer with, or none (not this protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadHello {
    /// The magic is wrong: close without answering.
    NotThisProtocol,
    /// Status 1.
    Version,
    /// Status 2.
    Malformed,
}

/// Welcome statuses (§2.2).
pub mod status {
    /// Accepted.
    pub const ACCEPTED: u8 = 0;
    /// The client's version is not supported.
    pub const VERSION: u8 = 1;
    /// The hello was malformed.
    pub const MALFORMED: u8 = 2;
}

impl Hello {
    /// Parses a hello at the front of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Parsed<Hello>, BadHello> {
        let have = buf.len().min(4);
        if buf[..have] != MAGIC[..have] {
            return Err(BadHello::NotThisProtocol);
        }
        if buf.len() < 8 {
            return Ok(Parsed::Need(8 - buf.len()));
        }
        let order = match buf[4] {
            b'L' => ByteOrder::Little,
            b'B' => ByteOrder::Big,
            _ => return Err(BadHello::Malformed),
        };
        let version = order.u16([buf[5], buf[6]]);
        let len = 8 + buf[7] as usize;
        if buf.len() < len {
            return Ok(Parsed::Need(len - buf.len()));
        }
        if version < 1 {
            return Err(BadHello::Version);
        }
        let name = std::str::from_utf8(&buf[8..len]).map_err(|_| BadHello::Malformed)?;
        Ok(Parsed::Done(
            Hello {
                order,
                version,
                name: name.to_string(),
            },
            len,
        ))
    }

    /// Writes this hello (a name longer than 255 bytes is refused).
    pub fn write(&self, out: &mut BytesMut) -> Result<(), Malformed> {
        if self.name.len() > 255 {
            return Err(malformed("2.1", "a client name is at most 255 bytes"));
        }
        out.put_slice(&MAGIC);
        out.put_u8(self.order.marker());
        self.order.put_u16(out, self.version);
        out.put_u8(self.name.len() as u8);
        out.put_slice(self.name.as_bytes());
        Ok(())
    }
}

/// The server's welcome (§2.2): its status and version.
pub fn write_welcome(out: &mut BytesMut, order: ByteOrder, status: u8) {
    out.put_slice(&MAGIC);
    out.put_u8(status);
    order.put_u16(out, VERSION);
}

/// Parses a welcome: `(status, version)`.
pub fn parse_welcome(buf: &[u8], order: ByteOrder) -> Result<Parsed<(u8, u16)>, Malformed> {
    let have = buf.len().min(4);
    if buf[..have] != MAGIC[..have] {
        return Err(malformed("2.2", "the server's answer has the wrong magic"));
    }
    if buf.len() < 7 {
        return Ok(Parsed::Need(7 - buf.len()));
    }
    Ok(Parsed::Done((buf[4], order.u16([buf[5], buf[6]])), 7))
}

/// A frame the client sends (§3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// TASK (§3.1).
    Task {
        /// The task id.
        id: u32,
        /// The task code.
        code: u32,
        /// The payload.
        payload: Bytes,
    },
    /// CANCEL (§3.2).
    Cancel(u32),
    /// CANCEL_ALL (§3.3).
    CancelAll,
    /// PING (§3.4).
    Ping(u64),
    /// GOODBYE (§3.5).
    Goodbye,
}

/// A TASK frame's header: 1 type byte, id, code and payload length.
pub const TASK_HEADER: usize = 13;

/// The front of a client frame, parsed without its payload, so that a server can refuse
/// an oversized payload before buffering it and take the payload zero-copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientHead {
    /// A TASK header; `len` payload bytes follow the header's [`TASK_HEADER`] bytes.
    Task {
        /// The task id.
        id: u32,
        /// The task code.
        code: u32,
        /// The payload's length.
        len: usize,
    },
    /// A frame with no payload, whole, and its length.
    Other(ClientFrameKind, usize),
}

/// The frames without a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFrameKind {
    /// CANCEL.
    Cancel(u32),
    /// CANCEL_ALL.
    CancelAll,
    /// PING.
    Ping(u64),
    /// GOODBYE.
    Goodbye,
}

/// Parses the front of a client frame. `max_payload` is the server's payload limit
/// (§5.2).
pub fn parse_client_head(
    buf: &[u8],
    order: ByteOrder,
    max_payload: usize,
) -> Result<Parsed<ClientHead>, Malformed> {
    let Some(&kind) = buf.first() else {
        return Ok(Parsed::Need(1));
    };
    let need = |n: usize| Ok(Parsed::Need(n - buf.len()));
    let u32_at = |i: usize| order.u32([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    match kind {
        0x01 => {
            if buf.len() < TASK_HEADER {
                return need(TASK_HEADER);
            }
            let (id, code, len) = (u32_at(1), u32_at(5), u32_at(9) as usize);
            if code >= RESERVED_CODES {
                return Err(malformed(
                    "5.3",
                    format!("task code {code:#x} is in the reserved range"),
                ));
            }
            if len > max_payload {
                return Err(malformed(
                    "5.2",
                    format!("a payload of {len} bytes is over the limit of {max_payload}"),
                ));
            }
            Ok(Parsed::Done(
                ClientHead::Task { id, code, len },
                TASK_HEADER,
            ))
        }
        0x02 => {
            if buf.len() < 5 {
                return need(5);
            }
            Ok(Parsed::Done(
                ClientHead::Other(ClientFrameKind::Cancel(u32_at(1)), 5),
                5,
            ))
        }
        0x03 => Ok(Parsed::Done(
            ClientHead::Other(ClientFrameKind::CancelAll, 1),
            1,
        )),
        0x04 => {
            if buf.len() < 9 {
                return need(9);
            }
            let token = order.u64(buf[1..9].try_into().expect("8 bytes"));
            Ok(Parsed::Done(
                ClientHead::Other(ClientFrameKind::Ping(token), 9),
                9,
            ))
        }
        0x05 => Ok(Parsed::Done(
            ClientHead::Other(ClientFrameKind::Goodbye, 1),
            1,
        )),
        other => Err(malformed("5.1", format!("unknown frame type {other:#04x}"))),
    }
}

impl ClientFrame {
    /// Writes the frame.
    pub fn write(&self, out: &mut BytesMut, order: ByteOrder) {
        match self {
            ClientFrame::Task { id, code, payload } => {
                write_task_header(out, order, *id, *code, payload.len());
                out.put_slice(payload);
            }
            ClientFrame::Cancel(id) => {
                out.put_u8(0x02);
                order.put_u32(out, *id);
            }
            ClientFrame::CancelAll => out.put_u8(0x03),
            ClientFrame::Ping(token) => {
                out.put_u8(0x04);
                order.put_u64(out, *token);
            }
            ClientFrame::Goodbye => out.put_u8(0x05),
        }
    }
}

/// A TASK frame's header, for a payload sent behind it without a copy.
pub fn write_task_header(out: &mut BytesMut, order: ByteOrder, id: u32, code: u32, len: usize) {
    out.put_u8(0x01);
    order.put_u32(out, id);
    order.put_u32(out, code);
    order.put_u32(out, len as u32);
}

/// GOODBYE reasons (§4.6).
pub mod reason {
    /// A graceful disconnect.
    pub const GRACEFUL: u8 = 0;
    /// No task came within the wait timeout.
    pub const TIMEOUT_WAITING_FOR_TASK: u8 = 1;
    /// The client broke a rule of the protocol.
    pub const PROTOCOL_ERROR: u8 = 2;
    /// A task function failed.
    pub const TASK_FUNCTION_FAILED: u8 = 3;
    /// A run function failed without an error code, or its output failed.
    pub const RUN_FUNCTION_FAILED: u8 = 4;
    /// The server is shutting down.
    pub const SHUTTING_DOWN: u8 = 5;
}

/// A frame the server sends (§4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// OK (§4.1).
    Ok(u32),
    /// ERROR (§4.2): id and error code.
    Error(u32, u8),
    /// DATA: id and a chunk (1 to [`MAX_CHUNK`] bytes).
    Data(u32, Bytes),
    /// END.
    End(u32),
    /// CANCELLED (§4.3).
    Cancelled(u32),
    /// PONG (§4.5).
    Pong(u64),
    /// GOODBYE (§4.6): reason and text.
    Goodbye(u8, String),
}

impl ServerFrame {
    /// Writes the frame (a DATA frame's chunk behind its header; see
    /// [`write_data_header`] to send a chunk without copying it).
    pub fn write(&self, out: &mut BytesMut, order: ByteOrder) {
        match self {
            ServerFrame::Ok(id) => {
                out.put_u8(0x01);
                order.put_u32(out, *id);
            }
            ServerFrame::Error(id, code) => {
                out.put_u8(0x02);
                order.put_u32(out, *id);
                out.put_u8(*code);
            }
            ServerFrame::Data(id, chunk) => {
                write_data_header(out, order, *id, chunk.len());
                out.put_slice(chunk);
            }
            ServerFrame::End(id) => {
                out.put_u8(0x04);
                order.put_u32(out, *id);
            }
            ServerFrame::Cancelled(id) => {
                out.put_u8(0x05);
                order.put_u32(out, *id);
            }
            ServerFrame::Pong(token) => {
                out.put_u8(0x06);
                order.put_u64(out, *token);
            }
            ServerFrame::Goodbye(reason, text) => {
                let text = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
                out.put_u8(0x07);
                out.put_u8(*reason);
                order.put_u16(out, text.len() as u16);
                out.put_slice(text);
            }
        }
    }

    /// Parses a server frame at the front of `buf`.
    pub fn parse(buf: &[u8], order: ByteOrder) -> Result<Parsed<ServerFrame>, Malformed> {
        let Some(&kind) = buf.first() else {
            return Ok(Parsed::Need(1));
        };
        let need = |n: usize| -> Result<Option<Parsed<ServerFrame>>, Malformed> {
            Ok((buf.len() < n).then(|| Parsed::Need(n - buf.len())))
        };
        let u32_at = |i: usize| order.u32([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let id_frame = |make: fn(u32) -> ServerFrame| -> Result<Parsed<ServerFrame>, Malformed> {
            if let Some(n) = need(5)? {
                return Ok(n);
            }
            Ok(Parsed::Done(make(u32_at(1)), 5))
        };
        match kind {
            0x01 => id_frame(ServerFrame::Ok),
            0x02 => {
                if let Some(n) = need(6)? {
                    return Ok(n);
                }
                Ok(Parsed::Done(ServerFrame::Error(u32_at(1), buf[5]), 6))
            }
            0x03 => {
                if let Some(n) = need(9)? {
                    return Ok(n);
                }
                let len = u32_at(5) as usize;
                if len == 0 || len > MAX_CHUNK {
                    return Err(malformed("4", format!("a DATA chunk of {len} bytes")));
                }
                if let Some(n) = need(9 + len)? {
                    return Ok(n);
                }
                Ok(Parsed::Done(
                    ServerFrame::Data(u32_at(1), Bytes::copy_from_slice(&buf[9..9 + len])),
                    9 + len,
                ))
            }
            0x04 => id_frame(ServerFrame::End),
            0x05 => id_frame(ServerFrame::Cancelled),
            0x06 => {
                if let Some(n) = need(9)? {
                    return Ok(n);
                }
                let token = order.u64(buf[1..9].try_into().expect("8 bytes"));
                Ok(Parsed::Done(ServerFrame::Pong(token), 9))
            }
            0x07 => {
                if let Some(n) = need(4)? {
                    return Ok(n);
                }
                let len = 4 + order.u16([buf[2], buf[3]]) as usize;
                if let Some(n) = need(len)? {
                    return Ok(n);
                }
                let text = String::from_utf8_lossy(&buf[4..len]).into_owned();
                Ok(Parsed::Done(ServerFrame::Goodbye(buf[1], text), len))
            }
            other => Err(malformed(
                "4",
                format!("unknown server frame type {other:#04x}"),
            )),
        }
    }
}

/// A DATA frame's header, for a chunk sent behind it without a copy.
pub fn write_data_header(out: &mut BytesMut, order: ByteOrder, id: u32, len: usize) {
    out.put_u8(0x03);
    order.put_u32(out, id);
    order.put_u32(out, len as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: [ByteOrder; 2] = [ByteOrder::Little, ByteOrder::Big];

    #[test]
    fn hellos_round_trip_and_bad_ones_get_their_status() {
        for order in ORDERS {
            let hello = Hello {
                order,
                version: 1,
                name: "worker-7".into(),
            };
            let mut out = BytesMut::new();
            hello.write(&mut out).unwrap();
            assert_eq!(
                Hello::parse(&out),
                Ok(Parsed::Done(hello.clone(), out.len()))
            );
            for cut in 0..out.len() {
                assert!(
                    matches!(Hello::parse(&out[..cut]), Ok(Parsed::Need(_))),
                    "{cut}"
                );
            }
        }
        assert_eq!(
            Hello::parse(b"GET / HTTP/1.1"),
            Err(BadHello::NotThisProtocol)
        );
        assert_eq!(Hello::parse(b"NLTKX\x01\x00\x00"), Err(BadHello::Malformed));
        assert_eq!(Hello::parse(b"NLTKL\x00\x00\x00"), Err(BadHello::Version));
        assert_eq!(
            Hello::parse(b"NLTKL\x01\x00\x01\xff"),
            Err(BadHello::Malformed)
        );
        let long = Hello {
            order: ByteOrder::Big,
            version: 1,
            name: "x".repeat(256),
        };
        assert!(long.write(&mut BytesMut::new()).is_err());
    }

    #[test]
    fn client_frames_round_trip_in_both_orders() {
        for order in ORDERS {
            let frames = [
                ClientFrame::Task {
                    id: 7,
                    code: 0x0102_0304,
                    payload: Bytes::from_static(b"payload"),
                },
                ClientFrame::Cancel(0xdead_beef),
                ClientFrame::CancelAll,
                ClientFrame::Ping(u64::MAX - 3),
                ClientFrame::Goodbye,
            ];
            for frame in frames {
                let mut out = BytesMut::new();
                frame.write(&mut out, order);
                let head = parse_client_head(&out, order, 1 << 20).unwrap();
                let Parsed::Done(head, n) = head else {
                    panic!("{head:?}")
                };
                let back = match head {
                    ClientHead::Task { id, code, len } => ClientFrame::Task {
                        id,
                        code,
                        payload: Bytes::copy_from_slice(&out[n..n + len]),
                    },
                    ClientHead::Other(kind, len) => {
                        assert_eq!(len, out.len());
                        match kind {
                            ClientFrameKind::Cancel(id) => ClientFrame::Cancel(id),
                            ClientFrameKind::CancelAll => ClientFrame::CancelAll,
                            ClientFrameKind::Ping(t) => ClientFrame::Ping(t),
                            ClientFrameKind::Goodbye => ClientFrame::Goodbye,
                        }
                    }
                };
                assert_eq!(back, frame);
                for cut in 0..n {
                    assert!(matches!(
                        parse_client_head(&out[..cut], order, 1 << 20),
                        Ok(Parsed::Need(_))
                    ));
                }
            }
        }
    }

    #[test]
    fn malformed_client_frames_name_their_rule() {
        let order = ByteOrder::Little;
        let rule = |buf: &[u8]| parse_client_head(buf, order, 100).unwrap_err().rule;
        assert_eq!(rule(&[0x09]), "5.1");
        let mut big = BytesMut::new();
        write_task_header(&mut big, order, 1, 2, 101);
        assert_eq!(rule(&big), "5.2");
        let mut reserved = BytesMut::new();
        write_task_header(&mut reserved, order, 1, RESERVED_CODES, 0);
        assert_eq!(rule(&reserved), "5.3");
    }

    #[test]
    fn server_frames_round_trip_in_both_orders() {
        for order in ORDERS {
            let frames = [
                ServerFrame::Ok(1),
                ServerFrame::Error(2, 17),
                ServerFrame::Data(3, Bytes::from(vec![9u8; MAX_CHUNK])),
                ServerFrame::End(4),
                ServerFrame::Cancelled(5),
                ServerFrame::Pong(6),
                ServerFrame::Goodbye(reason::TIMEOUT_WAITING_FOR_TASK, "waited".into()),
            ];
            for frame in frames {
                let mut out = BytesMut::new();
                frame.write(&mut out, order);
                assert_eq!(
                    ServerFrame::parse(&out, order),
                    Ok(Parsed::Done(frame.clone(), out.len()))
                );
                assert!(matches!(
                    ServerFrame::parse(&out[..out.len() - 1], order),
                    Ok(Parsed::Need(_))
                ));
            }
        }
        let mut welcome = BytesMut::new();
        write_welcome(&mut welcome, ByteOrder::Big, status::ACCEPTED);
        assert_eq!(
            parse_welcome(&welcome, ByteOrder::Big),
            Ok(Parsed::Done((0, 1), 7))
        );
    }
}
