//! netloop's WebSocket client engine against a WebSocket echo server
//! (`examples/ws_echo`).
//!
//! ```text
//! cargo run --release --example ws_echo -- --addr 127.0.0.1:9001 &
//! cargo run --release --example ws_client -- --url ws://127.0.0.1:9001 --count 5
//! ```
//! Sends `--count` text messages from the main thread through an `EngineHandle` and
//! prints the echoes; the engine pings the server, and if the server goes away it
//! restarts with backoff, buffering what is sent meanwhile.
//!
//! `--echo` is the benchmark mode (`scripts/ws_client_bench.sh`), the same command line
//! as bench/peers' tokio-tungstenite client:
//! ```text
//! ws_client --echo --url ws://127.0.0.1:9001 --conns 100 --size 1024 --duration 10
//! ```
//! For `wss://` URLs, `--tls-ca PEM` trusts the certificate authorities in that file
//! (e.g. `examples/tls_cert`'s ca.pem) instead of the system's (`scripts/tls_bench.sh`).
//!
//! `--storm N` is the reconnect storm: an `examples/ws_echo` child process (one
//! poller), N engines on the client runtime, the server killed and started again at
//! once; it prints how long until every engine was open again, and how many connection
//! attempts failed meanwhile (the engines' default backoff: 200 ms to 20 s, jittered):
//! ```text
//! ws_client --storm 10000
//! ```
//!
//! `--conns` engines on one poller, each in a closed loop (send a binary message of
//! `--size` bytes, wait for its echo, check its length, again) for `--duration`
//! seconds; then one line of JSON: `{"client":"netloop","conns":N,"size":S,
//! "messages":M,"seconds":X,"cpu_seconds":C}`, `cpu_seconds` being this process's user
//! and system CPU time over the measured `seconds`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use netloop::ws::client::{Client, Engine, EngineBuilder};
use netloop::ws::Message;
use netloop::{Bytes, Server};

#[derive(Parser)]
#[command(about = "netloop WebSocket client engine")]
struct Args {
    /// The server.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// Messages to send in the demo mode.
    #[arg(long, default_value_t = 5)]
    count: usize,
    /// The benchmark mode: closed-loop echo over many engines.
    #[arg(long)]
    echo: bool,
    /// Engines (connections) in the benchmark mode.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Message size in bytes in the benchmark mode.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seconds the benchmark measures.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Poller threads of the client runtime.
    #[arg(long, default_value_t = 1)]
    pollers: usize,
    /// The reconnect storm with this many engines.
    #[arg(long)]
    storm: Option<usize>,
    /// For wss:// URLs: trust the certificate authorities in this PEM file instead of
    /// the system's (e.g. tls_cert's ca.pem).
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<std::path::PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::parse();
    let client = Client::with_runtime(Server::builder().pollers(args.pollers))?;
    if let Some(n) = args.storm {
        storm(&client, n)
    } else if args.echo {
        bench(&client, &args)
    } else {
        demo(&client, &args)
    }
}

fn demo(client: &Client, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let (tx, rx) = mpsc::channel();
    let engine = with_tls_ca(client.engine(&args.url), args)?
        .on_open(|s, restart| {
            println!(
                "session {} open{}",
                s.id(),
                if restart { " (restart)" } else { "" }
            )
        })
        .on_message(move |_s, msg| {
            let _ = tx.send(msg);
        })
        .on_read_error(|_s, e| eprintln!("read error: {e}; restarting"))
        .on_restart_error(|_s, e, attempt| eprintln!("attempt {attempt} failed: {e}"))
        .start(Duration::from_secs(5))?;
    let handle = engine.handle();
    for n in 0..args.count {
        handle.send_text(&format!("message {n}"))?;
    }
    for _ in 0..args.count {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Message::Text(t)) => println!("echo: {}", t.as_str()),
            Ok(Message::Binary(b)) => println!("echo: {} bytes", b.len()),
            Err(_) => return Err("no echo within 5 s".into()),
        }
    }
    engine.stop(Duration::from_secs(5))?;
    println!("{:?}", engine.stats());
    Ok(())
}

