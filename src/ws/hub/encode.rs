//! A published message as the frames its subscribers get: built once per publish and
//! shared (`Bytes`) by every subscriber that takes the same encoding.

use bytes::{BufMut, Bytes, BytesMut};

use super::super::deflate::{Deflate, DeflateParams};
use super::super::frame::{self, OpCode};
use super::super::message::Message;

/// Which frame a subscriber takes: plain, or compressed with these parameters (for
/// connections that negotiated permessage-deflate without server context takeover; the
/// frame depends on the compression level, the server's window and the threshold).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Encoding {
    Plain,
    Deflate {
        level: u32,
        window_bits: u8,
        threshold: usize,
    },
}

impl Encoding {
    /// How a connection with these parameters (if any) takes shared frames; `None` for
    /// one with server context takeover, which compresses each message itself.
    pub(crate) fn of(deflate: Option<&DeflateParams>) -> Option<Encoding> {
        match deflate {
            None => Some(Encoding::Plain),
            Some(p) if p.server_no_context_takeover => Some(Encoding::Deflate {
                level: p.level,
                window_bits: p.server_max_window_bits,
                threshold: p.threshold,
            }),
            Some(_) => None,
        }
    }
}

/// The frames of one published message, each built the first time it is asked for.
pub(crate) struct Frames<'a> {
    msg: &'a Message,
    plain: Option<Bytes>,
    compressed: Vec<(Encoding, Bytes)>,
}

impl<'a> Frames<'a> {
    pub(crate) fn new(msg: &'a Message) -> Frames<'a> {
        Frames {
            msg,
            plain: None,
            compressed: Vec::new(),
        }
    }

    /// The frame for subscribers taking `encoding`.
    pub(crate) fn get(&mut self, encoding: Encoding) -> Bytes {
        let (opcode, payload) = parts(self.msg);
        match encoding {
            Encoding::Deflate {
                level,
                window_bits,
                threshold,
            } if payload.len() >= threshold => {
                if let Some((_, f)) = self.compressed.iter().find(|(e, _)| *e == encoding) {
                    return f.clone();
                }
                let mut deflate = Deflate::new(DeflateParams {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    server_max_window_bits: window_bits,
                    client_max_window_bits: 15,
                    threshold,
                    level,
                });
                let mut data = Vec::new();
                deflate.compress(payload, &mut data);
                let f = frame(opcode, true, &data);
                self.compressed.push((encoding, f.clone()));
                f
            }
            // Plain, or a message under the threshold: an uncompressed frame is valid on
            // a deflate connection too (RSV1 clear).
            _ => self
                .plain
                .get_or_insert_with(|| frame(opcode, false, payload))
                .clone(),
        }
    }
}

fn parts(msg: &Message) -> (OpCode, &[u8]) {
    match msg {
        Message::Text(t) => (OpCode::Text, t.as_str().as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b),
    }
}

/// An unmasked, unfragmented frame: header and payload in one buffer (one segment per
/// subscriber's gathered write).
fn frame(opcode: OpCode, compressed: bool, payload: &[u8]) -> Bytes {
    let mut h = [0u8; frame::MAX_HEADER_LEN];
    let n = frame::write_header(&mut h, true, compressed, opcode, None, payload.len() as u64);
    let mut out = BytesMut::with_capacity(n + payload.len());
    out.put_slice(&h[..n]);
    out.put_slice(payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{parse, Parsed};

    #[test]
    fn each_encoding_is_built_once_and_small_messages_stay_plain() {
        let msg = Message::from("x".repeat(1000).as_str());
        let mut frames = Frames::new(&msg);
        let plain = frames.get(Encoding::Plain);
        assert_eq!(plain.as_ptr(), frames.get(Encoding::Plain).as_ptr());
        let deflate = Encoding::Deflate {
            level: 6,
            window_bits: 15,
            threshold: 256,
        };
        let z = frames.get(deflate);
        assert_eq!(z.as_ptr(), frames.get(deflate).as_ptr());
        assert!(z.len() < plain.len());
        match parse(&z, true) {
            Ok(Parsed::Header(h)) => assert!(h.rsv1 && h.header_len + h.len as usize == z.len()),
            other => panic!("{other:?}"),
        }
        let small = Message::from("hi");
        let mut frames = Frames::new(&small);
        assert_eq!(frames.get(deflate), frames.get(Encoding::Plain));
    }

    #[test]
    fn takeover_connections_take_no_shared_frame() {
        let mut p = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            threshold: 256,
            level: 6,
        };
        assert_eq!(Encoding::of(Some(&p)), None);
        p.server_no_context_takeover = true;
        assert!(matches!(
            Encoding::of(Some(&p)),
            Some(Encoding::Deflate { .. })
        ));
        assert_eq!(Encoding::of(None), Some(Encoding::Plain));
    }
}
