//! Helpers shared by the integration tests: servers on loopback, blocking clients with
//! bounded waits.
#![allow(dead_code)]

#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "ws")]
pub mod ws;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use netloop::{handler_fn, Dispatch, FnHandler, Handler, Server, ServerHandle};

/// Every wait in the tests gives up after this long, so a broken server fails a test
/// instead of hanging it. It bounds; it is never asserted as a timing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Both dispatch modes, for tests that must hold in each.
pub fn modes() -> [Dispatch; 2] {
    [Dispatch::Inline, Dispatch::Pool { threads: 4 }]
}

/// An echo handler: sends back every byte, without copying.
pub fn echo() -> FnHandler<impl Fn(&mut netloop::Conn) + Send + Sync + 'static> {
    handler_fn(|conn| {
        let n = conn.input().len();
        let data = conn.input().next(n);
        conn.output().write_bytes(data);
    })
}

/// A server on 127.0.0.1 with an ephemeral port.
pub fn serve<H: Handler>(dispatch: Dispatch, pollers: usize, handler: H) -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(pollers)
        .dispatch(dispatch)
        .serve(handler)
        .expect("server starts")
}

/// The server's first listener as a TCP address.
pub fn addr(server: &ServerHandle) -> SocketAddr {
    server.local_addrs()[0].as_tcp().expect("a TCP listener")
}

/// A blocking client whose reads and writes give up after [`PATIENCE`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `data` and reads back exactly as many bytes.
pub fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).unwrap();
    let mut got = vec![0u8; data.len()];
    stream.read_exact(&mut got).unwrap();
    got
}

/// One `read`, tried again when it is interrupted. A blocking socket with a timeout
/// fails a read with `Interrupted` when the process is stopped and continued
/// (SIGSTOP/SIGCONT: a paused VM, a debugger, a job-control stop), even with no
/// signal handler installed. `read_exact` and `read_to_end` try again by themselves;
/// a bare `read` does not, so the tests read through this.
pub fn read_some(stream: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One `write`, tried again when it is interrupted (see [`read_some`]).
pub fn write_some(stream: &mut impl Write, data: &[u8]) -> std::io::Result<usize> {
    loop {
        match stream.write(data) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads until the peer closes; returns what was read.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    all
}

/// Polls `cond` until it holds or [`PATIENCE`] runs out; returns whether it held.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A deterministic payload of `len` bytes.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// File descriptors this process has open now, by number, with what each refers to
/// (leaving out the directory handle used to list them).
pub fn open_fds() -> BTreeMap<String, String> {
    let listing = format!("/proc/{}/fd", std::process::id());
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                target.to_string_lossy().into_owned(),
            ))
        })
        .filter(|(_, target)| *target != listing)
        .collect()
}

/// The descriptors in `now` that were not in `before`.
pub fn extra_fds(before: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    now.iter()
        .filter(|(fd, target)| before.get(*fd) != Some(*target))
        .map(|(fd, target)| format!("{fd} -> {target}"))
        .collect()
}

/// How many messages of `size` bytes are sure to overflow what the kernel buffers for a
/// connection whose peer never reads: twice the largest send buffer the kernel may grow
/// to plus the receiver's initial window. (Send-buffer autotuning grows with the
/// connection's congestion window, which starts from the metrics the kernel cached for
/// the address: after a benchmark on loopback, 4 MiB could all be absorbed.)
pub fn more_than_the_kernel_buffers(size: usize) -> usize {
    let field = |path: &str, i: usize| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().nth(i)?.parse::<usize>().ok())
            .unwrap_or(4 << 20)
    };
    let wmem_max = field("/proc/sys/net/ipv4/tcp_wmem", 2);
    let rmem_default = field("/proc/sys/net/ipv4/tcp_rmem", 1);
    ((2 * wmem_max + rmem_default) / size + 64).min(16 * 1024)
}
