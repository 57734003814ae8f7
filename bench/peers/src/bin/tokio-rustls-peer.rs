//! tokio-rustls comparison peer: echo / http / ws over TLS on tokio current-thread
//! runtimes, the counterpart of netloop's example servers run with
//! `--tls-cert PEM --tls-key PEM` (`scripts/tls_bench.sh`).
//!
//! The rustls `ServerConfig` is the one netloop's `tls::server_config` builds, and the
//! examples' ALPN on top: `builder_with_provider(ring)`, the safe default protocol
//! versions (TLS 1.2 and 1.3), no client authentication, the single certificate chain
//! of `--cert` with the key of `--key`, ALPN `http/1.1`; everything else is rustls'
//! default (session cache, two TLS 1.3 tickets after a handshake, no ticketer). Each
//! accepted socket (TCP_NODELAY) gets a task that runs `TlsAcceptor::accept` and then
//! the protocol on the `TlsStream`:
//!
//! - `echo`: every byte read is written back (`write_all` + `flush`);
//! - `http`: the lib's `http::process`, all responses to one read in one write, as
//!   `tokio-peer`;
//! - `ws`: `tokio-tungstenite`'s `accept_async_with_config` on the TLS stream and the
//!   echo loop of `tokio-tungstenite-peer` (feed what is ready, flush once).
//!
//! At end of file (the client's `close_notify`, or a plain TCP close) and after an HTTP
//! `Connection: close` the peer shuts the stream down, which sends its own
//! `close_notify` as netloop does.
//!
//! `--threads N`: N threads, each with its own current-thread runtime and its own
//! SO_REUSEPORT listener (default 1).

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use netloop_bench_peers::{announce, bind_reuseport, die, http, ws, Args};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

const USAGE: &str = "tokio-rustls-peer --proto echo|http|ws --cert PEM --key PEM \
[--addr 127.0.0.1:7000] [--threads N]
  --cert PEM   the server's certificate chain (e.g. from netloop's examples/tls_cert)
  --key PEM    its private key
  --threads N  N threads x (current-thread runtime + own SO_REUSEPORT listener); default 1";

const READ_CHUNK: usize = 64 * 1024;

/// What the peer speaks inside TLS.
#[derive(Clone, Copy, Debug)]
enum Proto {
    Echo,
    Http,
    Ws,
}

fn main() -> io::Result<()> {
    let args = Args::from_env(&["proto", "addr", "threads", "cert", "key"], USAGE);
    let proto = match args.get("proto").unwrap_or("echo") {
        "echo" => Proto::Echo,
        "http" => Proto::Http,
        "ws" => Proto::Ws,
        other => die(USAGE, &format!("unknown --proto {other:?} (echo|http|ws)")),
    };
    let cert = args
        .get("cert")
        .unwrap_or_else(|| die(USAGE, "--cert PEM is required"));
    let key = args
        .get("key")
        .unwrap_or_else(|| die(USAGE, "--key PEM is required"));
    let acceptor = TlsAcceptor::from(Arc::new(server_config(cert, key)?));
    let threads = args.threads(1, USAGE);
    let listeners = bind_reuseport(&args.addr(), threads)?;
    announce(
        "tokio-rustls-peer",
        listeners[0].local_addr()?,
        &format!("proto={proto:?} threads={threads} tls=rustls-ring"),
    );
    ws::serve_current_threads(listeners, "tokio-rustls", move |s| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(s).await else {
                return;
            };
            let _ = match proto {
                Proto::Echo => echo(tls).await,
                Proto::Http => http_conn(tls).await,
                Proto::Ws => ws_conn(tls).await.map_err(io::Error::other),
            };
        }
    })
}

/// netloop's `tls::server_config(cert, key)` with the examples' ALPN `http/1.1`.
fn server_config(cert: &str, key: &str) -> io::Result<rustls::ServerConfig> {
    let bad = |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&format!("{cert}: {e}")))?;
    if certs.is_empty() {
        return Err(bad(&format!("{cert}: no CERTIFICATE block")));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&format!("{key}: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn echo(mut s: TlsStream<TcpStream>) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return s.shutdown().await;
        }
        s.write_all(&buf[..n]).await?;
        s.flush().await?;
    }
}

async fn http_conn(mut s: TlsStream<TcpStream>) -> io::Result<()> {
    let mut rbuf = BytesMut::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(8 * 1024);
        }
        if s.read_buf(&mut rbuf).await? == 0 {
            return s.shutdown().await;
        }
        let close = http::process(&mut rbuf, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")));
        if !out.is_empty() {
            s.write_all(&out).await?;
            s.flush().await?;
            out.clear();
        }
        if close? {
            return s.shutdown().await;
        }
    }
}

async fn ws_conn(s: TlsStream<TcpStream>) -> Result<(), Error> {
    // As tokio-tungstenite-peer: defaults (128 KiB read and write buffers), the
    // frame limit raised to the message limit.
    let config = WebSocketConfig::default()
        .max_message_size(Some(ws::MAX_MESSAGE))
        .max_frame_size(Some(ws::MAX_MESSAGE));
    let ws = tokio_tungstenite::accept_async_with_config(s, Some(config)).await?;
    ws_echo(ws).await
}

/// tokio-tungstenite-peer's loop: echo what is ready without waiting, then flush once.
async fn ws_echo<S>(mut ws: WebSocketStream<S>) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let Some(msg) = ws.next().await else {
            return Ok(());
        };
        ws_echo_one(&mut ws, msg?).await?;
        loop {
            match poll_fn(|cx| Poll::Ready(ws.poll_next_unpin(cx))).await {
                Poll::Ready(Some(msg)) => ws_echo_one(&mut ws, msg?).await?,
                Poll::Ready(None) => return ws.flush().await,
                Poll::Pending => break,
            }
        }
        ws.flush().await?;
    }
}

/// Queues the echo of a data message; pings, pongs and closes are tungstenite's.
#[inline]
async fn ws_echo_one<S>(ws: &mut WebSocketStream<S>, msg: Message) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match msg {
        Message::Text(_) | Message::Binary(_) => ws.feed(msg).await,
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => Ok(()),
    }
}
