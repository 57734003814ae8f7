//! An HTTP server that restarts itself with zero downtime on `SIGHUP`: it starts the
//! same executable with the same arguments as its successor, hands it the listening
//! sockets, and drains once the successor serves. `SIGINT`/`SIGTERM` stop it
//! gracefully. Every response names the process that served it.
//!
//! ```text
//! cargo run --release --example restart -- --addr 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/          # X-Pid: the serving process
//! kill -HUP <pid>                          # the pid it printed: restart
//! ```
//! Under systemd socket activation (`ListenStream=8080` in a `.socket` unit) it serves
//! on the sockets systemd passes instead of binding its own.

// It stops on signals of its own (SIGHUP restarts), not with run_until_signal.
#[allow(dead_code)]
mod support;

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use netloop::http::{Http, Request, Response};
use netloop::{restart, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

#[derive(Parser)]
#[command(about = "netloop HTTP server with zero-downtime restart on SIGHUP")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
    /// Seconds the successor gets to start serving before the restart is abandoned.
    #[arg(long, default_value_t = 30)]
    ready_timeout: u64,
}

/// This executable, for the successor. After a deploy replaced the file, Linux names
/// the running one "<path> (deleted)"; the path itself is the new version.
fn executable() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => path.into(),
        None => exe,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let args = Args::parse();
    // Both read (and clear) the environment: first, before any thread starts.
    let mut handover = restart::inherited_listeners()?;
    let systemd = match handover {
        Some(_) => Vec::new(),
        None => restart::systemd_listeners()?,
    };
    let builder = match handover.as_mut() {
        Some(h) => args.server.settings(Server::builder().listen_handover(h)),
        None if !systemd.is_empty() => systemd
            .into_iter()
            .fold(args.server.settings(Server::builder()), |b, fd| {
                b.listen_fd(fd)
            }),
        None => args.server.builder("127.0.0.1:8080"),
    };
    let pid = std::process::id();
    let pid_text = pid.to_string();
    let server = builder.serve(Http::new(move |_: &Request, res: &mut Response<'_>| {
        res.header("Content-Type", "text/plain")
            .header("X-Pid", &pid_text)
            .body(b"Hello, World!\n");
    }))?;
    // Signal handlers before ready: a SIGHUP right after the handover must restart
    // this process, not kill it.
    let mut signals = Signals::new([SIGHUP, SIGINT, SIGTERM])?;
    if let Some(h) = handover {
        h.ready()?;
    }
    for addr in server.local_addrs() {
        println!("restart: pid {pid} listening on {addr}");
    }
    println!("restart: `kill -HUP {pid}` restarts with zero downtime, Ctrl-C stops");
    let grace = args.server.grace();
    for signal in signals.forever() {
        if signal == SIGHUP {
            let mut command = Command::new(executable()?);
            command.args(std::env::args_os().skip(1));
            let timeout = Duration::from_secs(args.ready_timeout);
            match restart::spawn_successor(command, &server, timeout) {
                Ok(successor) => {
                    println!(
                        "restart: pid {} serves now; pid {pid} drains",
                        successor.id()
                    );
                    break;
                }
                Err(e) => eprintln!("restart: failed, pid {pid} keeps serving: {e}"),
            }
        } else {
            break;
        }
    }
    let report = server.shutdown(grace);
    println!("restart: pid {pid} stopped: {report:?}");
    Ok(())
}