fn bench(client: &Client, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let payload = Bytes::from(vec![0x5a; args.size]);
    let received = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    // Engines keep echoing until this instant (set once all are open).
    let until = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut engines: Vec<Engine> = Vec::with_capacity(args.conns);
    let size = args.size;
    for _ in 0..args.conns {
        let (received, bad, until, payload) = (
            received.clone(),
            bad.clone(),
            until.clone(),
            payload.clone(),
        );
        let first = payload.clone();
        let engine = with_tls_ca(client.engine(&args.url), args)?
            .offline(netloop::ws::client::Offline::Fail)
            .on_open(move |s, _| {
                let _ = s.send_binary(first.clone());
            })
            .on_message(move |s, msg| {
                if msg.len() != size {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                received.fetch_add(1, Ordering::Relaxed);
                if until.get().is_none_or(|t| Instant::now() < *t) {
                    let _ = s.send_binary(payload.clone());
                }
            })
            .start(Duration::from_secs(10))?;
        engines.push(engine);
    }
    let start = Instant::now();
    let _ = until.set(start + Duration::from_secs(args.duration));
    let (m0, c0) = (received.load(Ordering::Relaxed), cpu_seconds());
    std::thread::sleep(Duration::from_secs(args.duration));
    let (m1, c1, seconds) = (
        received.load(Ordering::Relaxed),
        cpu_seconds(),
        start.elapsed().as_secs_f64(),
    );
    for e in &engines {
        let _ = e.stop(Duration::from_secs(2));
    }
    if bad.load(Ordering::Relaxed) > 0 {
        return Err(format!(
            "{} echoes had the wrong length",
            bad.load(Ordering::Relaxed)
        )
        .into());
    }
    println!(
        "{{\"client\":\"netloop\",\"conns\":{},\"size\":{},\"messages\":{},\"seconds\":{:.3},\"cpu_seconds\":{:.4}}}",
        args.conns,
        args.size,
        m1 - m0,
        seconds,
        c1 - c0
    );
    Ok(())
}

/// Starts `examples/ws_echo` (built beside this example) on `addr`, one poller; returns
/// once it listens.
fn spawn_echo(addr: &str) -> Result<std::process::Child, Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?.with_file_name("ws_echo");
    let mut child = std::process::Command::new(&exe)
        .args(["--addr", addr, "--pollers", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build --release --example ws_echo)",
                exe.display()
            )
        })?;
    let out = child.stdout.take().expect("piped");
    for line in std::io::BufReader::new(out).lines() {
        if line?.starts_with("ws_echo listening on") {
            return Ok(child);
        }
    }
    Err("ws_echo exited before listening".into())
}

/// The reconnect storm: `n` engines, their server killed and started again.
fn storm(client: &Client, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    // A free port, for both servers.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let mut server = spawn_echo(&addr)?;
    let url = format!("ws://{addr}/");
    let t = Instant::now();
    let engines = (0..n)
        .map(|_| {
            client
                .engine(&url)
                .on_message(|_, _| {})
                .start(Duration::from_secs(30))
        })
        .collect::<Result<Vec<Engine>, _>>()?;
    println!("{n} engines open in {:.3} s", t.elapsed().as_secs_f64());
    // A crash, not a graceful stop: no Close frames, the kernel resets or closes.
    server.kill()?;
    server.wait()?;
    let down = Instant::now();
    let mut server = spawn_echo(&addr)?;
    let limit = Duration::from_secs(120);
    let mut last_report = Instant::now();
    let result = loop {
        let open = engines
            .iter()
            .filter(|e| {
                e.stats().sessions >= 2 && e.state() == netloop::ws::client::EngineState::Open
            })
            .count();
        if open == n {
            break Ok(down.elapsed());
        }
        if down.elapsed() > limit {
            break Err(format!("only {open} of {n} reopened within {limit:?}"));
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            eprintln!("{:.1} s: {open} of {n} open", down.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let restarts: u64 = engines.iter().map(|e| e.stats().restarts).sum();
    for e in &engines {
        let _ = e.stop(Duration::from_secs(2));
    }
    let _ = server.kill();
    let _ = server.wait();
    let took = result?;
    println!(
        "{{\"storm\":{n},\"reopen_seconds\":{:.3},\"restart_attempts\":{restarts},\"failed_attempts\":{}}}",
        took.as_secs_f64(),
        restarts.saturating_sub(n as u64)
    );
    Ok(())
}

/// `builder` trusting the certificate authorities of `--tls-ca` for wss://, if given.
#[cfg(feature = "tls")]
fn with_tls_ca(
    builder: EngineBuilder,
    args: &Args,
) -> Result<EngineBuilder, Box<dyn std::error::Error>> {
    Ok(match &args.tls_ca {
        Some(path) => builder.tls(netloop::tls::client_config(netloop::tls::roots_from_pem(
            path,
        )?)),
        None => builder,
    })
}

/// Without the `tls` feature there is no wss://, so no `--tls-ca` either.
#[cfg(not(feature = "tls"))]
fn with_tls_ca(
    builder: EngineBuilder,
    args: &Args,
) -> Result<EngineBuilder, Box<dyn std::error::Error>> {
    match &args.tls_ca {
        Some(_) => Err("--tls-ca: this build has no TLS (enable the `tls` feature)".into()),
        None => Ok(builder),
    }
}

/// This process's user + system CPU time so far.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Log output to stderr, `warn` and above unless `RUST_LOG` says otherwise.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}
