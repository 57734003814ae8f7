//! Shutting down on `SIGINT` / `SIGTERM`, for examples and simple services.

use std::io;
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::Stopper;

/// Starts a thread that, on the first `SIGINT` or `SIGTERM`, asks `stopper`'s server to
/// shut down with `grace` as the deadline; a second signal exits the process at once
/// (status 130). Pair it with [`ServerHandle::wait`](crate::ServerHandle::wait):
///
/// ```no_run
/// use std::time::Duration;
/// let server = netloop::Server::builder()
///     .listen("127.0.0.1:7000")
///     .serve(netloop::handler_fn(|conn| conn.close()))
///     .unwrap();
/// netloop::signal::stop_on_signals(server.stopper(), Duration::from_secs(5)).unwrap();
/// let report = server.wait();
/// eprintln!("stopped: {report:?}");
/// ```
///
/// # Errors
/// If the signal handlers cannot be installed or the thread cannot be started.
pub fn stop_on_signals(stopper: Stopper, grace: Duration) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new()
        .name("netloop-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen == 1 {
                    tracing::info!(signal, "shutting down");
                    stopper.stop(grace);
                } else {
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}
