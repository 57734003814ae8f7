//! The successor's side: taking the listeners a predecessor sent, and telling it when
//! they are served.

use std::collections::BTreeMap;
use std::env;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::wire::{Message, MAX_MESSAGE, OWNS_PATH};
use super::{ListenerFds, HANDOVER_ENV};
use crate::sys;
use crate::sys::fd_passing::{recv_with_fds, send_with_fds};

/// How long a successor waits for its predecessor's listeners. They are sent right
/// after the process starts, so this only bounds a broken predecessor.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a predecessor handed over: its listeners, and the channel to report back on.
/// Obtained from [`inherited_listeners`].
///
/// Serve on the listeners ([`Builder::listen_handover`](crate::Builder::listen_handover)),
/// then call [`ready`](Handover::ready): the predecessor stops accepting and drains only
/// after that. Dropping a `Handover` without `ready` tells the predecessor the start
/// failed; it keeps serving.
#[derive(Debug)]
pub struct Handover {
    channel: OwnedFd,
    listeners: Vec<ListenerFds>,
}

/// The listeners a predecessor passed with [`spawn_successor`](super::spawn_successor):
/// `Ok(None)` if this process was not started by one (`NETLOOP_HANDOVER_FD` is not
/// set). Reads the channel the variable names until the predecessor has sent every
/// listener (10 s at most), removes the variable from the environment, and keeps the
/// channel away from this process's own children (close-on-exec).
///
/// Call it early in `main`, before other threads read the environment.
///
/// ```no_run
/// use netloop::http::{Http, Request, Response};
/// use netloop::Server;
///
/// let mut handover = netloop::restart::inherited_listeners()?;
/// let builder = match handover.as_mut() {
///     Some(h) => Server::builder().listen_handover(h),
///     None => Server::builder().listen("127.0.0.1:8080"),
/// };
/// let server = builder.serve(Http::new(|_: &Request, res: &mut Response<'_>| {
///     res.body(b"hello\n");
/// }))?;
/// if let Some(h) = handover {
///     h.ready()?; // the predecessor now drains and exits
/// }
/// server.wait();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// `InvalidData` if the variable does not name a handover channel or a message on it is
/// malformed; `UnexpectedEof` if the predecessor hung up before sending every listener;
/// `TimedOut` if it sent nothing for 10 s.
pub fn inherited_listeners() -> io::Result<Option<Handover>> {
    let Some(value) = env::var_os(HANDOVER_ENV) else {
        return Ok(None);
    };
    env::remove_var(HANDOVER_ENV);
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{HANDOVER_ENV}={value:?} does not name a handover channel (a Unix SOCK_SEQPACKET socket)"),
        )
    };
    let fd: RawFd = value
        .to_str()
        .and_then(|s| s.trim().parse().ok())
        .filter(|fd| *fd >= 0)
        .ok_or_else(invalid)?;
    // Checked before ownership is taken: a stale variable must not make this process
    // close a descriptor that is something else.
    if sys::socket_kind(fd).ok() != Some((libc::SOCK_SEQPACKET, libc::AF_UNIX)) {
        return Err(invalid());
    }
    // SAFETY: the predecessor left this descriptor open for this process to own (the
    // variable says so and it is the socket it should be); the variable is gone, so
    // nothing else takes it.
    let channel = unsafe { OwnedFd::from_raw_fd(fd) };
    sys::set_cloexec(fd, true)?;
    let listeners = receive(channel.as_fd(), Instant::now() + RECEIVE_TIMEOUT)?;
    Ok(Some(Handover { channel, listeners }))
}

/// Reads `Listeners` messages until `End`; groups the descriptors by the predecessor's
/// listener index, in its order.
pub(super) fn receive(
    channel: std::os::fd::BorrowedFd<'_>,
    deadline: Instant,
) -> io::Result<Vec<ListenerFds>> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut by_index: BTreeMap<u32, (u8, Vec<OwnedFd>)> = BTreeMap::new();
    let mut received = 0u32;
    let mut buf = [0u8; MAX_MESSAGE];
    loop {
        let (n, fds) = recv_with_fds(channel, &mut buf, deadline)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the predecessor closed the handover channel before sending every listener",
            ));
        }
        match Message::decode(&buf[..n])? {
            Message::Listeners(entries) => {
                if entries.len() != fds.len() {
                    return Err(bad(format!(
                        "handover channel: {} entries for {} descriptors",
                        entries.len(),
                        fds.len()
                    )));
                }
                for (entry, fd) in entries.into_iter().zip(fds) {
                    let (flags, group) = by_index.entry(entry.listener).or_default();
                    *flags |= entry.flags;
                    group.push(fd);
                    received += 1;
                }
            }
            Message::End { fds } if fds == received => break,
            Message::End { fds } => {
                return Err(bad(format!(
                    "handover channel: {fds} descriptors announced, {received} received"
                )))
            }
            Message::Ready { .. } => {
                return Err(bad(
                    "handover channel: a ready message from the predecessor".into(),
                ))
            }
        }
    }
    by_index
        .into_values()
        .map(|(flags, fds)| {
            Ok(ListenerFds {
                addr: sys::local_addr(std::os::fd::AsRawFd::as_raw_fd(&fds[0]))?,
                fds,
                owns_path: flags & OWNS_PATH != 0,
            })
        })
        .collect()
}

impl Handover {
    /// The listeners not taken yet, in the predecessor's builder order.
    pub fn listeners(&self) -> &[ListenerFds] {
        &self.listeners
    }

    /// Takes the listeners, to serve on them (each with
    /// [`Builder::listen_fds`](crate::Builder::listen_fds), or all with
    /// [`Builder::listen_handover`](crate::Builder::listen_handover)), or to drop the
    /// ones this version no longer serves.
    pub fn take_listeners(&mut self) -> Vec<ListenerFds> {
        std::mem::take(&mut self.listeners)
    }

    /// Tells the predecessor this process is serving on the listeners; it then stops
    /// accepting and drains. Call it once the server is started
    /// ([`Builder::serve`](crate::Builder::serve) returned).
    ///
    /// # Errors
    /// If the message cannot be sent (`EPIPE`: the predecessor gave up waiting, or
    /// exited).
    pub fn ready(self) -> io::Result<()> {
        let ready = Message::Ready {
            pid: std::process::id(),
        };
        send_with_fds(self.channel.as_fd(), &ready.encode(), &[])
    }
}
