//! The echo server of the soak test (`scripts/soak.sh`), configured for hostile peers.
//!
//! Same handler as `examples/echo.rs` (zero-copy echo), plus the limits a server facing
//! the open internet needs: a read timeout (input left unconsumed, e.g. because the
//! output is above its high-water mark), a write timeout (a peer that does not read),
//! an idle timeout, a connection limit and 1 MiB input and output high-water marks.
//!
//! ```text
//! cargo run --release --example soak_server -- --addr 127.0.0.1:17500 [--pollers 2] [--pool 4]
//! ```
//! Prints `listening on ADDR`, then a `stats ...` line every `--stats-every` seconds (the
//! soak script reads the active connection count from it). Stops gracefully on Ctrl-C /
//! SIGTERM and prints the shutdown report and counters.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use netloop::{handler_fn, ServerHandle};

#[derive(Parser)]
#[command(about = "netloop echo server for the soak test")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
    /// Print a `stats ...` line this often, in seconds (0: never).
    #[arg(long, default_value_t = 10)]
    stats_every: u64,
}

/// Read timeout: input the handler has not consumed for this long closes the connection.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Write timeout: queued output that has not moved for this long closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle timeout: no bytes in either direction for this long closes the connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 5000;
const HIGH_WATER: usize = 1 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let args = Args::parse();
    let server = args
        .server
        .builder("127.0.0.1:17500")
        .read_timeout(READ_TIMEOUT)
        .write_timeout(WRITE_TIMEOUT)
        .idle_timeout(IDLE_TIMEOUT)
        .max_connections(MAX_CONNECTIONS)
        .input_high_water(HIGH_WATER)
        .output_high_water(HIGH_WATER)
        .serve(handler_fn(|conn| {
            let n = conn.input().len();
            let data = conn.input().next(n);
            conn.output().write_bytes(data);
        }))?;
    // The periodic stats line runs beside the shared run-until-signal loop.
    let stopped = AtomicBool::new(false);
    std::thread::scope(|s| {
        if args.stats_every > 0 {
            let every = Duration::from_secs(args.stats_every);
            let (server, stopped) = (&server, &stopped);
            s.spawn(move || print_stats_every(server, stopped, every));
        }
        let result = support::run_until_signal(&server, "soak", args.server.grace());
        stopped.store(true, Ordering::Relaxed);
        result
    })
}

/// Prints one `stats ...` line every `every` until `stopped` is set.
fn print_stats_every(server: &ServerHandle, stopped: &AtomicBool, every: Duration) {
    let mut next = Instant::now() + every;
    while !stopped.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next += every;
        let s = server.stats();
        let c = &s.closed;
        println!(
            "stats active={} accepted={} over_limit={} buffered_in={} buffered_out={} \
             panics={} closed_peer={} closed_error={} closed_read_timeout={} \
             closed_write_timeout={} closed_idle_timeout={}",
            s.active,
            s.accepted,
            s.over_limit,
            s.buffered_input,
            s.buffered_output,
            s.panics,
            c.peer_closed,
            c.error,
            c.read_timeout,
            c.write_timeout,
            c.idle_timeout,
        );
    }
}
