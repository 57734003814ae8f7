//! Choosing the I/O backend the pollers run on.

use crate::Error;

/// The environment variable that overrides [`Builder::backend`](crate::Builder::backend):
/// `epoll`, `io_uring` or `auto`.
pub const BACKEND_ENV: &str = "NETLOOP_BACKEND";

/// The I/O backend a server's pollers run on.
///
/// Both keep the same contracts (one call in flight per connection, no spinning,
/// backpressure, graceful shutdown); they differ in how they talk to the kernel. With
/// epoll a request costs at least a `read` and a `sendmsg` plus a share of an
/// `epoll_wait`; with io_uring, small messages are received into a ring of provided
/// buffers and a whole loop turn's submissions and waiting take one `io_uring_enter`.
///
/// The environment variable [`NETLOOP_BACKEND`](BACKEND_ENV) (`epoll`, `io_uring`,
/// `auto`) overrides the builder's choice, so a deployed binary can be switched without
/// a rebuild. [`ServerHandle::backend`](crate::ServerHandle::backend) reports the one in
/// use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring if the start-up probe finds it usable (ring set-up, the operations it
    /// needs, provided buffers, multishot receive), otherwise epoll, with one `tracing`
    /// warning that says why.
    Auto,
    /// Level-triggered epoll. Works on every Linux kernel netloop supports.
    #[default]
    Epoll,
    /// io_uring (Linux 6.0 or later); starting fails with [`Error::Config`] saying why
    /// if it is not usable here. It makes an order of magnitude fewer system calls for
    /// many small messages; a bulk stream is polled and read straight into the
    /// connection's buffer, as on epoll, so it is not copied twice.
    IoUring,
}

impl Backend {
    /// Why io_uring cannot be used on this machine, or `None` if it can: the verdict of
    /// the start-up probe that [`Backend::Auto`] relies on (probed once per process).
    ///
    /// ```
    /// match netloop::Backend::io_uring_unavailable() {
    ///     None => println!("io_uring is usable"),
    ///     Some(why) => println!("falling back to epoll: {why}"),
    /// }
    /// ```
    pub fn io_uring_unavailable() -> Option<String> {
        crate::driver::probe_io_uring().err()
    }

    /// Parses a backend name as [`BACKEND_ENV`] takes it.
    fn parse(name: &str) -> Option<Backend> {
        match name.trim().to_ascii_lowercase().as_str() {
            "epoll" => Some(Backend::Epoll),
            "io_uring" | "io-uring" | "iouring" | "uring" => Some(Backend::IoUring),
            "auto" => Some(Backend::Auto),
            _ => None,
        }
    }

    /// The backend to run: the environment's override or `requested`, with `Auto`
    /// settled by the probe. `probe_fails` pretends the probe failed (for tests of the
    /// fallback).
    pub(crate) fn resolve(requested: Backend, probe_fails: bool) -> Result<Backend, Error> {
        let chosen = match std::env::var(BACKEND_ENV) {
            Ok(value) if !value.trim().is_empty() => Backend::parse(&value).ok_or_else(|| {
                Error::Config(format!(
                    "{BACKEND_ENV}={value:?}: expected epoll, io_uring or auto"
                ))
            })?,
            _ => requested,
        };
        let probe = || {
            if probe_fails {
                Err("the probe was made to fail (test hook)".to_string())
            } else {
                crate::driver::probe_io_uring()
            }
        };
        match chosen {
            Backend::Epoll => Ok(Backend::Epoll),
            Backend::IoUring => match probe() {
                Ok(()) => Ok(Backend::IoUring),
                Err(why) => Err(Error::Config(format!("io_uring is not usable here: {why}"))),
            },
            Backend::Auto => match probe() {
                Ok(()) => Ok(Backend::IoUring),
                Err(why) => {
                    tracing::warn!(reason = %why, "io_uring is not usable; using epoll");
                    Ok(Backend::Epoll)
                }
            },
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Epoll => "epoll",
            Backend::IoUring => "io_uring",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(Backend::parse("epoll"), Some(Backend::Epoll));
        assert_eq!(Backend::parse(" IO_URING "), Some(Backend::IoUring));
        assert_eq!(Backend::parse("io-uring"), Some(Backend::IoUring));
        assert_eq!(Backend::parse("auto"), Some(Backend::Auto));
        assert_eq!(Backend::parse("kqueue"), None);
    }

    #[test]
    fn names_round_trip_through_display() {
        for b in [Backend::Auto, Backend::Epoll, Backend::IoUring] {
            assert_eq!(Backend::parse(&b.to_string()), Some(b));
        }
    }
}
