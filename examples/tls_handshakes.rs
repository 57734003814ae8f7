//! A TLS handshake load generator: full handshakes, one after the other, on blocking
//! sockets (`scripts/tls_bench.sh`).
//!
//! ```text
//! cargo run --release --example tls_cert -- --out /tmp/tls
//! cargo run --release --example echo -- --addr 127.0.0.1:7443 --pollers 1 \
//!     --tls-cert /tmp/tls/cert.pem --tls-key /tmp/tls/key.pem &
//! cargo run --release --example tls_handshakes -- --addr 127.0.0.1:7443 \
//!     --ca /tmp/tls/ca.pem --threads 2 --duration 5
//! ```
//! Each of `--threads` threads loops: a TCP connection to `--addr`, a full handshake
//! with rustls (netloop's ring provider, trusting `--ca`, server name `--name`, ALPN
//! `http/1.1`, TLS 1.3 only, no session resumption, so every handshake is a full 1.3
//! one), one byte sent, its echo read, then `close_notify`, the write side shut down
//! and the socket read to its end (the server's own `close_notify` and close) before
//! it is dropped. It stops after
//! `--duration` seconds or once `--count` handshakes are done, whichever comes first.
//! The last line printed is
//! ```text
//! handshakes N in S s: R/s, p50 A us, p99 B us, client CPU U s
//! ```
//! with the latency of a whole connection (connect to close) and this process's user +
//! system CPU time over the run (getrusage). A failed connection ends the program with
//! an error: the server being measured must not drop any.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use netloop::tls::rustls;
use rustls::pki_types::ServerName;

/// The command line.
#[derive(Parser)]
#[command(about = "TLS handshake load generator (full handshakes, no resumption)")]
struct Args {
    /// The server (HOST:PORT); it must echo what it is sent.
    #[arg(long, default_value = "127.0.0.1:7443")]
    addr: String,
    /// The certificate authority to trust (PEM), e.g. tls_cert's ca.pem.
    #[arg(long, value_name = "PEM")]
    ca: PathBuf,
    /// The name the server's certificate must be valid for (sent as SNI).
    #[arg(long, default_value = "localhost")]
    name: String,
    /// Threads, each running handshakes one after the other.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Stop after this many handshakes in all (default: no limit).
    #[arg(long)]
    count: Option<u64>,
}

/// How long one connect, read or write may block before the run fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        return Err("--duration must be in (0, 3600] seconds".into());
    }
    let addr = args
        .addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("{} resolves to nothing", args.addr))?;
    let name = ServerName::try_from(args.name.clone())?;
    // netloop::tls::client_config, but TLS 1.3 only: what is measured is a 1.3 handshake.
    let mut config = rustls::ClientConfig::builder_with_provider(netloop::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(netloop::tls::roots_from_pem(&args.ca)?)
        .with_no_client_auth();
    // Every handshake a full one: no tickets or session IDs kept.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);

    let limit = args.count.unwrap_or(u64::MAX);
    let started = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let (config, name, started) = (config.clone(), name.clone(), started.clone());
            std::thread::Builder::new()
                .name(format!("handshakes-{i}"))
                .spawn(move || -> Result<Vec<u32>, String> {
                    let mut latencies_us = Vec::new();
                    // Take a ticket per handshake so that --count is exact.
                    while Instant::now() < until && started.fetch_add(1, Ordering::Relaxed) < limit
                    {
                        let t = Instant::now();
                        one_connection(addr, &config, &name)
                            .map_err(|e| format!("connection {}: {e}", latencies_us.len() + 1))?;
                        latencies_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Ok(latencies_us)
                })
        })
        .collect::<Result<_, _>>()?;
    let mut latencies_us = Vec::new();
    let mut failure = None;
    for w in workers {
        match w.join().map_err(|_| "a worker thread panicked")? {
            Ok(l) => latencies_us.extend(l),
            Err(e) => failure = Some(e),
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    if let Some(e) = failure {
        return Err(e.into());
    }
    if latencies_us.is_empty() {
        return Err("no handshake completed".into());
    }
    latencies_us.sort_unstable();
    let n = latencies_us.len();
    println!(
        "handshakes {n} in {seconds:.3} s: {:.1}/s, p50 {} us, p99 {} us, client CPU {cpu:.3} s",
        n as f64 / seconds,
        percentile(&latencies_us, 0.50),
        percentile(&latencies_us, 0.99),
    );
    Ok(())
}

/// One connection: connect, the full handshake, a one-byte echo, a clean close.
fn one_connection(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    name: &ServerName<'static>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut session = rustls::ClientConnection::new(config.clone(), name.clone())?;
    {
        // Writing queues the byte until the handshake is done; reading drives the
        // handshake and then the echo.
        let mut tls = rustls::Stream::new(&mut session, &mut tcp);
        tls.write_all(b"x")?;
        tls.flush()?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte)?;
        if byte != *b"x" {
            return Err(format!("the echo was {byte:?}, not \"x\"").into());
        }
    }
    session.send_close_notify();
    while session.wants_write() {
        session.write_tls(&mut tcp)?;
    }
    tcp.shutdown(Shutdown::Write)?;
    // The server's close_notify and FIN; whatever it is, it is discarded.
    let mut rest = [0u8; 512];
    while tcp.read(&mut rest)? > 0 {}
    Ok(())
}

/// The value at quantile `q` (0 to 1) of the sorted `values`.
fn percentile(values: &[u32], q: f64) -> u32 {
    let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    values[i]
}

/// This process's user + system CPU time so far (all threads), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
