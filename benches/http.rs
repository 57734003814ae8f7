//! Micro-benchmarks of HTTP request-head parsing (`netloop::http::parse_head`), the work
//! the HTTP layer does per request before calling the service.
//!
//! The buffer and the `Request` are made once, outside the timed part, and the `Request`
//! is reused across iterations as the server reuses it across requests (its header list
//! keeps its capacity): what is timed is the steady-state parse.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netloop::http::{parse_head, Limits, Request};
use netloop::Bytes;
use std::hint::black_box;

/// What `wrk` sends by default.
const WRK_GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// A browser's navigation request: 12 headers.
const BROWSER_GET: &[u8] = b"GET /articles/2024/networking?page=2&sort=new HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/articles/2024/networking\r\n\
Connection: keep-alive\r\n\
Cookie: session=4f3c2a1b9d8e7f6a5b4c3d2e1f0a9b8c; theme=dark; consent=1\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
\r\n";

fn parse_one(c: &mut Criterion, group_name: &str, name: &str, data: &'static [u8]) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Bytes(data.len() as u64));
    let buf = Bytes::from_static(data);
    let limits = Limits::default();
    let mut req = Request::default();
    group.bench_function(name, |b| {
        b.iter(|| {
            let head = parse_head(black_box(&buf), &limits, &mut req)
                .unwrap()
                .unwrap();
            black_box(head.head_len())
        })
    });
    group.finish();
}

fn single_heads(c: &mut Criterion) {
    parse_one(c, "http parse_head", "wrk GET (1 header)", WRK_GET);
    parse_one(
        c,
        "http parse_head",
        "browser GET (12 headers)",
        BROWSER_GET,
    );
}

fn pipelined_heads(c: &mut Criterion) {
    let data = Bytes::from(WRK_GET.repeat(16));
    let limits = Limits::default();
    let mut req = Request::default();
    let mut group = c.benchmark_group("http parse_head");
    group.throughput(Throughput::Elements(16));
    group.bench_function("wrk GET pipelined x16", |b| {
        b.iter(|| {
            // Parse, then step past the head, as the handler does with `Input::next`.
            let mut rest = black_box(&data).clone();
            let mut n = 0;
            while let Some(head) = parse_head(&rest, &limits, &mut req).unwrap() {
                n += 1;
                rest = rest.slice(head.head_len()..);
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, single_heads, pipelined_heads);
criterion_main!(benches);
