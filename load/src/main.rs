//! `netloop-load`: the command-line load generator.
//!
//! ```text
//! netloop-load --proto http --addr 127.0.0.1:8080 --conns 64 --duration 10
//! netloop-load --proto echo --addr 127.0.0.1:7000 --size 1024 --rate 50000 --json
//! netloop-load --proto http --pipeline 16 --conns 32
//! netloop-load --proto ws --mode broadcast --conns 100 --size 20 --addr 127.0.0.1:9001
//! ```
//!
//! `--mode broadcast` (WebSocket only) runs uWebSockets' broadcast shape against a
//! server that publishes every message to every connection (`examples/ws_broadcast`):
//! each round `--senders` connections (default: all) send one message and the round
//! ends when every connection has received that many; it reports deliveries/s (as
//! `rps`), rounds and the latency of rounds.
//!
//! Prints requests/s over the recorded window, latency percentiles and errors by kind
//! (or one JSON object with `--json`). Exits with status 1 if any error was counted or
//! the run could not be carried out, 2 for invalid arguments.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use netloop_load::{run, Config, Latency, Load, Phase, Progress, Protocol, Report, RequestSpec};

#[derive(Parser)]
#[command(
    name = "netloop-load",
    about = "Load generator for netloop servers: echo, framed and HTTP/1.1, closed or open loop",
    version
)]
struct Args {
    /// Protocol to speak.
    #[arg(long, value_enum, default_value_t = Proto::Http)]
    proto: Proto,
    /// Target address (IP:PORT).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Connections to open.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Closed loop: requests kept outstanding on each connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Open loop: total requests per second, spread evenly over the connections, with
    /// latency measured from each request's intended send time. Without it, closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load before recording starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds recorded.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Echo and framed: payload bytes per request.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// HTTP: request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// HTTP: Host header (default: the --addr value).
    #[arg(long)]
    host: Option<String>,
    /// Seconds allowed for opening all the connections.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// Open loop: most requests outstanding per connection before sending waits (the
    /// wait counts in the latencies).
    #[arg(long, default_value_t = 1024)]
    max_outstanding: usize,
    /// `request`: every connection sends requests and waits for their replies (closed or
    /// open loop). `broadcast` (with `--proto ws`): rounds of one message from each of
    /// `--senders` connections, each round ending when every connection has received
    /// all of them from the server.
    #[arg(long, value_enum, default_value_t = Mode::Request)]
    mode: Mode,
    /// Broadcast: connections that send each round (default: all of `--conns`, so a
    /// round is conns² deliveries).
    #[arg(long)]
    senders: Option<usize>,
    /// Broadcast: stop after this many rounds (`--duration` bounds the run either way).
    #[arg(long)]
    rounds: Option<u64>,
    /// The generator's own event loop: epoll by default, so that runs compare across a
    /// change of netloop's default (`NETLOOP_BACKEND` overrides it).
    #[arg(long, value_enum, default_value_t = LoopBackend::Epoll)]
    backend: LoopBackend,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LoopBackend {
    /// Level-triggered epoll.
    Epoll,
    /// io_uring (the run fails to start where the kernel does not allow it).
    IoUring,
    /// io_uring where the kernel allows it, epoll elsewhere.
    Auto,
}

impl From<LoopBackend> for netloop::Backend {
    fn from(b: LoopBackend) -> netloop::Backend {
        match b {
            LoopBackend::Epoll => netloop::Backend::Epoll,
            LoopBackend::IoUring => netloop::Backend::IoUring,
            LoopBackend::Auto => netloop::Backend::Auto,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Requests and their replies.
    Request,
    /// WebSocket broadcast rounds.
    Broadcast,
}

#[derive(Clone, Copy, ValueEnum)]
enum Proto {
    /// Raw bytes; the reply is the same bytes.
    Echo,
    /// 4-byte big-endian length + payload; the reply is the identical frame.
    Framed,
    /// HTTP/1.1 GET with keep-alive.
    Http,
    /// WebSocket: upgrade, then binary messages of --size bytes echoed back.
    Ws,
}

impl From<Proto> for Protocol {
    fn from(p: Proto) -> Protocol {
        match p {
            Proto::Echo => Protocol::Echo,
            Proto::Framed => Protocol::Framed,
            Proto::Http => Protocol::Http,
            Proto::Ws => Protocol::Ws,
        }
    }
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{name} {value} is not a non-negative number of seconds"))
}

fn config(args: &Args) -> Result<Config, String> {
    if args.rate.is_some() && args.pipeline != 1 {
        // Open loop sends on schedule regardless of what is outstanding; a pipeline
        // depth would mean nothing there.
        return Err("--pipeline applies to closed loop only; do not combine it with --rate".into());
    }
    let request = RequestSpec {
        protocol: args.proto.into(),
        size: args.size,
        path: args.path.clone(),
        host: args.host.clone().unwrap_or_else(|| args.addr.clone()),
    };
    let mut config = Config::new(args.addr.clone(), request, args.conns);
    config.load = match (args.mode, args.rate) {
        (Mode::Broadcast, Some(_)) => {
            return Err("--rate applies to request mode only, not broadcast".into())
        }
        (Mode::Broadcast, None) if args.pipeline != 1 => {
            return Err("--pipeline applies to request mode only, not broadcast".into())
        }
        (Mode::Broadcast, None) => Load::Broadcast {
            senders: args.senders.unwrap_or(args.conns),
            rounds: args.rounds,
        },
        (Mode::Request, _) if args.senders.is_some() || args.rounds.is_some() => {
            return Err("--senders and --rounds apply to --mode broadcast only".into())
        }
        (Mode::Request, Some(rate)) => Load::Open { rate },
        (Mode::Request, None) => Load::Closed {
            pipeline: args.pipeline,
        },
    };
    config.warmup = seconds("warmup", args.warmup)?;
    config.duration = seconds("duration", args.duration)?;
    config.connect_timeout = seconds("connect-timeout", args.connect_timeout)?;
    config.max_outstanding = args.max_outstanding;
    config.backend = args.backend.into();
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Drives an indicatif bar from the engine's progress snapshots; only built when stderr
/// is a terminal, so logs and CI output stay clean.
struct Bar {
    bar: ProgressBar,
    last: Option<(Instant, u64)>,
}

impl Bar {
    fn new(total: Duration) -> Bar {
        let bar = ProgressBar::new(total.as_millis() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {elapsed:>4} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Bar { bar, last: None }
    }

    fn update(&mut self, p: &Progress) {
        let now = Instant::now();
        let rps = match self.last {
            Some((t, n)) if now > t => (p.completed - n) as f64 / (now - t).as_secs_f64(),
            _ => 0.0,
        };
        self.last = Some((now, p.completed));
        self.bar.set_position(p.elapsed.as_millis() as u64);
        let phase = match p.phase {
            Phase::Connecting => "connecting",
            Phase::Warmup => "warm-up",
            Phase::Recording => "recording",
        };
        self.bar.set_message(format!(
            "{phase:<10} {rps:>10.0} req/s  errors {}",
            p.errors
        ));
    }
}

fn print_latency(label: &str, l: &Latency) {
    println!(
        "  {label:<14} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.1}  ({} samples)",
        l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean, l.samples
    );
}

fn print_text(r: &Report) {
    let m = &r.measurements;
    let mode = match (r.senders, r.target_rate) {
        (Some(senders), _) => format!("broadcast, {senders} senders a round"),
        (None, Some(rate)) => format!("open loop at {rate} req/s"),
        (None, None) => format!("closed loop, pipeline {}", r.pipeline),
    };
    println!(
        "{} {} - {} connections, {mode}, warm-up {:.1} s, recorded {:.1} s",
        r.protocol, r.addr, r.connections, r.warmup_s, m.seconds
    );
    match m.rounds {
        Some(rounds) => {
            println!(
                "  deliveries     {}  ({:.1} deliveries/s)",
                m.requests, m.rps
            );
            println!(
                "  rounds         {rounds}  ({:.1} rounds/s)",
                rounds as f64 / m.seconds.max(f64::MIN_POSITIVE)
            );
            print_latency("round (µs)", &m.latency_us);
        }
        None => {
            println!("  requests       {}  ({:.1} req/s)", m.requests, m.rps);
            print_latency("latency (µs)", &m.latency_us);
        }
    }
    if let Some(lag) = &m.send_lag_us {
        print_latency("send lag (µs)", lag);
    }
    let e = &m.errors;
    println!(
        "  errors         {}  (connect {}, closed {}, socket {}, bad response {}, status {}, other {})",
        e.total, e.connect, e.closed, e.socket, e.bad_response, e.status, e.other
    );
    if let Some(first) = &m.first_error {
        println!("  first error    {first}");
    }
    println!(
        "  whole run      sent {}, completed {}, unanswered {}, reconnects {}",
        m.sent_total, m.completed_total, m.unanswered, m.reconnects
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netloop-load: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bar = std::io::stderr()
        .is_terminal()
        .then(|| Bar::new(config.warmup + config.duration));
    let result = run(&config, |p| {
        if let Some(b) = bar.as_mut() {
            b.update(p);
        }
    });
    if let Some(b) = bar {
        b.bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("netloop-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("netloop-load: cannot serialise the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_text(&report);
    }
    if report.measurements.errors.total > 0 {
        eprintln!(
            "netloop-load: {} errors during the run",
            report.measurements.errors.total
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
