//! A framed RPC echo server — the netpoll-benchmark shape: each request is a 4-byte
//! big-endian length followed by that many bytes, and the reply is the identical frame.
//!
//! ```text
//! cargo run --release --example framed -- --addr 127.0.0.1:7001 [--pollers 1] [--pool 4]
//! ```
//! Frames are answered without copying (the reply is the request's own bytes), pipelined
//! frames are all answered in one write, and a partial frame waits (`want`) until it is
//! complete. Frames larger than `--max-frame` close the connection.

use std::time::Duration;

use clap::Parser;
use netloop::{Conn, Dispatch, Handler, Server};

#[derive(Parser)]
#[command(about = "netloop framed RPC echo server")]
struct Args {
    /// Address to listen on (IP:PORT or unix:/path); repeat for several.
    #[arg(long, default_value = "127.0.0.1:7001")]
    addr: Vec<String>,
    /// Poller threads (default: one per CPU this process may use).
    #[arg(long)]
    pollers: Option<usize>,
    /// Run handlers on a pool of this many worker threads instead of inline.
    #[arg(long)]
    pool: Option<usize>,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_frame: usize,
}

/// Echoes length-prefixed frames.
struct Framed {
    max_frame: usize,
}

impl Handler for Framed {
    type State = ();

    fn on_connect(&self, _conn: &mut Conn) {}

    fn on_request(&self, _: &mut (), conn: &mut Conn) {
        loop {
            let input = conn.input();
            if input.len() < 4 {
                return;
            }
            let len = u32::from_be_bytes(input.peek(4).try_into().expect("4 bytes")) as usize;
            if len > self.max_frame {
                tracing::warn!(len, "frame over the limit; closing");
                conn.close();
                return;
            }
            if input.len() < 4 + len {
                input.want(4 + len);
                return;
            }
            let frame = input.next(4 + len);
            conn.output().write_bytes(frame);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut builder = Server::builder();
    for addr in &args.addr {
        builder = builder.listen(addr.as_str());
    }
    if let Some(n) = args.pollers {
        builder = builder.pollers(n);
    }
    if let Some(threads) = args.pool {
        builder = builder.dispatch(Dispatch::Pool { threads });
    }
    let server = builder.serve(Framed {
        max_frame: args.max_frame,
    })?;
    for addr in server.local_addrs() {
        println!("framed listening on {addr}");
    }
    netloop::signal::stop_on_signals(server.stopper(), Duration::from_secs(5))?;
    let report = server.wait();
    println!("shutdown: {report:?}");
    println!("stats: {:?}", server.stats());
    Ok(())
}
