//! A minimal blocking WebSocket client for the tests: the handshake, masked frames out,
//! frames in. Written from RFC 6455 directly (not with netloop's codec), so the tests
//! check the server against the RFC, not against itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{connect, PATIENCE};

/// A frame as read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Connects and upgrades with `extra` request header lines; returns the stream and the
/// server's response head. Panics if the response is not a 101 with the right accept.
pub fn ws_connect(addr: SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = connect(addr);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    write!(
        s,
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    (s, head)
}

/// Reads an HTTP response head, byte by byte (so nothing after it is consumed).
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("response head");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Writes one masked frame.
pub fn send_frame(s: &mut TcpStream, fin: bool, opcode: u8, payload: &[u8]) {
    s.write_all(&frame_bytes(fin, opcode, payload)).unwrap();
}

/// The bytes of one masked client frame.
pub fn frame_bytes(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0xa1u8, 0x5e, 0x07, 0x3c];
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// Reads one (unmasked) server frame.
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Frame> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l)?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l)?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok(Frame {
        fin: h[0] & 0x80 != 0,
        rsv1: h[0] & 0x40 != 0,
        opcode: h[0] & 0x0f,
        payload,
    })
}

/// Reads frames until one that is not a ping (answering nothing).
pub fn read_data_frame(s: &mut TcpStream) -> Frame {
    loop {
        let f = read_frame(s).expect("a frame");
        if f.opcode != PING {
            return f;
        }
    }
}

/// A close frame's payload.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// Sets a read timeout shorter than the usual patience (for "nothing comes" checks).
pub fn with_read_timeout(s: &TcpStream, t: std::time::Duration) {
    s.set_read_timeout(Some(t.min(PATIENCE))).unwrap();
}
