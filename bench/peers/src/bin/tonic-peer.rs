//! tonic (gRPC) comparison peer for netloop's task server (`netloop::task`): a
//! unary echo RPC (request: bytes; response: the same bytes) and its load
//! client, for `scripts/task_bench.sh`, the kitex-benchmark shape (1 KiB echo,
//! 100 calls in flight on 1 connection or on 100).
//!
//! # Server (the default)
//!
//! ```text
//! tonic-peer [--addr 127.0.0.1:7000]
//! ```
//!
//! tonic 0.14.9 (hyper 1 and h2 underneath) on ONE thread: a tokio
//! current-thread runtime (I/O and timer drivers). The service is what this
//! `.proto` would describe, written by hand so that the build needs no build
//! script and no protoc:
//!
//! ```text
//! package netloop.bench;
//! message Payload { bytes data = 1; }
//! service Echo { rpc Echo(Payload) returns (Payload); }
//! ```
//!
//! `Payload` is a `prost::Message` derive (prost 0.14.6, the field as
//! `bytes::Bytes`), encoded by tonic-prost's `ProstCodec`, and the server side
//! is a `tower::Service` on `http::Request` implementing `NamedService`
//! ("netloop.bench.Echo") that routes the path `/netloop.bench.Echo/Echo` to
//! `tonic::server::Grpc::unary` and answers any other path with UNIMPLEMENTED,
//! which is the work tonic-build's generated server does. It is served by
//! tonic's own `transport::Server` (`Server::builder().add_service(..)`, its
//! axum router) over a `TcpIncoming` with TCP_NODELAY, all settings tonic's
//! defaults: no concurrency limit, no limit on concurrent streams, hyper's
//! HTTP/2 windows (1 MiB per stream and per connection on the server), no
//! compression, HTTP/2 only. Prints `tonic-peer listening on ADDR` once the
//! socket listens. No graceful shutdown: stop it by its pid.
//!
//! # Load client: `--bench`
//!
//! ```text
//! tonic-peer --bench --addr HOST:PORT --conns C --concurrency N --size BYTES --duration SECS
//! ```
//!
//! The contract of `tarpc-peer --bench` (its module doc): C connections, N
//! closed loops spread evenly over them, a `measuring ...` line on stderr when
//! the measured period starts, then one JSON line on stdout,
//!
//! ```text
//! {"client":"tonic","conns":C,"concurrency":N,"size":S,"tasks":T,"seconds":X,"p99_us":P,"cpu_seconds":Y}
//! ```
//!
//! On one thread (current-thread runtime and `LocalSet`; shared code:
//! `netloop_bench_peers::rpc`). Each connection is its own `Channel`
//! (`Endpoint::connect` to `http://HOST:PORT`, TCP_NODELAY, tonic's defaults
//! otherwise: a 1,024-request buffer, hyper's client HTTP/2 windows), so C
//! channels are C TCP connections; the loops on a connection each hold a
//! `tonic::client::Grpc` over a clone of its channel and call
//! `ready().await` then `unary(...)` for each echo, the calls tonic-build's
//! generated client makes.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use netloop_bench_peers::rpc::{self, Bench, Peer};
use netloop_bench_peers::{announce, die, Args};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

const USAGE: &str = "tonic-peer [--addr 127.0.0.1:7000]
tonic-peer --bench --addr HOST:PORT --conns C --concurrency N --size BYTES --duration SECS
  (default)  the gRPC echo service on one thread (tokio current-thread runtime)
  --bench    the load client: C connections, N closed loops spread over them, for SECS
             seconds; prints one JSON line
               {\"client\":\"tonic\",\"conns\":C,\"concurrency\":N,\"size\":S,\"tasks\":T,\"seconds\":X,\"p99_us\":P,\"cpu_seconds\":Y}";

/// The service's name, as a `.proto` with `package netloop.bench;` names it.
const SERVICE: &str = "netloop.bench.Echo";
/// The one method's path: `/` service `/` method.
const ECHO_PATH: &str = "/netloop.bench.Echo/Echo";

/// `message Payload { bytes data = 1; }`, request and response alike.
#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
}

/// The server: routes the Echo method, UNIMPLEMENTED for anything else.
#[derive(Clone)]
struct EchoServer;

impl NamedService for EchoServer {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for EchoServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == ECHO_PATH {
            Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<Payload, Payload>::default());
                Ok(grpc.unary(EchoMethod, req).await)
            })
        } else {
            Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) })
        }
    }
}

/// The Echo method: the reply is the request's message.
struct EchoMethod;

impl UnaryService<Payload> for EchoMethod {
    type Response = Payload;
    type Future = Ready<Result<Response<Payload>, Status>>;

    fn call(&mut self, request: Request<Payload>) -> Self::Future {
        ready(Ok(Response::new(request.into_inner())))
    }
}

fn main() {
    let args = Args::from_env_with_flags(rpc::BENCH_KEYS, &["bench"], USAGE);
    if args.flag("bench") {
        let b = Bench::from_args(&args, USAGE);
        match rpc::run::<TonicPeer>(&b) {
            Ok(out) => println!("{}", out.json(TonicPeer::NAME, &b)),
            Err(e) => {
                eprintln!("tonic-peer: {e}");
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
            eprintln!("tonic-peer: {e}");
            std::process::exit(1);
        }
    }
}

fn serve(addr: &str) -> Result<(), String> {
    let rt = rpc::runtime().map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        announce("tonic-peer", local, "threads=1");
        Server::builder()
            .add_service(EchoServer)
            .serve_with_incoming(incoming)
            .await
            .map_err(|e| format!("serve: {e}"))
    })
}

struct TonicPeer;

impl Peer for TonicPeer {
    const NAME: &'static str = "tonic";
    type Conn = Channel;
    type Caller = tonic::client::Grpc<Channel>;

    async fn connect(addr: &str) -> Result<Channel, String> {
        Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad address {addr:?}: {e}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))
    }

    fn caller(conn: &Channel) -> Self::Caller {
        tonic::client::Grpc::new(conn.clone())
    }

    async fn echo(caller: &mut Self::Caller, payload: Bytes) -> Result<usize, String> {
        caller
            .ready()
            .await
            .map_err(|e| format!("channel not ready: {e}"))?;
        let reply: Response<Payload> = caller
            .unary(
                Request::new(Payload { data: payload }),
                http::uri::PathAndQuery::from_static(ECHO_PATH),
                ProstCodec::<Payload, Payload>::default(),
            )
            .await
            .map_err(|e| format!("echo call: {e}"))?;
        Ok(reply.into_inner().data.len())
    }
}
