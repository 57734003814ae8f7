//! `max_connections`: connections beyond the limit are refused and counted, the served
//! ones are unaffected, and a freed place is taken again.

mod common;

use std::io::{Read, Write};

use common::*;
use netloop::Server;

#[test]
fn connections_past_max_connections_are_refused_and_counted() {
    for mode in modes() {
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .pollers(2)
            .dispatch(mode)
            .max_connections(5)
            .serve(echo())
            .unwrap();
        let a = addr(&server);
        let mut served: Vec<_> = (0..5).map(|_| connect(a)).collect();
        for s in &mut served {
            assert_eq!(round_trip(s, b"in"), b"in");
        }
        let mut refused: Vec<_> = (0..3).map(|_| connect(a)).collect();
        for r in &mut refused {
            assert!(
                read_to_close(r).is_empty(),
                "{mode:?}: closed without a reply"
            );
        }
        assert!(eventually(|| server.stats().over_limit == 3), "{mode:?}");
        for s in &mut served {
            assert_eq!(round_trip(s, b"still in"), b"still in", "{mode:?}");
        }
        drop(served.pop());
        assert!(eventually(|| server.stats().active == 4));
        let mut late = connect(a);
        assert_eq!(
            round_trip(&mut late, b"room again"),
            b"room again",
            "{mode:?}"
        );
        let stats = server.stats();
        assert_eq!((stats.active, stats.over_limit, stats.accepted), (5, 3, 9));
        server.shutdown(PATIENCE);
    }
}

/// A length-prefixed protocol: a 4-byte big-endian length, then that many bytes,
/// unmasked in place (XOR 0x20) with `next_mut` and sent back. A length above the
/// connection's want limit is answered "TOO BIG" and closed by the protocol itself;
/// with `careless` the handler asks anyway, and the core refuses.
struct Framed {
    careless: bool,
}

impl netloop::Handler for Framed {
    type State = ();
    fn on_connect(&self, _: &mut netloop::Conn) {}
    fn on_request(&self, _: &mut (), conn: &mut netloop::Conn) {
        let (input, output) = conn.split();
        if input.len() < 4 {
            return input.want(4);
        }
        let len = u32::from_be_bytes(input.peek(4).try_into().unwrap()) as usize;
        if len + 4 > input.want_limit() && !self.careless {
            output.write(b"TOO BIG");
            return conn.close();
        }
        if input.len() < 4 + len {
            if self.careless {
                output.write(b"ASKED");
            }
            return input.want(4 + len);
        }
        input.skip(4);
        let mut frame = input.next_mut(len);
        for b in frame.iter_mut() {
            *b ^= 0x20;
        }
        output.write_bytes(frame.freeze());
    }
}

fn framed_server(mode: netloop::Dispatch, careless: bool) -> netloop::ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .dispatch(mode)
        .max_want(64 * 1024)
        .serve(Framed { careless })
        .unwrap()
}

fn frame(len: u32, body: &[u8]) -> Vec<u8> {
    let mut f = len.to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn frames_are_transformed_in_place_and_a_length_over_the_limit_is_refused() {
    for mode in modes() {
        for careless in [false, true] {
            let server = framed_server(mode, careless);
            let body = b"HELLO, WORLD";
            let mut s = connect(addr(&server));
            s.write_all(&frame(12, body)).unwrap();
            let mut back = [0u8; 12];
            s.read_exact(&mut back).unwrap();
            assert_eq!(
                &back, b"hello\x0c\x00world",
                "{mode:?}: unmasked where it lay"
            );
            // A declared length the server will not wait for: answered or refused, and
            // closed either way, without the server buffering toward it.
            s.write_all(&frame(10 << 20, b"x")).unwrap();
            let rest = read_to_close(&mut s);
            if careless {
                assert_eq!(
                    rest, b"ASKED",
                    "{mode:?}: the handler's reply went out first"
                );
                assert!(eventually(|| server.stats().closed.input_limit == 1));
            } else {
                assert_eq!(rest, b"TOO BIG", "{mode:?}");
                assert!(eventually(|| server.stats().closed.local == 1));
                assert_eq!(server.stats().closed.input_limit, 0);
            }
            server.shutdown(PATIENCE);
        }
    }
}
