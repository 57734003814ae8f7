//! Runs every case of an Autobahn|Testsuite fuzzing server (`wstest -m fuzzingserver`)
//! with netloop's WebSocket client engine, echoing each message, then asks the server
//! to write its report. The client side of the conformance run
//! (`scripts/autobahn_client.sh`).
//!
//! ```text
//! cargo run --release --example ws_autobahn_client -- --url ws://127.0.0.1:9001 --agent netloop
//! ```
//! One engine per case, on one client runtime: `/getCaseCount`, then `/runCase?case=N`
//! for N = 1..=count, then `/updateReports`. Each engine exits when the server ends the
//! case (no restarts). The client offers permessage-deflate with context takeover
//! allowed both ways, so every parameter the server can answer with is exercised.

use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use netloop::ws::client::{Backoff, Client, Ending, EngineError};
use netloop::ws::{Config, DeflateConfig, Message};
use netloop::Server;

#[derive(Parser)]
#[command(about = "Autobahn fuzzingserver client for netloop's WebSocket engine")]
struct Args {
    /// The fuzzing server.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// The agent name the report is filed under.
    #[arg(long, default_value = "netloop")]
    agent: String,
    /// Largest message accepted, in bytes (Autobahn's largest cases are 16 MiB).
    #[arg(long, default_value_t = 64 << 20)]
    max_message: usize,
    /// Longest a single case may take, in seconds.
    #[arg(long, default_value_t = 300)]
    case_timeout: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::parse();
    let client =
        Client::with_runtime(Server::builder().pollers(1).max_want(args.max_message + 64))?;
    let base = args.url.trim_end_matches('/').to_string();
    let config = Config::default()
        .max_message_size(args.max_message)
        .max_frame_size(args.max_message)
        .ping_interval(None);
    let deflate = DeflateConfig::default()
        .server_context_takeover(true)
        .client_context_takeover(true);

    // Runs one exchange with the server until it closes; returns the text messages
    // received if `collect`, echoing everything otherwise.
    let run = |path: String, echo: bool| -> Result<Vec<String>, EngineError> {
        let (tx, rx) = mpsc::channel::<String>();
        let engine = client
            .engine(format!("{base}{path}"))
            .config(config.clone())
            .deflate(deflate)
            .backoff(Backoff::default().max_attempts(Some(1)))
            .on_message(move |s, msg| {
                if echo {
                    let _ = s.send(msg);
                } else if let Message::Text(t) = msg {
                    let _ = tx.send(t.as_str().to_string());
                }
            })
            .on_read_error(|s, _| s.exit())
            .on_close(|s, ending| {
                s.exit();
                match ending {
                    // Answer a server's Close with its own code (the engine echoes it).
                    Ending::Server { code, .. } => (*code, String::new()),
                    _ => (1000, String::new()),
                }
            })
            .start(Duration::from_secs(30))?;
        if !engine
            .handle()
            .wait_stopped(Duration::from_secs(args.case_timeout))
        {
            eprintln!(
                "{path}: still running after {}s; stopping",
                args.case_timeout
            );
        }
        let _ = engine.stop(Duration::from_secs(5));
        Ok(rx.try_iter().collect())
    };

    let count: usize = run("/getCaseCount".into(), false)?
        .first()
        .and_then(|t| t.trim().parse().ok())
        .ok_or("the server did not send a case count")?;
    println!("{count} cases");
    for case in 1..=count {
        let path = format!("/runCase?case={case}&agent={}", args.agent);
        if let Err(e) = run(path, true) {
            eprintln!("case {case}: {e}");
        }
    }
    run(format!("/updateReports?agent={}", args.agent), false)?;
    println!("report updated for {}", args.agent);
    Ok(())
}

/// Log output to stderr, `warn` and above unless `RUST_LOG` says otherwise.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}
