//! A framed RPC echo server — the netpoll-benchmark shape: each request is a 4-byte
//! big-endian length followed by that many bytes, and the reply is the identical frame.
//!
//! ```text
//! cargo run --release --example framed -- --addr 127.0.0.1:7001 [--pollers 1] [--pool 4]
//! ```
//! Frames are answered without copying (the reply is the request's own bytes), pipelined
//! frames are all answered in one write, and a partial frame waits (`want`) until it is
//! complete. Frames larger than `--max-frame` close the connection.

mod support;

use clap::Parser;
use netloop::{Conn, Handler};

#[derive(Parser)]
#[command(about = "netloop framed RPC echo server")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
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
    support::init_logging();
    let args = Args::parse();
    let server = args.server.builder("127.0.0.1:7001").serve(Framed {
        max_frame: args.max_frame,
    })?;
    support::run_until_signal(&server, "framed", args.server.grace())
}
