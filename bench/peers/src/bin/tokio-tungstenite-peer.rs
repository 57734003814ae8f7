//! tokio-tungstenite comparison peer (ws only): a WebSocket echo server on
//! tokio current-thread runtimes.
//!
//! `accept_async_with_config` does the handshake on the raw TcpStream (no
//! extensions: tungstenite has no permessage-deflate), then one task per
//! connection reads messages and writes text and binary ones back with their
//! opcode. tungstenite reassembles fragmented messages, queues the pong for a
//! ping and the close reply for a close by itself; both go out on the next
//! flush (or the next read, which flushes them first).
//!
//! Writes: no `split()` (that would put a BiLock in front of every poll); one
//! loop owns the stream. Each echo is `feed`, which only encodes the frame into
//! tungstenite's write buffer (it writes to the socket by itself once the buffer
//! passes `write_buffer_size`, 128 KiB). After a message the loop polls the
//! stream again *without waiting*: messages already read or readable are echoed
//! into the same buffer, and the buffer is flushed (one `write` for the batch)
//! as soon as the stream has nothing more ready. A single request/response
//! message so costs one write, like `send`, and pipelined messages that arrive
//! in one read go out in one write instead of one each. The drain stops at the
//! latest when tokio's cooperative budget runs out (the socket then reports
//! Pending), so one busy connection can't starve the others.
//!
//! `--threads N`: N threads, each with its own current-thread runtime and its
//! own SO_REUSEPORT listener (default 1).

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use futures_util::{SinkExt, StreamExt};
use netloop_bench_peers::{announce, bind_reuseport, ws, Args};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

const USAGE: &str = "tokio-tungstenite-peer --proto ws [--addr 127.0.0.1:7000] [--threads N]
  --threads N  N threads x (current-thread runtime + own SO_REUSEPORT listener); default 1";

fn main() -> io::Result<()> {
    let args = Args::from_env(&["proto", "addr", "threads"], USAGE);
    args.require_proto("ws", USAGE);
    let threads = args.threads(1, USAGE);
    let listeners = bind_reuseport(&args.addr(), threads)?;
    announce(
        "tokio-tungstenite-peer",
        listeners[0].local_addr()?,
        &format!("proto=ws threads={threads}"),
    );
    ws::serve_current_threads(listeners, "tungstenite", |s| async move {
        // Defaults otherwise (128 KiB read and write buffers); the default
        // 16 MiB frame limit is raised to the message limit, as netloop's
        // ws_echo has them.
        let config = WebSocketConfig::default()
            .max_message_size(Some(ws::MAX_MESSAGE))
            .max_frame_size(Some(ws::MAX_MESSAGE));
        if let Ok(ws) = tokio_tungstenite::accept_async_with_config(s, Some(config)).await {
            let _ = echo(ws).await;
        }
    })
}

async fn echo(mut ws: WebSocketStream<TcpStream>) -> Result<(), Error> {
    loop {
        // Wait for the next message; None once the close handshake is done
        // (tungstenite has then written its close reply).
        let Some(msg) = ws.next().await else {
            return Ok(());
        };
        echo_one(&mut ws, msg?).await?;
        // Echo whatever else is ready without waiting, then flush once.
        loop {
            match poll_fn(|cx| Poll::Ready(ws.poll_next_unpin(cx))).await {
                Poll::Ready(Some(msg)) => echo_one(&mut ws, msg?).await?,
                Poll::Ready(None) => return ws.flush().await,
                Poll::Pending => break,
            }
        }
        ws.flush().await?;
    }
}

/// Queues the echo of a data message; pings, pongs and closes are
/// tungstenite's business (it has queued the replies already).
#[inline]
async fn echo_one(ws: &mut WebSocketStream<TcpStream>, msg: Message) -> Result<(), Error> {
    match msg {
        Message::Text(_) | Message::Binary(_) => ws.feed(msg).await,
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => Ok(()),
    }
}
