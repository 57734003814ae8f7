//! may_minihttp comparison peer (http only): the crate's own HTTP server on
//! `may` stackful coroutines, answering the TechEmpower plaintext body.
//!
//! may_minihttp writes the status line, `Server`, `Date` and `Content-Length`
//! itself, so its bytes differ from netloop's (see README.md):
//!   ours:  HTTP/1.1 200 OK\r\nServer: netloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: D\r\n\r\nHello, World!
//!   may:   HTTP/1.1 200 Ok\r\nServer: M\r\nDate: D\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!
//! and it never closes on `Connection: close`.

use std::io;
use std::net::ToSocketAddrs;

use may_minihttp::{HttpServer, HttpService, Request, Response};
use netloop_bench_peers::{announce, cpus, die, Args, Proto};

const USAGE: &str = "may-minihttp-peer --proto http [--addr 127.0.0.1:7000] [--threads N]
  --threads N  may worker threads (default = CPUs)";

#[derive(Clone)]
struct Plaintext;

impl HttpService for Plaintext {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.header("Content-Type: text/plain");
        rsp.body("Hello, World!");
        Ok(())
    }
}

fn main() -> io::Result<()> {
    let args = Args::from_env(&["proto", "addr", "threads"], USAGE);
    if args.proto(USAGE) != Proto::Http && args.get("proto").is_some() {
        die(USAGE, "may-minihttp-peer speaks only --proto http");
    }
    let threads = args.threads(cpus(), USAGE);
    may::config().set_workers(threads);
    let addr = args.addr();
    // may_minihttp binds internally and does not report the bound address;
    // resolve port 0 by binding once here and handing the port over.
    let mut addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing"))?;
    if addr.port() == 0 {
        addr = std::net::TcpListener::bind(addr)?.local_addr()?;
    }
    let server = HttpServer(Plaintext).start(addr)?;
    announce("may-minihttp-peer", addr, &format!("proto=Http threads={threads}"));
    server.join().map_err(|_| io::Error::other("may server coroutine panicked"))?;
    Ok(())
}
