//! Host name resolution off the poller threads.
//!
//! `getaddrinfo` blocks, sometimes for seconds, so it never runs on a poller or in the
//! caller of [`Dialer::dial`](crate::Dialer::dial): one resolver thread per runtime
//! (started by the first dial that needs it) resolves names in the order they come and
//! hands each dial, with its addresses or the resolution error, to its poller. The
//! thread ends once every `Dialer` and the runtime's handle are gone and its queue is
//! empty.

use std::net::ToSocketAddrs;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::poller::{Command, Outbound, Remote};
use crate::Addr;

/// One name to resolve and the dial waiting for it.
struct Request {
    host: String,
    port: u16,
    remote: Arc<Remote>,
    outbound: Outbound,
}

/// The queue of the resolver thread.
pub(super) struct Resolver {
    requests: Mutex<Option<Sender<Request>>>,
}

impl Resolver {
    /// Starts the resolver thread. If the thread cannot be started, names are resolved
    /// on the dialing thread instead (and a warning says so).
    pub(super) fn start() -> Resolver {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = thread::Builder::new()
            .name("netloop-resolver".into())
            .spawn(move || {
                for r in rx {
                    resolve_and_dial(r);
                }
            });
        let requests = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the resolver thread; resolving on the dialing thread");
                None
            }
        };
        Resolver {
            requests: Mutex::new(requests),
        }
    }

    /// Resolves `host:port` and then queues `outbound` on `remote`'s poller.
    pub(super) fn resolve(&self, host: String, port: u16, remote: Arc<Remote>, outbound: Outbound) {
        let request = Request {
            host,
            port,
            remote,
            outbound,
        };
        let queue = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        match queue.as_ref() {
            Some(tx) => {
                if let Err(mpsc::SendError(request)) = tx.send(request) {
                    resolve_and_dial(request);
                }
            }
            None => resolve_and_dial(request),
        }
    }
}

fn resolve_and_dial(r: Request) {
    let addrs = (r.host.as_str(), r.port)
        .to_socket_addrs()
        .map(|found| found.map(Addr::Tcp).collect::<Vec<_>>());
    if let Err(e) = &addrs {
        tracing::debug!(host = %r.host, error = %e, "cannot resolve");
    }
    r.remote.push(Command::Dial(Outbound {
        addrs,
        ..r.outbound
    }));
}
