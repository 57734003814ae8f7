//! tarpc comparison peer for netloop's task server (`netloop::task`): an echo
//! RPC service (request: bytes; response: the same bytes) and its load client,
//! for `scripts/task_bench.sh`, the kitex-benchmark shape (1 KiB echo, 100
//! calls in flight on 1 connection or on 100).
//!
//! # Server (the default)
//!
//! ```text
//! tarpc-peer [--addr 127.0.0.1:7000]
//! ```
//!
//! tarpc 0.38.0 on ONE thread: a tokio current-thread runtime (I/O and timer
//! drivers; tarpc's server keeps a deadline per request). The service is
//! `#[tarpc::service] trait Echo { async fn echo(payload: Bytes) -> Bytes; }`,
//! answered with the payload it got. tarpc's own TCP serde transport
//! (`serde_transport::tcp::listen_on`: a 4-byte length-delimited frame around
//! each serialized message, tokio-util's default 8 MiB frame limit) with the
//! Bincode codec. Accepted sockets get TCP_NODELAY (tarpc leaves Nagle on;
//! netloop and tonic turn it off, and with it on a request/response loop waits
//! for delayed ACKs). Each connection is a `BaseChannel` with tarpc's default
//! `server::Config` (100 pending responses) and no request limit, served as
//! tarpc's docs show: `channel.execute(EchoServer.serve())`, every request
//! future spawned as a task of its own. Prints `tarpc-peer listening on ADDR`
//! once the socket listens. No graceful shutdown: stop it by its pid.
//!
//! Why Bincode: tarpc's docs do not rank the tokio-serde codecs; its examples
//! use both Json and Bincode. With Json a 1 KiB payload is an array of decimal
//! numbers (about 3.5 KiB) and serde_json's number parsing would dominate, so
//! the comparison would measure serde_json rather than tarpc. Bincode (1.3,
//! tokio-serde's `Bincode::default()`) writes it as a length and the bytes. The
//! payload is `bytes::Bytes` (its serde impl uses `serialize_bytes`): one copy
//! in and one out, not a sequence of 1,024 numbers, as `Vec<u8>` would be.
//!
//! # Load client: `--bench` (the benchmark contract)
//!
//! ```text
//! tarpc-peer --bench --addr HOST:PORT --conns C --concurrency N --size BYTES --duration SECS
//! ```
//!
//! Opens C connections (one after the other, before measuring), then runs N
//! closed loops in total, spread evenly over the connections (connection i
//! carries N/C, the first N%C one more; N must be at least C): N=100, C=1 is
//! 100 calls multiplexed on one connection, N=100, C=100 one call per
//! connection. Each loop sends BYTES bytes, awaits the reply, checks its
//! length, records the latency (send to reply, hdrhistogram, 3 significant
//! digits) and repeats until SECS seconds have passed since the start (the
//! call in flight then is finished and counted). When the connections are
//! open and the measured period starts it prints one line on stderr starting
//! with `measuring` (scripts wait for it before attaching perf to the server).
//! At the end it prints ONE line of JSON on stdout and exits 0:
//!
//! ```text
//! {"client":"tarpc","conns":C,"concurrency":N,"size":S,"tasks":T,"seconds":X,"p99_us":P,"cpu_seconds":Y}
//! ```
//!
//! `tasks` is the number of replies received in the measured period (all
//! loops), `seconds` its wall-clock length (until the last loop stopped),
//! `p99_us` the 99th percentile latency in microseconds, `cpu_seconds` this
//! process's user + system CPU time over the period (`getrusage(RUSAGE_SELF)`
//! before and after). So tasks/s is `tasks / seconds`. Anything unexpected (a
//! connection that cannot be opened in 10 s, a failed call, a reply of the
//! wrong length, no reply by the duration + 10 s) goes to stderr with exit
//! status 1 and no JSON line. netloop's `examples/task_client --bench`
//! (and `tonic-peer --bench`) take the same command line and print the same
//! line with their own `"client"`.
//!
//! The client runs on one thread: a current-thread runtime and a `LocalSet`,
//! one task per loop (shared code: `netloop_bench_peers::rpc`). Each
//! connection is `EchoClient::new(client::Config::default(), transport).spawn()`
//! (tarpc's defaults: 1,000 requests in flight, 100 pending) over
//! `serde_transport::tcp::connect` with Bincode and TCP_NODELAY; its loops
//! share clones of that client. Every call has tarpc's default context
//! (`context::current()`, a 10 s deadline).

