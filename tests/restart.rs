//! Zero-downtime restart: under steady HTTP load, a server hands its listeners (a TCP
//! one with one `SO_REUSEPORT` socket per poller, and a Unix one) to a second process,
//! then drains; no request fails and no connection is refused, and both processes
//! served requests.
//!
//! The second process is this test binary again, started with
//! `NETLOOP_RESTART_TEST_ROLE=successor` and `--exact` this test, which then plays the
//! successor instead. Both processes inherit `NETLOOP_BACKEND`, so the run covers
//! whichever backend the suite runs on (`scripts/test.sh` runs it on each).
//!
//! The client rule, as HTTP clients behave: when a **reused keep-alive connection** is
//! closed (end-of-file or reset) before any byte of a response arrived, which is what
//! the old process's drain does to idle connections, the client retries the request
//! once on a new connection (RFC 9112 §9.3.1 allows it for idempotent requests;
//! browsers, curl, Go and hyper do it). Anything else is a failure: a refused connect,
//! a new connection closed before its response, a reset or end-of-file in the middle of
//! a response, a wrong status, a short or wrong body, a second failure on the retry.
//! The retries are counted and printed.

mod common;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, PATIENCE};
use netloop::http::{Http, Request, Response};
use netloop::{Addr, Balance, Builder, Server, ServerHandle};

const ROLE_ENV: &str = "NETLOOP_RESTART_TEST_ROLE";
const THIS_TEST: &str = "restart_under_load_fails_and_refuses_nothing";
const BODY: &[u8] = b"Hello from a restartable server\n";
/// Keep-alive clients, each on one connection at a time.
const KEEP_ALIVE_CLIENTS: usize = 4;
/// Clients opening a new TCP connection per request (and one more on the Unix socket).
const NEW_CONN_CLIENTS: usize = 2;
/// Requests per client at most, so a run is bounded by count as well as by time; the
/// new-connection clients pause 1 ms between requests to keep TIME_WAIT sockets few.
const MAX_REQUESTS: u64 = 200_000;
const MAX_NEW_CONNS: u64 = 5_000;
/// Requests each process must have served around the restart before the test moves on.
const WANTED: u64 = 300;

/// The server both processes run: HTTP, every response naming the process.
fn serve(builder: Builder) -> ServerHandle {
    let pid = std::process::id().to_string();
    builder
        .pollers(2)
        .balance(Balance::ReusePort)
        .serve(Http::new(move |_: &Request, res: &mut Response<'_>| {
            res.header("X-Pid", &pid).body(BODY);
        }))
        .expect("server starts")
}

/// The second process: serves on what it was handed until its stdin closes.
fn successor() {
    let mut handover = netloop::restart::inherited_listeners()
        .expect("handover channel readable")
        .expect("started as a successor");
    let addrs: Vec<Addr> = handover
        .listeners()
        .iter()
        .map(|l| l.addr().clone())
        .collect();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_eq!(
        handover.listeners()[0].fds().len(),
        2,
        "one socket per old poller"
    );
    let server = serve(Server::builder().listen_handover(&mut handover));
    assert_eq!(
        server.local_addrs(),
        &addrs[..],
        "the same listeners, in order"
    );
    handover.ready().expect("predecessor waits for ready");
    let _ = io::stdin().read_to_end(&mut Vec::new());
    let report = server.shutdown(Duration::from_secs(5));
    eprintln!("successor {}: {report:?}", std::process::id());
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    by_pid: Mutex<std::collections::BTreeMap<u32, u64>>,
    refused: AtomicU64,
    retries: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn served(&self, pid: u32) {
        *self.by_pid.lock().unwrap().entry(pid).or_default() += 1;
    }
    fn count(&self, pid: u32) -> u64 {
        self.by_pid.lock().unwrap().get(&pid).copied().unwrap_or(0)
    }
    fn fail(&self, why: String) {
        self.failures.lock().unwrap().push(why);
    }
}

/// How one request on one connection ended.
enum Outcome {
    /// A full 200 response with the right body, from this pid.
    Served(u32),
    /// The connection ended (end-of-file, reset, broken pipe) before any response byte.
    ClosedBeforeResponse(String),
    Failed(String),
}

