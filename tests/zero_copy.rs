//! `next()` hands out `Bytes` that stay valid after the handler returns and after the
//! connection reads (and reuses buffers) again.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use common::*;
use netloop::{handler_fn, Bytes};

#[test]
fn bytes_from_next_survive_the_handler_and_later_reads() {
    for mode in modes() {
        let kept: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let k = kept.clone();
        let server = serve(
            mode,
            1,
            handler_fn(move |conn| {
                let n = conn.input().len();
                let data = conn.input().next(n);
                k.lock().unwrap().push(data);
                conn.output().write(b"k");
            }),
        );
        let mut s = connect(addr(&server));
        let mut sent = Vec::new();
        for i in 0..200u32 {
            // Sizes vary so buffers are split, grown and recycled in many ways.
            let msg = payload(1 + (i as usize * 37) % 3000, i as u8);
            s.write_all(&msg).unwrap();
            // One acknowledgement per call; wait for the call that saw the last byte.
            let mut ack = [0u8; 1];
            s.read_exact(&mut ack).unwrap();
            assert_eq!(&ack, b"k");
            while server.stats().bytes_in
                < (sent.iter().map(Vec::len).sum::<usize>() + msg.len()) as u64
            {
                s.read_exact(&mut ack).unwrap();
            }
            sent.push(msg);
        }
        drop(s);
        server.shutdown(PATIENCE);
        let kept = kept.lock().unwrap();
        let got: Vec<u8> = kept.iter().flat_map(|b| b.iter().copied()).collect();
        let want: Vec<u8> = sent.concat();
        assert_eq!(got.len(), want.len(), "{mode:?}");
        assert!(got == want, "{mode:?}: kept bytes were overwritten");
    }
}
