//! File-descriptor exhaustion: in a child process whose `RLIMIT_NOFILE` is lowered, the
//! server accepts connections until no descriptor is left, survives `EMFILE`, keeps
//! serving the connections it has, and accepts (and serves) again once descriptors are
//! freed, without losing any connection that waited in the backlog meanwhile.
//!
//! The child is this test binary itself, run again with `NETLOOP_FD_CHILD=1` and a
//! filter that selects this test alone. It lowers its own soft limit with
//! `libc::setrlimit`, starts an echo server (Inline, one poller), prints its port, then
//! answers `stats` lines on stdin with a line of counters until stdin closes, when it
//! prints its final counters, shuts down and exits.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;
use netloop::{Dispatch, Stats};

/// This test's name, as the test harness filters it.
const TEST_NAME: &str = "server_survives_fd_exhaustion_and_accepts_again_once_fds_free_up";
/// Set in the child's environment.
const CHILD_ENV: &str = "NETLOOP_FD_CHILD";
/// Marks the child's protocol lines among the test harness's own output.
const MARK: &str = "@netloop-fd-child@ ";
/// The child's soft `RLIMIT_NOFILE`.
const LIMIT: u64 = 64;
/// Connections opened at first: well past the limit. The ones the child cannot accept
/// wait in the kernel's accept queue.
const OPEN: usize = 150;
/// Connections of the first batch kept open after the rest are dropped.
const KEEP: usize = 4;
/// Connections opened once descriptors are free again.
const FRESH: usize = 20;

#[test]
fn server_survives_fd_exhaustion_and_accepts_again_once_fds_free_up() {
    if std::env::var_os(CHILD_ENV).is_some_and(|v| v == "1") {
        child();
    } else {
        parent();
    }
}

// ---------------------------------------------------------------- the child process

fn child() {
    // Warnings go to stderr, where the parent looks for the accept failures.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .init();
    lower_fd_limit(LIMIT);
    let server = serve(Dispatch::Inline, 1, echo());
    let port = addr(&server).port();
    let free = free_fd_slots(LIMIT);
    println!("{MARK}ready port={port} free={free}");
    for line in std::io::stdin().lock().lines() {
        match line.as_deref() {
            Ok("stats") => println!("{MARK}stats {}", summary(&server.stats())),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // Stdin closed: the parent is done (or gone).
    let report = server.shutdown(PATIENCE);
    let stats = server.stats();
    println!(
        "{MARK}final {} report={report:?} stats={stats:?}",
        summary(&stats)
    );
}

/// Lowers this process's soft limit on open files to `limit`.
fn lower_fd_limit(limit: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    assert!(rl.rlim_max >= limit as libc::rlim_t, "hard limit too low");
    rl.rlim_cur = limit as libc::rlim_t;
    // SAFETY: setrlimit only reads the struct it is given.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) },
        0,
        "setrlimit: {}",
        std::io::Error::last_os_error()
    );
}

/// Descriptor numbers below `limit` not in use: how many more files this process can
/// open (the kernel always hands out the lowest free number, and refuses with `EMFILE`
/// when none is below the soft limit).
fn free_fd_slots(limit: u64) -> u64 {
    let listing = std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd");
    // The listing's own descriptor is among the entries but is closed right after.
    let used = listing
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|&fd| fd < limit)
        .count() as u64
        - 1;
    limit - used
}

/// The counters the parent checks, as `key=value` words.
fn summary(s: &Stats) -> String {
    format!(
        "active={} accepted={} closed={} peer_closed={} error={} rejected={} panics={}",
        s.active,
        s.accepted,
        s.closed.total(),
        s.closed.peer_closed,
        s.closed.error,
        s.rejected,
        s.panics
    )
}

// --------------------------------------------------------------- the parent process

