//! Micro-benchmarks of the input operations a protocol parser runs per request:
//! finding a delimiter, and decoding length-prefixed frames as `examples/framed.rs` does
//! (splitting them off without copying). HTTP head parsing is in `benches/http.rs`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
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
    group.finish();
}

/// Sixteen pipelined length-prefixed frames (4-byte big-endian length, then `size` bytes).
fn pipelined_frames(size: usize) -> Vec<u8> {
    let mut framed = Vec::with_capacity(16 * (4 + size));
    for _ in 0..16 {
        framed.extend_from_slice(&(size as u32).to_be_bytes());
        framed.extend_from_slice(&vec![7u8; size]);
    }
    framed
}

/// The decode loop of `examples/framed.rs`: peek the length, `want` the rest of a partial
/// frame, take a whole frame with `next`.
fn decode_frames(input: &mut Input, max_frame: usize) -> usize {
    let mut n = 0;
    loop {
        if input.len() < 4 {
            return n;
        }
        let len = u32::from_be_bytes(input.peek(4).try_into().expect("4 bytes")) as usize;
        if len > max_frame {
            return n;
        }
        if input.len() < 4 + len {
            input.want(4 + len);
            return n;
        }
        n += input.next(4 + len).len();
    }
}

fn framed_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("framed decode");
    for size in [64, 1024] {
        let data = pipelined_frames(size);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("next() x16", format!("{size} B frames")),
            &data,
            |b, data| {
                b.iter_batched(
                    || {
                        let mut input = Input::from_slice(data);
                        // A pooled server buffer is already shared (split before); do
                        // that one-time promotion here, not in the timed part.
                        input.skip(0);
                        input
                    },
                    // The input is returned so that it is freed outside the timed part.
                    |mut input| (black_box(decode_frames(&mut input, 64 << 20)), input),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, until_double_crlf, framed_decode);
criterion_main!(benches);