fn closed_kind(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// One `GET /` and its response.
fn request(stream: &mut (impl Read + Write), buf: &mut Vec<u8>) -> Outcome {
    if let Err(e) = stream.write_all(b"GET / HTTP/1.1\r\nHost: restart\r\n\r\n") {
        return if closed_kind(&e) {
            Outcome::ClosedBeforeResponse(format!("write: {e}"))
        } else {
            Outcome::Failed(format!("write: {e}"))
        };
    }
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match common::read_some(stream, &mut chunk) {
            Ok(0) if buf.is_empty() => return Outcome::ClosedBeforeResponse("end of file".into()),
            Ok(0) => return Outcome::Failed(format!("end of file after {} bytes", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() && closed_kind(&e) => {
                return Outcome::ClosedBeforeResponse(format!("read: {e}"))
            }
            Err(e) => return Outcome::Failed(format!("read after {} bytes: {e}", buf.len())),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200 ") {
        return Outcome::Failed(format!("status: {head:?}"));
    }
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let (Some(len), Some(pid)) = (field("content-length:"), field("x-pid:")) else {
        return Outcome::Failed(format!("head: {head:?}"));
    };
    while (buf.len() - head_end) < len as usize {
        match common::read_some(stream, &mut chunk) {
            Ok(0) => return Outcome::Failed("end of file in the body".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Outcome::Failed(format!("read in the body: {e}")),
        }
    }
    if &buf[head_end..] != BODY {
        return Outcome::Failed(format!(
            "body: {:?}",
            String::from_utf8_lossy(&buf[head_end..])
        ));
    }
    Outcome::Served(pid as u32)
}

/// Where the clients connect.
#[derive(Clone)]
enum Target {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A new connection; `None` (counted) if it was refused or failed.
fn connect(target: &Target, tally: &Tally) -> Option<Box<dyn Stream>> {
    let stream: io::Result<Box<dyn Stream>> = match target {
        Target::Tcp(a) => std::net::TcpStream::connect(a).and_then(|s| {
            s.set_read_timeout(Some(PATIENCE))?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as Box<dyn Stream>)
        }),
        Target::Unix(p) => UnixStream::connect(p).and_then(|s| {
            s.set_read_timeout(Some(PATIENCE))?;
            Ok(Box::new(s) as Box<dyn Stream>)
        }),
    };
    match stream {
        Ok(s) => Some(s),
        Err(e)
            if e.kind() == io::ErrorKind::ConnectionRefused
                || e.kind() == io::ErrorKind::NotFound =>
        {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => {
            tally.fail(format!("connect: {e}"));
            None
        }
    }
}

/// Requests on one connection while it lasts, with the retry rule above.
fn keep_alive_client(target: Target, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    let mut conn: Option<Box<dyn Stream>> = None;
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) && done < MAX_REQUESTS {
        done += 1;
        let reused = conn.is_some();
        if !reused {
            conn = connect(&target, &tally);
        }
        let Some(stream) = conn.as_mut() else {
            continue;
        };
        match request(stream, &mut buf) {
            Outcome::Served(pid) => tally.served(pid),
            Outcome::ClosedBeforeResponse(_) if reused => {
                tally.retries.fetch_add(1, Ordering::Relaxed);
                conn = connect(&target, &tally);
                let Some(stream) = conn.as_mut() else {
                    continue;
                };
                match request(stream, &mut buf) {
                    Outcome::Served(pid) => tally.served(pid),
                    Outcome::ClosedBeforeResponse(why) | Outcome::Failed(why) => {
                        tally.fail(format!("keep-alive retry: {why}"));
                        conn = None;
                    }
                }
            }
            Outcome::ClosedBeforeResponse(why) => {
                tally.fail(format!("new keep-alive connection closed: {why}"));
                conn = None;
            }
            Outcome::Failed(why) => {
                tally.fail(format!("keep-alive: {why}"));
                conn = None;
            }
        }
    }
}

/// One new connection per request, no retry.
fn new_conn_client(target: Target, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) && done < MAX_NEW_CONNS {
        done += 1;
        let Some(mut stream) = connect(&target, &tally) else {
            continue;
        };
        match request(&mut stream, &mut buf) {
            Outcome::Served(pid) => tally.served(pid),
            Outcome::ClosedBeforeResponse(why) | Outcome::Failed(why) => {
                tally.fail(format!("new connection: {why}"))
            }
        }
    }
}

fn socket_path() -> PathBuf {
    std::env::temp_dir().join(format!("netloop-restart-{}.sock", std::process::id()))
}

/// Waits for the successor to exit, killing it if it does not within [`PATIENCE`].
fn reap(mut child: std::process::Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("the successor did not exit: {:?}", child.wait());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn restart_under_load_fails_and_refuses_nothing() {
    if std::env::var_os(ROLE_ENV).is_some() {
        return successor();
    }
    let path = socket_path();
    let _ = std::fs::remove_file(&path);
    let old = serve(
        Server::builder()
            .listen("127.0.0.1:0")
            .listen(Addr::unix(&path)),
    );
    let tcp = Target::Tcp(old.local_addrs()[0].as_tcp().unwrap());
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..KEEP_ALIVE_CLIENTS + NEW_CONN_CLIENTS + 1 {
        let target = if i == KEEP_ALIVE_CLIENTS + NEW_CONN_CLIENTS {
            Target::Unix(path.clone())
        } else {
            tcp.clone()
        };
        let (tally, stop) = (tally.clone(), stop.clone());
        clients.push(thread::spawn(move || {
            if i < KEEP_ALIVE_CLIENTS {
                keep_alive_client(target, tally, stop)
            } else {
                new_conn_client(target, tally, stop)
            }
        }));
    }
    let me = std::process::id();
    assert!(
        eventually(|| tally.count(me) >= WANTED),
        "the old server serves"
    );

    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, "successor")
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = netloop::restart::spawn_successor(command, &old, PATIENCE)
        .expect("the successor takes over");
    let new = child.id();
    let report = old.shutdown(PATIENCE);
    assert!(exists(&path), "the socket file is left for the successor");
    let new_at_shutdown = tally.count(new);
    assert!(
        eventually(|| tally.count(new) >= new_at_shutdown + WANTED),
        "the successor serves after the old server is gone"
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    drop(child.stdin.take());
    let status = reap(child);
    assert!(status.success(), "successor: {status}");
    assert!(
        !exists(&path),
        "the successor removed the socket file it was handed"
    );

    let (by_old, by_new) = (tally.count(me), tally.count(new));
    let failures = tally.failures.lock().unwrap();
    let refused = tally.refused.load(Ordering::Relaxed);
    let retries = tally.retries.load(Ordering::Relaxed);
    println!(
        "restart on {:?}: {} requests, {by_old} by the old process, {by_new} by the new, \
         {retries} retried after an idle keep-alive close, {refused} refused, {} failed; \
         old server's drain: {report:?}",
        old.backend(),
        by_old + by_new,
        failures.len()
    );
    assert_eq!(refused, 0, "refused connections");
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(by_old >= WANTED && by_new >= WANTED);
}
