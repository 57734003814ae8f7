//! The predecessor's side: starting the successor and handing it the listeners.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::wire::{Entry, Message, MAX_MESSAGE, OWNS_PATH};
use super::{ListenerFds, HANDOVER_ENV};
use crate::sys::fd_passing::{recv_with_fds, send_with_fds, seqpacket_pair, MAX_FDS_PER_MESSAGE};
use crate::ServerHandle;

/// Starts `command` as `server`'s successor and hands it every listening socket: spawns
/// it with one end of a socket pair inherited (its number in `NETLOOP_HANDOVER_FD`; no
/// other descriptor of this process is inherited, they are all close-on-exec), sends
/// the sockets over it, and waits up to `timeout` for the successor to report that it
/// serves on them ([`Handover::ready`](super::Handover::ready)).
///
/// On `Ok` both processes accept on the same kernel sockets; call
/// [`server.shutdown(grace)`](ServerHandle::shutdown) next: this server stops accepting
/// and drains while the successor takes every new connection, and no connection is
/// refused in between. The returned [`Child`] is the successor; a process that restarts
/// itself usually lets it outlive it.
///
/// On `Err` this server goes on serving as before. A successor that started but did not
/// report ready in time (or exited, or hung up) is killed and reaped, so that no second
/// half-started server accepts on the sockets.
///
/// ```no_run
/// use std::time::Duration;
/// # fn run(server: netloop::ServerHandle) -> std::io::Result<()> {
/// let mut command = std::process::Command::new(std::env::current_exe()?);
/// command.args(std::env::args_os().skip(1));
/// match netloop::restart::spawn_successor(command, &server, Duration::from_secs(30)) {
///     Ok(successor) => {
///         eprintln!("successor {} serves; draining", successor.id());
///         server.shutdown(Duration::from_secs(10));
///     }
///     Err(e) => eprintln!("restart failed, still serving: {e}"),
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// `InvalidInput` if the server has no listener; `NotConnected` if it is shutting down;
/// the error of spawning `command`; `TimedOut`, `UnexpectedEof` or `InvalidData` if the
/// successor did not report ready properly.
pub fn spawn_successor(
    mut command: Command,
    server: &ServerHandle,
    timeout: Duration,
) -> io::Result<Child> {
    let listeners = server.dup_listeners()?;
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the server has no listener to hand over",
        ));
    }
    let (ours, theirs) = seqpacket_pair()?;
    let theirs = above_stdio(theirs)?;
    let raw = theirs.as_raw_fd();
    command.env(HANDOVER_ENV, raw.to_string());
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl,
    // which is async-signal-safe; it clears close-on-exec on this one descriptor.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    // Only the child may hold its end: with it closed here, the child's exit is an
    // end-of-file on ours.
    drop(theirs);
    let deadline = Instant::now() + timeout;
    match hand_over(ours.as_fd(), &listeners, deadline) {
        Ok(pid) => {
            tracing::info!(successor = pid, "successor serves on the listeners");
            server.set_handed_over();
            Ok(child)
        }
        Err(e) => {
            let _ = child.kill();
            let status = child
                .wait()
                .map_or_else(|_| "unknown".to_string(), |s| s.to_string());
            Err(io::Error::new(
                e.kind(),
                format!(
                    "successor (pid {}) did not take over: {e}; it was stopped ({status})",
                    child.id()
                ),
            ))
        }
    }
}

/// `fd`, moved to a number above 2 if it is one of them (a process started with stdin
/// closed gets 0 from `socketpair`), where the child's standard streams would replace it.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl duplicates a descriptor we own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Sends every listener's sockets, then waits for `Ready`; returns the pid it names.
pub(super) fn hand_over(
    channel: BorrowedFd<'_>,
    listeners: &[ListenerFds],
    deadline: Instant,
) -> io::Result<u32> {
    send_listeners(channel, listeners)?;
    let mut buf = [0u8; MAX_MESSAGE];
    let (n, _) = recv_with_fds(channel, &mut buf, deadline).map_err(|e| {
        if e.kind() == io::ErrorKind::TimedOut {
            io::Error::new(e.kind(), "it did not report ready in time")
        } else {
            e
        }
    })?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "it exited or closed the handover channel without reporting ready",
        ));
    }
    match Message::decode(&buf[..n])? {
        Message::Ready { pid } => Ok(pid),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("handover channel: expected ready, got {other:?}"),
        )),
    }
}

/// The `Listeners` messages (at most [`MAX_FDS_PER_MESSAGE`] descriptors each) and `End`.
pub(super) fn send_listeners(channel: BorrowedFd<'_>, listeners: &[ListenerFds]) -> io::Result<()> {
    let all: Vec<(Entry, std::os::fd::RawFd)> = listeners
        .iter()
        .enumerate()
        .flat_map(|(index, l)| {
            let entry = Entry {
                listener: index as u32,
                flags: if l.owns_path { OWNS_PATH } else { 0 },
            };
            l.raw_fds().map(move |fd| (entry, fd))
        })
        .collect();
    for chunk in all.chunks(MAX_FDS_PER_MESSAGE) {
        let entries = chunk.iter().map(|(e, _)| *e).collect();
        let fds: Vec<_> = chunk.iter().map(|(_, fd)| *fd).collect();
        send_with_fds(channel, &Message::Listeners(entries).encode(), &fds)?;
    }
    let end = Message::End {
        fds: all.len() as u32,
    };
    send_with_fds(channel, &end.encode(), &[])
}
