//! fastwebsockets comparison peer (ws only): a WebSocket echo server on hyper 1
//! (HTTP/1.1 upgrade) and tokio current-thread runtimes.
//!
//! The setup is the one the crate recommends for echo servers (its
//! `examples/echo_server.rs`): hyper serves the handshake
//! (`fastwebsockets::upgrade::upgrade`, 101 with Sec-WebSocket-Accept, no
//! extensions: the crate has no permessage-deflate), the upgraded connection
//! runs in its own task under `tokio::task::unconstrained`, and a
//! `FragmentCollector` reassembles fragmented messages. Auto close and auto
//! pong are on (the crate's defaults, set explicitly here).
//!
//! Writes: every `write_frame` goes straight to the socket, one message at a
//! time. The crate has no write buffer: frames up to 1024 B payload are
//! formatted into a small reused buffer and written with one `write`, bigger
//! ones with one `writev` (header + payload, no copy). `flush` is a no-op on a
//! plain TCP stream, so there is nothing to batch.
//!
//! `--threads N`: N threads, each with its own current-thread runtime and its
//! own SO_REUSEPORT listener (default 1).

use std::io;

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use netloop_bench_peers::{announce, bind_reuseport, ws, Args};

const USAGE: &str = "fastwebsockets-peer --proto ws [--addr 127.0.0.1:7000] [--threads N]
  --threads N  N threads x (current-thread runtime + own SO_REUSEPORT listener); default 1";

fn main() -> io::Result<()> {
    let args = Args::from_env(&["proto", "addr", "threads"], USAGE);
    args.require_proto("ws", USAGE);
    let threads = args.threads(1, USAGE);
    let listeners = bind_reuseport(&args.addr(), threads)?;
    announce(
        "fastwebsockets-peer",
        listeners[0].local_addr()?,
        &format!("proto=ws threads={threads}"),
    );
    ws::serve_current_threads(listeners, "fastwebsockets", |s| async move {
        let conn = http1::Builder::new()
            .serve_connection(TokioIo::new(s), service_fn(handshake))
            .with_upgrades();
        let _ = conn.await;
    })
}

/// Answers the upgrade request and starts the WebSocket task; anything that
/// is not a valid WebSocket upgrade gets a 400.
async fn handshake(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = match upgrade::upgrade(&mut req) {
        Ok(x) => x,
        Err(_) => {
            let mut bad = Response::new(Empty::new());
            *bad.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(bad);
        }
    };
    tokio::spawn(tokio::task::unconstrained(async move {
        let _ = echo(fut).await;
    }));
    Ok(response)
}

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut socket = fut.await?;
    socket.set_auto_close(true);
    socket.set_auto_pong(true);
    // The crate refuses a frame whose payload is >= the limit; +1 admits a
    // frame of exactly MAX_MESSAGE, as netloop does. (The collector does not
    // bound the total of a fragmented message.)
    socket.set_max_message_size(ws::MAX_MESSAGE + 1);
    let mut ws = FragmentCollector::new(socket);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // The close reply was already sent by auto close.
            OpCode::Close => return Ok(()),
            // A whole message (fin set, unmasked); it goes back with the same opcode.
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
