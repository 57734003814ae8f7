//! systemd socket activation: the `LISTEN_PID` / `LISTEN_FDS` protocol of
//! `sd_listen_fds(3)`, without linking libsystemd.

use std::env;
use std::io;
use std::ops::Range;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::sys;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`): the ones after stdin,
/// stdout and stderr.
const FIRST_FD: RawFd = 3;

/// The sockets systemd passed to this process (socket activation): descriptors 3, 4, …
/// as `LISTEN_FDS` counts them, if `LISTEN_PID` names this process; none otherwise
/// (the variables were meant for another process, or the service was started
/// without socket activation). Like `sd_listen_fds(3)` with `unset_environment`, it
/// removes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment so
/// child processes do not take the sockets for theirs, and makes each descriptor
/// close-on-exec.
///
/// Call it once, early in `main` before other threads read the environment: it takes
/// ownership of the descriptors, which nothing else in the process may own. Pass each
/// to [`Builder::listen_fd`](crate::Builder::listen_fd), which checks that it is a
/// listening stream socket (a unit with `Accept=no`, the default, passes those).
///
/// ```no_run
/// use netloop::{handler_fn, Server};
///
/// let mut builder = Server::builder();
/// let inherited = netloop::restart::systemd_listeners()?;
/// if inherited.is_empty() {
///     builder = builder.listen("127.0.0.1:8080"); // started by hand
/// }
/// for fd in inherited {
///     builder = builder.listen_fd(fd);
/// }
/// let server = builder.serve(handler_fn(|conn| conn.close()))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// `InvalidData` if `LISTEN_PID` or `LISTEN_FDS` is set but not a number;
/// the error of `fcntl` if a descriptor it names is not open.
pub fn systemd_listeners() -> io::Result<Vec<OwnedFd>> {
    let pid = env::var("LISTEN_PID").ok();
    let count = env::var("LISTEN_FDS").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        env::remove_var(name);
    }
    let fds = listen_fds(pid.as_deref(), count.as_deref(), std::process::id())?;
    let mut owned = Vec::with_capacity(fds.len());
    for fd in fds {
        sys::set_cloexec(fd, true)?;
        // SAFETY: systemd passed this descriptor to this process (LISTEN_PID says so)
        // and the variables are gone, so no second call can take it too.
        owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(owned)
}

/// The descriptors the variables give this process (`our_pid`): empty unless both are
/// set and `LISTEN_PID` is `our_pid`.
fn listen_fds(pid: Option<&str>, count: Option<&str>, our_pid: u32) -> io::Result<Range<RawFd>> {
    let invalid = |name: &str, value: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name}={value:?} is not a number"),
        )
    };
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(FIRST_FD..FIRST_FD);
    };
    let pid: u32 = pid.trim().parse().map_err(|_| invalid("LISTEN_PID", pid))?;
    if pid != our_pid {
        return Ok(FIRST_FD..FIRST_FD);
    }
    let n: RawFd = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=RawFd::MAX - FIRST_FD).contains(n))
        .ok_or_else(|| invalid("LISTEN_FDS", count))?;
    Ok(FIRST_FD..FIRST_FD + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_start_at_3_for_this_process() {
        assert_eq!(listen_fds(Some("42"), Some("2"), 42).unwrap(), 3..5);
        assert_eq!(listen_fds(Some(" 42\n"), Some("1"), 42).unwrap(), 3..4);
        assert_eq!(listen_fds(Some("42"), Some("0"), 42).unwrap(), 3..3);
    }

    #[test]
    fn another_process_s_or_missing_variables_give_none() {
        assert!(listen_fds(Some("41"), Some("2"), 42).unwrap().is_empty());
        assert!(listen_fds(None, Some("2"), 42).unwrap().is_empty());
        assert!(listen_fds(Some("42"), None, 42).unwrap().is_empty());
        assert!(listen_fds(None, None, 42).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_that_names_the_variable() {
        let err = listen_fds(Some("systemd"), Some("1"), 42).unwrap_err();
        assert!(err.to_string().contains("LISTEN_PID"), "{err}");
        let err = listen_fds(Some("42"), Some("-1"), 42).unwrap_err();
        assert!(err.to_string().contains("LISTEN_FDS"), "{err}");
    }
}
