//! A client of `examples/task_server`: an echo, a sleep cancelled half way, a streamed
//! output read chunk by chunk.
//!
//! ```text
//! cargo run --release --example task_client -- --addr 127.0.0.1:7100
//! ```
//!
//! `--bench` is the benchmark mode (`scripts/task_bench.sh`), the kitex-benchmark shape:
//! ```text
//! task_client --bench --addr 127.0.0.1:7100 --conns 1 --concurrency 100 --size 1024 --duration 5
//! ```
//! `--concurrency` echo tasks in flight in total, spread over `--conns` connections,
//! each slot in a closed loop (submit, wait for the reply, check its length, again; one
//! thread keeps them all going) for
//! `--duration` seconds once every connection is up (a `measuring` line on stderr says
//! when that is); then one line of JSON:
//! `{"client":"netloop","conns":C,"concurrency":N,"size":S,"tasks":T,"seconds":X,
//! "p99_us":P,"cpu_seconds":Y}`, `cpu_seconds` being this process's user and system
//! CPU time over the measured `seconds`.

use std::time::{Duration, Instant};

use clap::Parser;
use netloop::task::client::{ClientError, ClientOptions, TaskClient};
use netloop::{Bytes, Server};

#[derive(Parser)]
#[command(about = "netloop task client")]
struct Args {
    /// The task server.
    #[arg(long, default_value = "127.0.0.1:7100")]
    addr: String,
    /// The benchmark mode.
    #[arg(long)]
    bench: bool,
    /// Connections (benchmark).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Tasks in flight in total (benchmark).
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Payload bytes (benchmark).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seconds measured (benchmark).
    #[arg(long, default_value_t = 5)]
    duration: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = Server::builder().pollers(1).start()?;
    if args.bench {
        return bench(&runtime, &args);
    }
    let client = TaskClient::connect(
        &runtime.dialer(),
        args.addr.as_str(),
        ClientOptions::default().name("demo"),
    )?;
    let t = Duration::from_secs(10);
    let echo = client.call(1, Bytes::from_static(b"hello, tasks"), t)?;
    println!("echo: {}", String::from_utf8_lossy(&echo));
    let sleep = client.submit(2, Bytes::copy_from_slice(&10_000u32.to_le_bytes()))?;
    std::thread::sleep(Duration::from_millis(100));
    sleep.cancel();
    match sleep.wait(t) {
        Err(ClientError::Cancelled) => println!("sleep: cancelled"),
        other => println!("sleep: {other:?}"),
    }
    let stream = client.submit(3, Bytes::copy_from_slice(&(1u64 << 20).to_le_bytes()))?;
    let (mut chunks, mut bytes) = (0, 0);
    while let Some(c) = stream.next_chunk(t)? {
        chunks += 1;
        bytes += c.len();
    }
    println!("stream: {bytes} bytes in {chunks} chunks");
    match client.call(99, Bytes::new(), t) {
        Err(ClientError::Server(code)) => println!("unknown task code: error {code}"),
        other => println!("unknown task code: {other:?}"),
    }
    println!("ping: {:?}", client.ping(t)?);
    client.goodbye();
    Ok(())
}

fn bench(runtime: &netloop::ServerHandle, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let clients = (0..args.conns.max(1))
        .map(|i| {
            TaskClient::connect(
                &runtime.dialer(),
                args.addr.as_str(),
                ClientOptions::default().name(&format!("bench-{i}")),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let payload = Bytes::from(vec![0x42u8; args.size]);
    // One thread keeps every task in flight: the oldest reply is waited for, then its
    // slot's next task submitted on the same connection (replies come back in about the
    // order sent, so waiting on the oldest does not hold the others up). A thread per
    // task would measure the client's context switches more than the server.
    let n = args.concurrency.max(1);
    let mut flight = std::collections::VecDeque::with_capacity(n);
    for i in 0..n {
        let c = i % clients.len();
        flight.push_back((c, Instant::now(), clients[c].submit(1, payload.clone())?));
    }
    let warmup = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warmup {
        let (c, _, p) = flight.pop_front().expect("n in flight");
        check(p.wait(Duration::from_secs(10))?, args.size)?;
        flight.push_back((c, Instant::now(), clients[c].submit(1, payload.clone())?));
    }
    // scripts/task_bench.sh attaches perf to the server when it sees this.
    eprintln!("measuring: {} connections open", clients.len());
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let end = t0 + Duration::from_secs(args.duration);
    let mut latencies = Vec::with_capacity(1 << 20);
    let mut tasks = 0u64;
    loop {
        let (c, sent, p) = flight.pop_front().expect("n in flight");
        check(p.wait(Duration::from_secs(10))?, args.size)?;
        let now = Instant::now();
        if now >= end {
            break;
        }
        if sent >= t0 {
            latencies.push(now.duration_since(sent).as_micros() as u64);
            tasks += 1;
        }
        flight.push_back((c, Instant::now(), clients[c].submit(1, payload.clone())?));
    }
    let (c1, seconds) = (cpu_seconds(), t0.elapsed().as_secs_f64());
    for (_, _, p) in flight {
        check(p.wait(Duration::from_secs(10))?, args.size)?;
    }
    latencies.sort_unstable();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0);
    println!(
        "{{\"client\":\"netloop\",\"conns\":{},\"concurrency\":{},\"size\":{},\"tasks\":{tasks},\"seconds\":{seconds:.3},\"p99_us\":{p99},\"cpu_seconds\":{:.4}}}",
        clients.len(),
        args.concurrency,
        args.size,
        c1 - c0
    );
    for c in &clients {
        c.goodbye();
    }
    Ok(())
}

/// An echo's reply has the length sent.
fn check(reply: Bytes, size: usize) -> Result<(), ClientError> {
    if reply.len() == size {
        Ok(())
    } else {
        Err(ClientError::Protocol(format!(
            "{} bytes back, {size} sent",
            reply.len()
        )))
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