use bytes::Bytes;
use futures_util::StreamExt;
use netloop_bench_peers::rpc::{self, Bench, Peer};
use netloop_bench_peers::{announce, die, Args};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context, serde_transport};

const USAGE: &str = "tarpc-peer [--addr 127.0.0.1:7000]
tarpc-peer --bench --addr HOST:PORT --conns C --concurrency N --size BYTES --duration SECS
  (default)  the echo service on one thread (tokio current-thread runtime)
  --bench    the load client: C connections, N closed loops spread over them, for SECS
             seconds; prints one JSON line
               {\"client\":\"tarpc\",\"conns\":C,\"concurrency\":N,\"size\":S,\"tasks\":T,\"seconds\":X,\"p99_us\":P,\"cpu_seconds\":Y}";

#[tarpc::service]
trait Echo {
    /// Answers with the bytes it was given.
    async fn echo(payload: Bytes) -> Bytes;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, payload: Bytes) -> Bytes {
        payload
    }
}

fn main() {
    let args = Args::from_env_with_flags(rpc::BENCH_KEYS, &["bench"], USAGE);
    if args.flag("bench") {
        let b = Bench::from_args(&args, USAGE);
        match rpc::run::<TarpcPeer>(&b) {
            Ok(out) => println!("{}", out.json(TarpcPeer::NAME, &b)),
            Err(e) => {
                eprintln!("tarpc-peer: {e}");
                std::process::exit(1);
            }
        }
    } else {
        for key in &rpc::BENCH_KEYS[1..] {
            if args.get(key).is_some() {
                die(USAGE, &format!("--{key} is for --bench"));
            }
        }
        if let Err(e) = serve(&args.addr()) {
            eprintln!("tarpc-peer: {e}");
            std::process::exit(1);
        }
    }
}

fn serve(addr: &str) -> std::io::Result<()> {
    let rt = rpc::runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut incoming = serde_transport::tcp::listen_on(listener, Bincode::default).await?;
        announce(
            "tarpc-peer",
            incoming.local_addr(),
            "codec=bincode threads=1",
        );
        while let Some(transport) = incoming.next().await {
            let transport = match transport {
                Ok(t) => t,
                // EMFILE and friends: keep serving the connections we have.
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = transport.get_ref().set_nodelay(true);
            let channel = BaseChannel::with_defaults(transport);
            tokio::spawn(
                channel
                    .execute(EchoServer.serve())
                    .for_each(|request| async {
                        tokio::spawn(request);
                    }),
            );
        }
        Ok(())
    })
}

struct TarpcPeer;

impl Peer for TarpcPeer {
    const NAME: &'static str = "tarpc";
    type Conn = EchoClient;
    type Caller = EchoClient;

    async fn connect(addr: &str) -> Result<EchoClient, String> {
        let transport = serde_transport::tcp::connect(addr, Bincode::default)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        transport
            .get_ref()
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        Ok(EchoClient::new(client::Config::default(), transport).spawn())
    }

    fn caller(conn: &EchoClient) -> EchoClient {
        conn.clone()
    }

    async fn echo(caller: &mut EchoClient, payload: Bytes) -> Result<usize, String> {
        caller
            .echo(context::current(), payload)
            .await
            .map(|reply| reply.len())
            .map_err(|e| format!("echo call: {e}"))
    }
}
