//! A closed-loop echo load generator built on netloop itself.
//!
//! Each of `--conns` connections sends one `--size`-byte payload, waits until all of it
//! has come back, then sends the next. It measures the echo server's throughput in
//! completed round trips per second over a window of `--duration` seconds that starts
//! after `--warmup` seconds, and prints
//! `requests=<n> seconds=<s> rps=<r>` (or a JSON object with `--json`).
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000 --pollers 1
//! cargo run --release --example echo_load -- --addr 127.0.0.1:7000 --conns 100 --size 1024
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use netloop::{Bytes, CloseReason, Conn, Handler, Server};

#[derive(Parser)]
#[command(about = "closed-loop echo load generator")]
struct Args {
    /// Echo server address (IP:PORT).
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: String,
    /// Concurrent connections, each with one payload in flight.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seconds of load before the measured window starts.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Length of the measured window in seconds.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Print the result as a JSON object.
    #[arg(long)]
    json: bool,
}

/// Drives one connection: send a payload, wait for it to come back, repeat. Each
/// connection gets a clone; the counters are shared.
#[derive(Clone)]
struct Pinger {
    /// Shared by every connection; cloning it queues the same memory without copying.
    payload: Bytes,
    round_trips: Arc<AtomicU64>,
    /// Connections that closed before the loop was shut down: the result is suspect.
    lost: Arc<AtomicU64>,
}

impl Handler for Pinger {
    /// Bytes of the current payload still to come back.
    type State = usize;

    fn on_connect(&self, conn: &mut Conn) -> usize {
        conn.output().write_bytes(self.payload.clone());
        conn.input().want(self.payload.len());
        self.payload.len()
    }

    fn on_request(&self, remaining: &mut usize, conn: &mut Conn) {
        // The echo may arrive in pieces: consume what is here so the buffer never grows
        // past one payload, and ask not to be called again until the rest is buffered.
        let n = conn.input().len().min(*remaining);
        conn.input().skip(n);
        *remaining -= n;
        if *remaining == 0 {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            conn.output().write_bytes(self.payload.clone());
            *remaining = self.payload.len();
        }
        conn.input().want(*remaining);
    }

    fn on_close(&self, _remaining: usize, reason: CloseReason) {
        if !matches!(reason, CloseReason::Shutdown | CloseReason::ShutdownForced) {
            self.lost.fetch_add(1, Ordering::Relaxed);
            eprintln!("echo_load: connection closed early: {reason}");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.size == 0 || args.conns == 0 {
        return Err("--size and --conns must be at least 1".into());
    }
    let round_trips = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let pinger = Pinger {
        payload: Bytes::from(vec![b'x'; args.size]),
        round_trips: round_trips.clone(),
        lost: lost.clone(),
    };
    // One poller: the generator should use one core, leaving the rest to the server.
    let client = Server::builder().pollers(1).start()?;
    // The dials do not block; wait for every connection before the clock starts.
    let handles = (0..args.conns)
        .map(|_| client.dial(args.addr.as_str(), Duration::from_secs(5), pinger.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    for handle in &handles {
        handle.wait_open(Duration::from_secs(5))?;
    }

    std::thread::sleep(Duration::from_secs(args.warmup));
    let (start_count, start) = (round_trips.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(args.duration));
    let (end_count, end) = (round_trips.load(Ordering::Relaxed), Instant::now());
    client.shutdown(Duration::from_secs(1));

    // Divide by the time actually elapsed, not the requested duration: sleep can overrun.
    let requests = end_count - start_count;
    let seconds = (end - start).as_secs_f64();
    let rps = requests as f64 / seconds;
    if args.json {
        println!(r#"{{"requests":{requests},"seconds":{seconds:.3},"rps":{rps:.1}}}"#);
    } else {
        println!("requests={requests} seconds={seconds:.3} rps={rps:.1}");
    }
    let lost = lost.load(Ordering::Relaxed);
    if lost > 0 {
        return Err(format!("{lost} of {} connections closed early", args.conns).into());
    }
    Ok(())
}
