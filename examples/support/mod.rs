//! Command-line plumbing the example servers share: listener, poller and dispatch flags;
//! log output; and running until Ctrl-C / SIGTERM, then printing the shutdown report.
//! Each example keeps only what makes it different: its handler and its settings.

use std::time::Duration;

use netloop::{Builder, Dispatch, Server, ServerHandle};

/// The flags every example server takes (flatten into the example's own `Args`).
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Address to listen on (IP:PORT or unix:/path); repeat for several. Default: the
    /// example's own address.
    #[arg(long)]
    pub addr: Vec<String>,
    /// Poller threads (default: one per CPU this process may use).
    #[arg(long)]
    pub pollers: Option<usize>,
    /// Run handlers on a pool of this many worker threads instead of inline.
    #[arg(long)]
    pub pool: Option<usize>,
    /// Pin each poller to its own CPU.
    #[arg(long)]
    pub pin: bool,
    /// Seconds busy connections get to finish at shutdown.
    #[arg(long, default_value_t = 5)]
    pub grace: u64,
    /// io_uring, inline dispatch: send replies of at least this many bytes zero-copy.
    #[arg(long, value_name = "BYTES")]
    pub zero_copy_send: Option<usize>,
    /// Serve TLS with this certificate chain (PEM; with --tls-key). Make one for local
    /// use with `cargo run --example tls_cert`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl ServerArgs {
    /// A builder with these flags applied; `default_addr` if no `--addr` was given.
    pub fn builder(&self, default_addr: &str) -> Builder {
        let mut builder = Server::builder();
        if self.addr.is_empty() {
            builder = builder.listen(default_addr);
        }
        for addr in &self.addr {
            builder = builder.listen(addr.as_str());
        }
        self.settings(builder)
    }

    /// `builder` with every flag but the addresses applied (for listeners that come
    /// from elsewhere: a predecessor, systemd).
    pub fn settings(&self, mut builder: Builder) -> Builder {
        builder = builder.pin_cpus(self.pin);
        if let Some(n) = self.pollers {
            builder = builder.pollers(n);
        }
        if let Some(threads) = self.pool {
            builder = builder.dispatch(Dispatch::Pool { threads });
        }
        if let Some(min) = self.zero_copy_send {
            builder = builder.zero_copy_send(min);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            builder = with_tls(builder, cert, key);
        }
        builder
    }

    /// The shutdown grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace)
    }
}

/// `builder` serving TLS with the certificate and key in these PEM files (ALPN
/// `http/1.1`); a file that cannot be used ends the program with the reason.
#[cfg(feature = "tls")]
fn with_tls(builder: Builder, cert: &std::path::Path, key: &std::path::Path) -> Builder {
    match netloop::tls::server_config(cert, key) {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder.tls(config)
        }
        Err(e) => {
            eprintln!("--tls-cert/--tls-key: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(not(feature = "tls"))]
fn with_tls(_: Builder, _: &std::path::Path, _: &std::path::Path) -> Builder {
    eprintln!("--tls-cert/--tls-key: this build has no TLS (enable the `tls` feature)");
    std::process::exit(2);
}

/// Log output to stderr, `warn` and above unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// Prints where `server` listens, shuts it down gracefully on the first SIGINT/SIGTERM,
/// and prints the report and final counters.
pub fn run_until_signal(
    server: &ServerHandle,
    name: &str,
    grace: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    for addr in server.local_addrs() {
        println!("{name} listening on {addr}");
    }
    netloop::signal::stop_on_signals(server.stopper(), grace)?;
    let report = server.wait();
    println!(
        "shutdown: {} idle closed, {} drained, {} cut off at the deadline",
        report.idle_closed, report.drained, report.forced
    );
    println!("{}", server.stats());
    Ok(())
}
