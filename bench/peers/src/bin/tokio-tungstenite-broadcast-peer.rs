//! tokio-tungstenite broadcast peer (ws only): the same behaviour as netloop's
//! `examples/ws_broadcast`, on a tokio current-thread runtime. Every connection
//! is subscribed to one tokio `broadcast` channel; every text or binary message
//! received is sent into it, so it goes to every connection, the sender
//! included.
//!
//! Each connection is one task with one loop that owns the stream (no
//! `split()`), selecting between its next WebSocket message and its next
//! channel message. A channel message is `feed` (encoded into tungstenite's
//! write buffer), then everything else already in the channel is fed too
//! (`try_recv`), and the buffer is flushed once: messages published together
//! go out in one `write`, as netloop's fan-out sends them. The handshake and
//! the settings are those of `tokio-tungstenite-peer` (128 KiB buffers, frame
//! limit raised to 64 MiB).
//!
//! The channel holds [`CAPACITY`] messages; a connection that falls further
//! behind skips what it missed (`Lagged`), as a hub drops messages for a
//! subscriber over its bound. `--threads N`: N threads, each with its own
//! current-thread runtime and SO_REUSEPORT listener, sharing one channel
//! (default 1).

use std::io;

use futures_util::{SinkExt, StreamExt};
use netloop_bench_peers::{announce, bind_reuseport, ws, Args};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError, Sender};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

const USAGE: &str =
    "tokio-tungstenite-broadcast-peer --proto ws [--addr 127.0.0.1:7000] [--threads N]
  --threads N  N threads x (current-thread runtime + own SO_REUSEPORT listener); default 1";

/// Messages the channel keeps for a subscriber that has not read them yet: one
/// benchmark round of 10,000 senders fits several times over.
const CAPACITY: usize = 1 << 16;

fn main() -> io::Result<()> {
    let args = Args::from_env(&["proto", "addr", "threads"], USAGE);
    args.require_proto("ws", USAGE);
    let threads = args.threads(1, USAGE);
    let listeners = bind_reuseport(&args.addr(), threads)?;
    announce(
        "tokio-tungstenite-broadcast-peer",
        listeners[0].local_addr()?,
        &format!("proto=ws threads={threads}"),
    );
    let (tx, _) = broadcast::channel::<Message>(CAPACITY);
    ws::serve_current_threads(listeners, "tungstenite-bcast", move |s| {
        let tx = tx.clone();
        async move {
            let config = WebSocketConfig::default()
                .max_message_size(Some(ws::MAX_MESSAGE))
                .max_frame_size(Some(ws::MAX_MESSAGE));
            if let Ok(ws) = tokio_tungstenite::accept_async_with_config(s, Some(config)).await {
                let _ = member(ws, tx).await;
            }
        }
    })
}

/// Serves one subscriber until its connection ends.
async fn member(mut ws: WebSocketStream<TcpStream>, tx: Sender<Message>) -> Result<(), Error> {
    let mut rx = tx.subscribe();
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(msg) => {
                    ws.feed(msg).await?;
                    loop {
                        match rx.try_recv() {
                            Ok(msg) => ws.feed(msg).await?,
                            Err(TryRecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        }
                    }
                    ws.flush().await?;
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return Ok(()),
            },
            msg = ws.next() => match msg {
                // The close handshake is done (tungstenite wrote its reply).
                None => return Ok(()),
                Some(msg) => match msg? {
                    m @ (Message::Text(_) | Message::Binary(_)) => {
                        // Nobody subscribed is not an error: there is always this one.
                        let _ = tx.send(m);
                    }
                    // Pings, pongs and closes are tungstenite's business.
                    _ => {}
                },
            },
        }
    }
}
