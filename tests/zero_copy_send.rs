//! Zero-copy sends (`Builder::zero_copy_send`, io_uring with inline dispatch): replies
//! of every size arrive intact and in order, pipelined or not, and a reply's bytes stay
//! valid until the kernel's notification even when the peer leaves mid-reply. On epoll,
//! or with `NETLOOP_BACKEND=epoll`, the option is ignored and the same checks hold.

mod common;

use std::io::{Read, Write};

use common::*;
use netloop::{Backend, Server};

#[test]
fn zero_copy_replies_arrive_intact_and_in_order() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .backend(Backend::Auto)
        .zero_copy_send(4096)
        .serve(echo())
        .expect("server starts");
    eprintln!("backend in use: {}", server.backend());
    let a = addr(&server);
    let mut c = connect(a);
    for (i, len) in [1, 100, 4095, 4096, 65536, 1 << 20, 4 << 20]
        .into_iter()
        .enumerate()
    {
        let data = payload(len, i as u8);
        assert_eq!(round_trip(&mut c, &data), data, "{len} bytes");
    }
    // Pipelined: many requests written before any reply is read.
    let mut all = Vec::new();
    for i in 0..32u8 {
        let data = payload(8192 + usize::from(i) * 1000, i);
        c.write_all(&data).unwrap();
        all.extend_from_slice(&data);
    }
    let mut got = vec![0u8; all.len()];
    c.read_exact(&mut got).unwrap();
    assert!(got == all, "pipelined zero-copy replies differ");

    // Peers that leave with megabytes of reply in flight.
    for i in 0..20u8 {
        let mut v = connect(a);
        v.write_all(&payload(2 << 20, i)).unwrap();
        let mut some = [0u8; 1000];
        v.read_exact(&mut some).unwrap();
        drop(v);
    }
    assert_eq!(round_trip(&mut c, b"still here"), b"still here");
    drop(c);
    assert!(eventually(|| {
        let s = server.stats();
        s.active == 0 && s.buffered_output == 0 && s.pollers.iter().all(|p| p.closing == 0)
    }));
    server.shutdown(PATIENCE);
}
