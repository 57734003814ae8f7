//! The whole WebSocket server (the HTTP layer, the upgrade, the protocol after it) fed
//! an upgrade request and then arbitrary bytes split at arbitrary points, with timers
//! firing in between: no callback panics, and every frame it writes is a well-formed
//! server frame (unmasked, RSV2/3 clear, a known opcode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netloop::http::Request;
use netloop::testing::Harness;
use netloop::ws::frame::{parse, Parsed};
use netloop::ws::{self, DeflateConfig, Message, WsConn, WsHandler};
use netloop::TimerKey;

struct Echo;

impl WsHandler for Echo {
    type State = u32;
    fn on_open(&self, _: &mut WsConn<'_>, _: &Request) -> u32 {
        0
    }
    fn on_message(&self, n: &mut u32, ws: &mut WsConn<'_>, msg: Message) {
        *n += 1;
        if *n % 7 == 0 {
            ws.close(1000, "seventh");
        } else {
            ws.send(msg);
        }
    }
}

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

/// Checks that `out` (after the 101's head) is a sequence of well-formed server frames.
fn check_frames(mut out: &[u8]) {
    while !out.is_empty() {
        match parse(out, true) {
            Ok(Parsed::Header(h)) => {
                assert!(h.mask.is_none(), "a server frame is masked");
                let total = h.header_len + h.len as usize;
                assert!(total <= out.len(), "a frame is cut short");
                out = &out[total..];
            }
            other => panic!("not a frame: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let mut config = ws::Config::default()
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024);
    if control & 1 == 1 {
        config = config.deflate(DeflateConfig::default().threshold(16));
    }
    let mut h = Harness::new(ws::server(Echo, config));
    h.feed(UPGRADE);
    let out = h.take_output();
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a 101") + 4;
    assert!(out.starts_with(b"HTTP/1.1 101 "));
    let mut frames = out[end..].to_vec();
    let split = (control >> 1) as usize % 23 + 1;
    for (i, piece) in data.chunks(split).enumerate() {
        h.feed(piece);
        if i % 5 == 4 {
            // The layer's own timers: ping, pong deadline, close timeout.
            h.fire_timer(TimerKey(0xFF00 + (i as u16 / 5) % 3));
        }
        frames.extend(h.take_output());
        assert!(!h.panicked(), "a callback panicked");
    }
    check_frames(&frames);
});
