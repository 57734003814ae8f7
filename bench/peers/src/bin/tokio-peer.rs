//! tokio comparison peer: echo / framed / http on a current-thread or
//! multi-thread tokio runtime.
//!
//! `--flavor multi --threads N`: one multi-thread runtime with N workers
//! sharing one listener (work-stealing).
//! `--flavor current --threads N`: N threads, each with its own current-thread
//! runtime and its own SO_REUSEPORT listener (thread-per-core). `--threads 1`
//! (the default for `current`) is the plain single current-thread runtime.

use std::io;

use bytes::{Buf, BytesMut};
use netloop_bench_peers::{announce, bind_reuseport, cpus, die, framed, http, Args, Proto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "tokio-peer --proto echo|framed|http [--addr 127.0.0.1:7000] \
[--flavor current|multi] [--threads N]
  --flavor current  N threads x (current-thread runtime + own SO_REUSEPORT listener); default N=1
  --flavor multi    one multi-thread runtime with N workers (default N = CPUs)";

const READ_CHUNK: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let args = Args::from_env(&["proto", "addr", "threads", "flavor"], USAGE);
    let proto = args.proto(USAGE);
    let flavor = args.get("flavor").unwrap_or("current").to_string();
    match flavor.as_str() {
        "current" => {
            let threads = args.threads(1, USAGE);
            let listeners = bind_reuseport(&args.addr(), threads)?;
            announce(
                "tokio-peer",
                listeners[0].local_addr()?,
                &format!("proto={proto:?} flavor=current threads={threads}"),
            );
            let handles: Vec<_> = listeners
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    std::thread::Builder::new()
                        .name(format!("tokio-current-{i}"))
                        .spawn(move || -> io::Result<()> {
                            let rt = tokio::runtime::Builder::new_current_thread()
                                .enable_io()
                                .build()?;
                            rt.block_on(async move {
                                let l = TcpListener::from_std(l)?;
                                accept_loop(l, proto).await
                            })
                        })
                        .expect("spawn thread")
                })
                .collect();
            for h in handles {
                h.join().expect("runtime thread panicked")?;
            }
            Ok(())
        }
        "multi" => {
            let threads = args.threads(cpus(), USAGE);
            let l = bind_reuseport(&args.addr(), 1)?.pop().unwrap();
            announce(
                "tokio-peer",
                l.local_addr()?,
                &format!("proto={proto:?} flavor=multi threads={threads}"),
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_io()
                .build()?;
            rt.block_on(async move {
                let l = TcpListener::from_std(l)?;
                accept_loop(l, proto).await
            })
        }
        other => die(USAGE, &format!("unknown --flavor {other:?}")),
    }
}

async fn accept_loop(l: TcpListener, proto: Proto) -> io::Result<()> {
    loop {
        let (s, _) = match l.accept().await {
            Ok(x) => x,
            // EMFILE and friends: keep serving the connections we have.
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let _ = match proto {
                Proto::Echo => echo(s).await,
                Proto::Framed => framed_conn(s).await,
                Proto::Http => http_conn(s).await,
            };
        });
    }
}

async fn echo(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
    }
}

async fn framed_conn(mut s: TcpStream) -> io::Result<()> {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(READ_CHUNK);
        }
        if s.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
        let (done, want) = framed::complete_prefix(&rbuf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        if done > 0 {
            s.write_all(&rbuf[..done]).await?;
            rbuf.advance(done);
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
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(8 * 1024);
        }
        if s.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
        let close = http::process(&mut rbuf, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")));
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
        if close? {
            return s.shutdown().await;
        }
    }
}
