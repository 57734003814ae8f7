//! Micro-benchmarks of the input operations a protocol parser runs per request:
//! finding a delimiter and splitting frames off without copying.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use netloop::Input;
use std::hint::black_box;

/// Sixteen pipelined HTTP-like request heads.
fn pipelined_heads() -> Vec<u8> {
    let head = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
    head.repeat(16)
}

fn until_double_crlf(c: &mut Criterion) {
    let data = pipelined_heads();
    let mut group = c.benchmark_group("input");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("until(\\r\\n\\r\\n) x16", |b| {
        // The input is built outside the timed part: only the parsing is measured.
        b.iter_batched(
            || Input::from_slice(&data),
            |mut input| {
                let mut n = 0;
                while let Some(head) = input.until(b"\r\n\r\n") {
                    n += head.len();
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("length-prefixed next() x16", |b| {
        let mut framed = Vec::new();
        for _ in 0..16 {
            framed.extend_from_slice(&1024u32.to_be_bytes());
            framed.extend_from_slice(&[7u8; 1024]);
        }
        b.iter_batched(
            || Input::from_slice(&framed),
            |mut input| {
                let mut n = 0;
                while input.len() >= 4 {
                    let len = u32::from_be_bytes(input.peek(4).try_into().unwrap()) as usize;
                    input.skip(4);
                    n += input.next(len).len();
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, until_double_crlf);
criterion_main!(benches);
