//! An echo server: every byte received is sent back, without copying.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000 [--pollers 1] [--pool 4]
//! ```
//! Stops gracefully on Ctrl-C / SIGTERM and prints the shutdown report and counters.

use std::time::Duration;

use clap::Parser;
use netloop::{handler_fn, Dispatch, Server};

#[derive(Parser)]
#[command(about = "netloop echo server")]
struct Args {
    /// Address to listen on (IP:PORT or unix:/path); repeat for several.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: Vec<String>,
    /// Poller threads (default: one per CPU this process may use).
    #[arg(long)]
    pollers: Option<usize>,
    /// Run handlers on a pool of this many worker threads instead of inline.
    #[arg(long)]
    pool: Option<usize>,
    /// Pin each poller to its own CPU.
    #[arg(long)]
    pin: bool,
    /// Seconds busy connections get to finish at shutdown.
    #[arg(long, default_value_t = 5)]
    grace: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut builder = Server::builder().pin_cpus(args.pin);
    for addr in &args.addr {
        builder = builder.listen(addr.as_str());
    }
    if let Some(n) = args.pollers {
        builder = builder.pollers(n);
    }
    if let Some(threads) = args.pool {
        builder = builder.dispatch(Dispatch::Pool { threads });
    }
    let server = builder.serve(handler_fn(|conn| {
        let n = conn.input().len();
        let data = conn.input().next(n);
        conn.output().write_bytes(data);
    }))?;
    for addr in server.local_addrs() {
        println!("echo listening on {addr}");
    }
    netloop::signal::stop_on_signals(server.stopper(), Duration::from_secs(args.grace))?;
    let report = server.wait();
    println!("shutdown: {report:?}");
    println!("stats: {:?}", server.stats());
    Ok(())
}
