//! A WebSocket echo server: every message is sent back as it came, on any path. The
//! target of the Autobahn conformance run (`scripts/autobahn.sh`) and of the WebSocket
//! benchmarks.
//!
//! ```text
//! cargo run --release --example ws_echo -- --addr 127.0.0.1:9001 [--pollers 1] [--deflate]
//! # wss://, with a certificate from `cargo run --example tls_cert -- --out certs`:
//! cargo run --release --example ws_echo -- --tls-cert certs/cert.pem --tls-key certs/key.pem
//! ```
//! Stops gracefully on Ctrl-C / SIGTERM and prints the shutdown report and counters.

mod support;

use clap::Parser;
use netloop::http::Request;
use netloop::ws::{self, DeflateConfig, Message, WsConn, WsHandler};

#[derive(Parser)]
#[command(about = "netloop WebSocket echo server")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
    /// Offer permessage-deflate, with context takeover allowed both ways (so every
    /// parameter a client can offer is honoured).
    #[arg(long)]
    deflate: bool,
    /// Largest message (and frame) accepted, in bytes. The default admits Autobahn's
    /// 16 MiB cases.
    #[arg(long, default_value_t = 64 << 20)]
    max_message: usize,
}

/// Echoes every message.
struct Echo;

impl WsHandler for Echo {
    type State = ();

    fn on_open(&self, _ws: &mut WsConn<'_>, _req: &Request) {}

    fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
        ws.send(msg);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let args = Args::parse();
    let mut config = ws::Config::default()
        .max_message_size(args.max_message)
        .max_frame_size(args.max_message);
    if args.deflate {
        config = config.deflate(
            DeflateConfig::default()
                .server_context_takeover(true)
                .client_context_takeover(true),
        );
    }
    let server = args
        .server
        .builder("127.0.0.1:9001")
        .max_want(args.max_message + 64)
        .serve(ws::server(Echo, config))?;
    support::run_until_signal(&server, "ws_echo", args.server.grace())
}
