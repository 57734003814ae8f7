//! A task server (`PROTOCOL.md`) with three task codes:
//!
//! * 1, echo: the payload back (on a worker; with `--inline-echo`, on the connection's
//!   turn).
//! * 2, sleep: the payload is a little-endian `u32` of milliseconds; the run function
//!   sleeps that long in steps of its cancellation token, so a CANCEL ends it at once.
//! * 3, stream: the payload is a little-endian `u64` byte count; the output is that
//!   many bytes (a repeating pattern), streamed in 64 KiB chunks as the client reads.
//!
//! ```text
//! cargo run --release --example task_server -- --addr 127.0.0.1:7100 [--pollers 1]
//! ```
//! Stops on Ctrl-C / SIGTERM: running tasks get 5 s, then are cancelled.

use std::time::Duration;

use clap::Parser;
use netloop::task::{Output, RunError, Task, TaskConfig, TaskError, TaskServer};
use netloop::{Bytes, Server};

#[derive(Parser)]
#[command(about = "netloop task server: echo, sleep and stream tasks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7100")]
    addr: String,
    /// Poller threads.
    #[arg(long, default_value_t = 1)]
    pollers: usize,
    /// Run-function worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Run the echo inline, on the connection's turn (`Task::run_inline`), instead of
    /// on a worker.
    #[arg(long)]
    inline_echo: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = TaskConfig::default();
    if let Some(n) = args.workers {
        config = config.workers(n);
    }
    let tasks = TaskServer::new(config);
    let inline = args.inline_echo;
    tasks.register(1, "echo", move |req| {
        let payload = req.payload().clone();
        let run = move |_: &netloop::task::RunContext| Ok(Output::Bytes(payload));
        Ok(if inline {
            Task::run_inline(run)
        } else {
            Task::run(run)
        })
    })?;
    tasks.register(2, "sleep", |req| {
        let ms: [u8; 4] = req.payload()[..].try_into().map_err(|_| {
            TaskError("sleep wants a 4-byte little-endian millisecond count".into())
        })?;
        let ms = u32::from_le_bytes(ms);
        Ok(Task::run(move |ctx| {
            if ctx.cancel_token().sleep(Duration::from_millis(ms.into())) {
                // Cancelled: the server answers CANCELLED whatever is returned.
                return Err(RunError::Code(1));
            }
            Ok(Output::Empty)
        }))
    })?;
    tasks.register(3, "stream", |req| {
        let n: [u8; 8] = req.payload()[..]
            .try_into()
            .map_err(|_| TaskError("stream wants an 8-byte little-endian byte count".into()))?;
        let total = u64::from_le_bytes(n);
        Ok(Task::run(move |_| {
            let chunk = Bytes::from((0..64 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
            let mut left = total;
            Ok(Output::Stream(Box::new(std::iter::from_fn(move || {
                if left == 0 {
                    return None;
                }
                let n = left.min(chunk.len() as u64) as usize;
                left -= n as u64;
                Some(Ok(chunk.slice(..n)))
            }))))
        }))
    })?;
    let server = Server::builder()
        .pollers(args.pollers)
        .listen(args.addr.as_str())
        .serve(tasks.clone())?;
    println!("task_server listening on {}", server.local_addrs()[0]);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let _ = signals.forever().next();
    let report = tasks.shutdown(&server, Duration::from_secs(5));
    println!("{report:?}");
    Ok(())
}
