//! An echo server: every byte received is sent back, without copying.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000 [--pollers 1] [--pool 4]
//! ```
//! Stops gracefully on Ctrl-C / SIGTERM and prints the shutdown report and counters.

mod support;

use clap::Parser;
use netloop::handler_fn;

#[derive(Parser)]
#[command(about = "netloop echo server")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let args = Args::parse();
    let server = args
        .server
        .builder("127.0.0.1:7000")
        .serve(handler_fn(|conn| {
            let n = conn.input().len();
            let data = conn.input().next(n);
            conn.output().write_bytes(data);
        }))?;
    support::run_until_signal(&server, "echo", args.server.grace())
}
