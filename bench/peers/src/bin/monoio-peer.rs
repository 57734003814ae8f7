//! monoio comparison peer: echo / framed / http, thread-per-core.
//!
//! `--threads N` threads, each with its own monoio runtime and its own
//! SO_REUSEPORT listener. `--driver`: `fusion` (io_uring when the kernel and
//! sandbox allow it, else the epoll "legacy" driver), `uring`, or `legacy`.

use std::io;

use bytes::{Buf, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};
use netloop_bench_peers::{announce, bind_reuseport, die, framed, http, Args, Proto};

const USAGE: &str = "monoio-peer --proto echo|framed|http [--addr 127.0.0.1:7000] [--threads N] \
[--driver fusion|uring|legacy]
  --threads N  N threads x (monoio runtime + own SO_REUSEPORT listener); default 1
  --driver     fusion (default: io_uring if usable, else epoll), uring, legacy (epoll)";

const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
enum Drv {
    Fusion,
    Uring,
    Legacy,
}

fn main() -> io::Result<()> {
    let args = Args::from_env(&["proto", "addr", "threads", "driver"], USAGE);
    let proto = args.proto(USAGE);
    let threads = args.threads(1, USAGE);
    let drv = match args.get("driver").unwrap_or("fusion") {
        "fusion" => Drv::Fusion,
        "uring" => Drv::Uring,
        "legacy" => Drv::Legacy,
        other => die(USAGE, &format!("unknown --driver {other:?}")),
    };
    let uring_ok = monoio::utils::detect_uring();
    let effective = match drv {
        Drv::Fusion if uring_ok => "io_uring",
        Drv::Fusion | Drv::Legacy => "legacy(epoll)",
        Drv::Uring if uring_ok => "io_uring",
        Drv::Uring => die(USAGE, "--driver uring: io_uring is not usable here"),
    };
    let listeners = bind_reuseport(&args.addr(), threads)?;
    announce(
        "monoio-peer",
        listeners[0].local_addr()?,
        &format!("proto={proto:?} threads={threads} driver={effective}"),
    );
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            std::thread::Builder::new()
                .name(format!("monoio-{i}"))
                .spawn(move || -> io::Result<()> {
                    match drv {
                        Drv::Fusion => RuntimeBuilder::<FusionDriver>::new()
                            .build()?
                            .block_on(accept_loop(l, proto)),
                        Drv::Uring => RuntimeBuilder::<IoUringDriver>::new()
                            .build()?
                            .block_on(accept_loop(l, proto)),
                        Drv::Legacy => RuntimeBuilder::<LegacyDriver>::new()
                            .build()?
                            .block_on(accept_loop(l, proto)),
                    }
                })
                .expect("spawn thread")
        })
        .collect();
    for h in handles {
        h.join().expect("runtime thread panicked")?;
    }
    Ok(())
}

async fn accept_loop(l: std::net::TcpListener, proto: Proto) -> io::Result<()> {
    let l = TcpListener::from_std(l)?;
    loop {
        let (s, _) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        monoio::spawn(async move {
            let _ = match proto {
                Proto::Echo => echo(s).await,
                Proto::Framed => framed_conn(s).await,
                Proto::Http => http_conn(s).await,
            };
        });
    }
}

/// Reads into the spare capacity of `buf` (appending), keeping at least
/// `min_spare` bytes free. Returns the buffer and the byte count (0 = EOF).
async fn read_append(
    s: &mut TcpStream,
    mut buf: BytesMut,
    min_spare: usize,
) -> (io::Result<usize>, BytesMut) {
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let len = buf.len();
    let (res, slice) = s.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}

async fn echo(mut s: TcpStream) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        buf.clear();
        let (res, b) = s.read(buf).await;
        if res? == 0 {
            return Ok(());
        }
        let (res, b) = s.write_all(b).await;
        res?;
        buf = b;
    }
}

async fn framed_conn(mut s: TcpStream) -> io::Result<()> {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        let (res, b) = read_append(&mut s, rbuf, 4096).await;
        rbuf = b;
        if res? == 0 {
            return Ok(());
        }
        let (done, want) = framed::complete_prefix(&rbuf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        if done > 0 {
            out.clear();
            out.extend_from_slice(&rbuf[..done]);
            rbuf.advance(done);
            let (res, b) = s.write_all(out).await;
            res?;
            out = b;
        }
        if want > rbuf.len() {
            rbuf.reserve(want - rbuf.len());
        }
    }
}

async fn http_conn(mut s: TcpStream) -> io::Result<()> {
    let mut rbuf = BytesMut::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        let (res, b) = read_append(&mut s, rbuf, 1024).await;
        rbuf = b;
        if res? == 0 {
            return Ok(());
        }
        out.clear();
        let close = http::process(&mut rbuf, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")));
        if !out.is_empty() {
            let (res, b) = s.write_all(out).await;
            res?;
            out = b;
        }
        if close? {
            return Ok(()); // dropping the stream closes it
        }
    }
}
