//! The whole HTTP layer fed arbitrary bytes split at arbitrary points, with its deadline
//! timer firing in between (with deadlines of a nanosecond, so they pass): no callback
//! panics, and what it writes is a sequence of well-formed responses, each with a
//! `Content-Length` body, nothing after one that closes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use netloop::http::{Http, Request, Response};
use netloop::testing::Harness;
use netloop::TimerKey;

/// Echoes the method, the path and the body, so a body decoded wrong shows.
fn inspect(req: &Request, res: &mut Response<'_>) {
    let mut out = format!("{} {} ", req.method(), req.path()).into_bytes();
    out.extend_from_slice(req.body());
    res.body(&out);
}

/// Checks that `out` is complete responses, one after another.
fn check_responses(mut out: &[u8]) {
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut res = httparse::Response::new(&mut headers);
        let head_len = match res.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("not a response head: {other:?} in {:?}", String::from_utf8_lossy(out)),
        };
        let code = res.code.expect("a status");
        if code == 100 {
            out = &out[head_len..];
            continue;
        }
        let len: usize = res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .expect("a Content-Length");
        let closes = res
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("connection") && h.value == b"close");
        assert!(head_len + len <= out.len(), "a body is cut short");
        out = &out[head_len + len..];
        if closes {
            assert!(out.is_empty(), "bytes after a closing response");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let mut http = Http::new(inspect).max_body_bytes(2048).max_head_bytes(1024);
    if control & 1 == 1 {
        let tiny = Duration::from_nanos(1);
        http = http.head_timeout(tiny).body_timeout(tiny).keep_alive_timeout(tiny);
    }
    let mut h = Harness::new(http);
    let split = (control >> 1) as usize % 29 + 1;
    let mut out = Vec::new();
    for (i, piece) in data.chunks(split).enumerate() {
        h.feed(piece);
        if i % 4 == 3 {
            h.fire_timer(TimerKey(0xFE00));
        }
        out.extend(h.take_output());
        assert!(!h.panicked(), "a callback panicked");
    }
    check_responses(&out);
});