/// The child process, its stdin, and its protocol lines (stdout) and stderr as they
/// arrive. Killed on drop if still running, so a failing test leaves nothing behind.
struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl ChildServer {
    fn spawn() -> ChildServer {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness may print "test NAME ... " on the same line first.
                if let Some(at) = line.find(MARK) {
                    if tx.send(line[at + MARK.len()..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let stderr_reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = common::read_some(&mut err, &mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        ChildServer {
            child,
            stdin,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// The child's next protocol line of this kind (its first word), without the kind.
    fn expect(&self, kind: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(kind) {
                        return rest.trim().to_owned();
                    }
                }
                Err(e) => panic!(
                    "no '{kind}' line from the child ({e}); its stderr:\n{}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// The child's counters now.
    fn stats(&mut self) -> HashMap<String, u64> {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(b"stats\n").expect("ask the child");
        stdin.flush().unwrap();
        parse(&self.expect("stats"))
    }

    /// Closes the child's stdin, which tells it to finish; returns its final line and
    /// everything it wrote to stderr.
    fn finish(&mut self) -> (String, String) {
        drop(self.stdin.take());
        let last = self.expect("final");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                break status;
            }
            assert!(Instant::now() < deadline, "the child did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.success(),
            "the child failed ({status}); its stderr:\n{}",
            self.stderr.lock().unwrap()
        );
        // The child has exited: its stderr is at its end.
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().unwrap();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        (last, stderr)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `key=value` words into a map (other words are ignored).
fn parse(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// A client whose connect, reads and writes all give up after [`PATIENCE`].
fn dial(a: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&a, PATIENCE).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn echoes(stream: &mut TcpStream, what: &str) {
    let msg = format!("hello from {what}");
    assert_eq!(
        round_trip(stream, msg.as_bytes()),
        msg.as_bytes(),
        "{what}: echo differs"
    );
}

fn parent() {
    let mut child = ChildServer::spawn();
    let ready = parse(&child.expect("ready"));
    let port = ready["port"] as u16;
    // How many connections the child can hold at once.
    let capacity = ready["free"] as usize;
    assert!(
        (KEEP + FRESH..OPEN).contains(&capacity),
        "the child can hold {capacity} connections; the test needs at least {} and fewer \
         than {OPEN}",
        KEEP + FRESH
    );
    let a = SocketAddr::from(([127, 0, 0, 1], port));

    // Well past the limit: the handshakes all complete (the kernel queues what the
    // server has not accepted), and the server accepts until it runs out of descriptors.
    let mut conns: Vec<TcpStream> = (0..OPEN).map(|_| dial(a)).collect();
    let mut last = HashMap::new();
    assert!(
        eventually(|| {
            last = child.stats();
            last["active"] as usize == capacity
        }),
        "the child should hold {capacity} connections: {last:?}"
    );
    // The accept queue is first in, first out: the first `capacity` connections are the
    // accepted ones, and each is served.
    for (i, c) in conns.iter_mut().take(capacity).enumerate() {
        echoes(c, &format!("connection {i} (while out of descriptors)"));
    }
    let s = child.stats();
    assert_eq!(
        (s["active"], s["accepted"], s["closed"], s["rejected"]),
        (capacity as u64, capacity as u64, 0, 0),
        "the server is full and has lost or refused nothing: {s:?}"
    );
    // Still out of descriptors, it keeps serving what it has.
    for (i, c) in conns.iter_mut().take(capacity).enumerate() {
        echoes(c, &format!("connection {i} (again)"));
    }

    // Free descriptors: drop every connection but the first few, accepted or queued.
    conns.truncate(KEEP);
    // New connections are accepted and served; they queue behind the dropped ones,
    // which the server must accept (and find closed) first.
    let mut fresh: Vec<TcpStream> = (0..FRESH).map(|_| dial(a)).collect();
    for (i, c) in fresh.iter_mut().enumerate() {
        echoes(c, &format!("fresh connection {i}"));
    }
    for (i, c) in conns.iter_mut().enumerate() {
        echoes(c, &format!("kept connection {i}"));
    }
    // Every connection that ever queued was accepted; every dropped one was closed.
    let open_now = (KEEP + FRESH) as u64;
    let total = (OPEN + FRESH) as u64;
    assert!(
        eventually(|| {
            last = child.stats();
            (last["active"], last["accepted"], last["closed"])
                == (open_now, total, total - open_now)
        }),
        "expected active={open_now} accepted={total} closed={}: {last:?}",
        total - open_now
    );
    assert_eq!((last["rejected"], last["panics"]), (0, 0), "{last:?}");

    drop(fresh);
    drop(conns);
    let (final_line, stderr) = child.finish();
    let f = parse(&final_line);
    assert_eq!(
        (f["active"], f["accepted"], f["closed"], f["panics"]),
        (0, total, total, 0),
        "the child's final counters: {final_line}"
    );
    // The server did run into the limit: accept failed with EMFILE (and it warned).
    assert!(
        stderr.contains("os error 24"),
        "no EMFILE warning in the child's stderr:\n{stderr}"
    );
}
