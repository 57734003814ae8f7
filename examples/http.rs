//! The TechEmpower plaintext shape: every request gets `Hello, World!`.
//!
//! ```text
//! cargo run --release --example http -- --addr 127.0.0.1:8080 [--pollers 1] [--pool 4]
//! curl -i http://127.0.0.1:8080/plaintext
//! curl http://127.0.0.1:8080/metrics      # the counters, Prometheus text format
//!
//! # HTTPS, with a certificate for local use:
//! cargo run --example tls_cert -- --out certs --name localhost
//! cargo run --release --example http -- --tls-cert certs/cert.pem --tls-key certs/key.pem
//! curl --cacert certs/ca.pem https://localhost:8080/plaintext
//! ```
//! Stops gracefully on Ctrl-C / SIGTERM and prints the shutdown report and counters.

mod support;

use clap::Parser;
use netloop::http::{Exporter, Http, Request, Response};

#[derive(Parser)]
#[command(about = "netloop HTTP plaintext server")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
}

fn plaintext(_req: &Request, res: &mut Response<'_>) {
    res.header("Content-Type", "text/plain")
        .body(b"Hello, World!");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let args = Args::parse();
    let exporter = Exporter::new("netloop");
    let http = Http::new(plaintext).metrics_at("/metrics", exporter.clone());
    let http_metrics = http.metrics();
    let server = args.server.builder("127.0.0.1:8080").serve(http)?;
    exporter.add_server(&server);
    support::run_until_signal(&server, "http", args.server.grace())?;
    print!("{}", http_metrics.snapshot());
    Ok(())
}
