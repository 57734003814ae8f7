//! The TechEmpower plaintext shape: every request gets `Hello, World!`.
//!
//! ```text
//! cargo run --release --example http -- --addr 127.0.0.1:8080 [--pollers 1] [--pool 4]
//! curl -i http://127.0.0.1:8080/plaintext
//! ```
//! Stops gracefully on Ctrl-C / SIGTERM and prints the shutdown report and counters.

use std::time::Duration;

use clap::Parser;
use netloop::http::{Http, Request, Response};
use netloop::{Dispatch, Server};

#[derive(Parser)]
#[command(about = "netloop HTTP plaintext server")]
struct Args {
    /// Address to listen on (IP:PORT or unix:/path); repeat for several.
    #[arg(long, default_value = "127.0.0.1:8080")]
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
}

fn plaintext(_req: &Request, res: &mut Response<'_>) {
    res.header("Content-Type", "text/plain")
        .body(b"Hello, World!");
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
    let server = builder.serve(Http::new(plaintext))?;
    for addr in server.local_addrs() {
        println!("http listening on {addr}");
    }
    netloop::signal::stop_on_signals(server.stopper(), Duration::from_secs(5))?;
    let report = server.wait();
    println!("shutdown: {report:?}");
    println!("stats: {:?}", server.stats());
    Ok(())
}
