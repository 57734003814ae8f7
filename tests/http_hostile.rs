//! The HTTP layer with its default limits against hostile peers in numbers, while a
//! well-behaved client keeps being served: slow-loris trickles, oversized heads and
//! bodies, garbage, pipeliners that never read, and reset churn. Loopback only; every
//! loop is bounded in count and time. Deadlines are shortened (the defaults are seconds
//! to minutes) but the mechanism is the default one; no timing is asserted beyond
//! "closed within the deadline plus a margin". Each test prints its figures.

mod common;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use netloop::http::{Http, HttpEvent, Request, Response};
use netloop::{Server, ServerHandle};

fn hello(_req: &Request, res: &mut Response<'_>) {
    res.header("Content-Type", "text/plain")
        .body(b"Hello, World!");
}

/// How long past a deadline a close may come on a busy test machine.
const MARGIN: Duration = Duration::from_secs(5);

/// A keep-alive client that sends a request, reads its answer, and counts the answers
/// until `stop`; any failure is counted too.
struct Bystander {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Bystander {
    fn start(addr: SocketAddr) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (st, sv, fl) = (stop.clone(), served.clone(), failed.clone());
        let thread = thread::spawn(move || {
            let mut s = connect(addr);
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(60);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                let ok = s
                    .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .and_then(|_| read_one_response(&mut s, &mut buf));
                match ok {
                    Ok(true) => sv.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        fl.fetch_add(1, Ordering::Relaxed);
                        s = connect(addr);
                        0
                    }
                };
                thread::sleep(Duration::from_millis(2));
            }
        });
        Bystander {
            stop,
            served,
            failed,
            thread: Some(thread),
        }
    }

    /// Stops it; returns (served, failed).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.served.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Reads one `Hello, World!` response; whether it was a 200.
fn read_one_response(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = Vec::new();
    loop {
        let n = common::read_some(s, buf)?;
        if n == 0 {
            return Ok(false);
        }
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(b"Hello, World!") {
            return Ok(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
    }
}

fn server(http: Http<fn(&Request, &mut Response<'_>)>) -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .output_high_water(256 * 1024)
        .serve(http)
        .expect("server starts")
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn hundreds_of_slow_loris_peers_are_cut_off_at_the_head_deadline_while_others_are_served() {
    const PEERS: usize = 300;
    let head_timeout = Duration::from_secs(1);
    let http = Http::new(hello as fn(&Request, &mut Response<'_>)).head_timeout(head_timeout);
    let metrics = http.metrics();
    let server = server(http);
    let addr = addr(&server);
    let fds_before = open_fds();
    let bystander = Bystander::start(addr);
    // Each peer sends a head a byte at a time, one byte per peer every 100 ms: ten
    // times the head timeout would still not finish it.
    let mut peers: Vec<TcpStream> = (0..PEERS).map(|_| connect(addr)).collect();
    for p in &peers {
        p.set_nonblocking(true).unwrap();
    }
    let head: Vec<u8> = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'a', 400))
        .collect();
    let start = Instant::now();
    let mut open: Vec<bool> = vec![true; PEERS];
    let mut answers: Vec<Vec<u8>> = vec![Vec::new(); PEERS];
    let mut closed_at: Vec<Option<Duration>> = vec![None; PEERS];
    let mut i = 0;
    let give_up = head_timeout + MARGIN + Duration::from_secs(5);
    while open.iter().any(|&o| o) && start.elapsed() < give_up {
        for (n, p) in peers.iter_mut().enumerate() {
            if !open[n] {
                continue;
            }
            let mut buf = [0u8; 512];
            match common::read_some(p, &mut buf) {
                Ok(0) => {
                    open[n] = false;
                    closed_at[n] = Some(start.elapsed());
                    continue;
                }
                Ok(k) => answers[n].extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    open[n] = false;
                    closed_at[n] = Some(start.elapsed());
                    continue;
                }
            }
            if i < head.len() {
                let _ = common::write_some(p, &head[i..i + 1]);
            }
        }
        i += 1;
        thread::sleep(Duration::from_millis(100));
    }
    let (served, failed) = bystander.finish();
    let latest = closed_at.iter().flatten().max().copied();
    let answered_408 = answers
        .iter()
        .filter(|a| a.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"))
        .count();
    eprintln!(
        "slow-loris: {PEERS} peers, {answered_408} answered 408, all closed by {latest:?}; \
         bystander served {served}, failed {failed}; head timeouts counted {}",
        metrics.snapshot().get(HttpEvent::HeadTimeout)
    );
    assert!(open.iter().all(|&o| !o), "some slow peers are still open");
    assert_eq!(answered_408, PEERS);
    assert!(latest.unwrap() < head_timeout + MARGIN, "{latest:?}");
    assert_eq!(metrics.snapshot().get(HttpEvent::HeadTimeout), PEERS as u64);
    assert!(served > 0, "the well-behaved client was not served");
    assert_eq!(failed, 0);
    drop(peers);
    assert!(eventually(|| server.stats().active == 0));
    assert!(eventually(|| extra_fds(&fds_before, &open_fds()).is_empty()));
    server.shutdown(PATIENCE);
}

/// Sends `request` on a fresh connection and reads until the server closes.
fn one_shot(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    let _ = s.write_all(request);
    read_to_close(&mut s)
}

#[test]
fn oversized_heads_and_bodies_and_garbage_are_refused_and_closed_in_numbers() {
    let http = Http::new(hello as fn(&Request, &mut Response<'_>));
    let metrics = http.metrics();
    let server = server(http);
    let addr = addr(&server);
    let bystander = Bystander::start(addr);
    let fds_before = open_fds();
    let rss_before = rss_kib();
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "h".repeat(64 * 1024)
    );
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "t".repeat(64 * 1024));
    let big_body = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        4 << 20,
        "b".repeat(64 * 1024)
    );
    let big_chunk =
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n".to_string();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let cases: [(&[u8], &str); 5] = [
        (big_header.as_bytes(), "431"),
        (long_target.as_bytes(), "414"),
        (big_body.as_bytes(), "413"),
        (big_chunk.as_bytes(), "413"),
        (&garbage, "400"),
    ];
    const ROUNDS: usize = 40;
    let mut threads = Vec::new();
    for &(request, status) in &cases {
        let request = request.to_vec();
        threads.push(thread::spawn(move || {
            for _ in 0..ROUNDS {
                let answer = one_shot(addr, &request);
                let text = String::from_utf8_lossy(&answer);
                assert!(
                    text.starts_with(&format!("HTTP/1.1 {status} ")),
                    "expected {status}, got {:?}",
                    &text[..text.len().min(80)]
                );
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let (served, failed) = bystander.finish();
    let stats = metrics.snapshot();
    eprintln!(
        "oversized: {} refused (431 {}, 414 {}, 413 {}, 400 {}); bystander served {served}, failed {failed}; \
         RSS {} -> {} KiB",
        ROUNDS * cases.len(),
        stats.get(HttpEvent::HeadersTooLarge),
        stats.get(HttpEvent::UriTooLong),
        stats.get(HttpEvent::BodyTooLarge),
        stats.get(HttpEvent::BadRequest),
        rss_before,
        rss_kib()
    );
    assert_eq!(stats.get(HttpEvent::HeadersTooLarge), ROUNDS as u64);
    assert_eq!(stats.get(HttpEvent::UriTooLong), ROUNDS as u64);
    assert_eq!(stats.get(HttpEvent::BodyTooLarge), 2 * ROUNDS as u64);
    assert_eq!(stats.get(HttpEvent::BadRequest), ROUNDS as u64);
    assert!(served > 0);
    assert_eq!(failed, 0);
    assert!(eventually(|| server.stats().active == 0));
    assert!(eventually(|| extra_fds(&fds_before, &open_fds()).is_empty()));
    server.shutdown(PATIENCE);
}

#[test]
fn pipeliners_that_never_read_are_held_to_the_output_mark_and_closed_at_the_write_timeout() {
    const PEERS: usize = 20;
    const MARK: u64 = 256 * 1024;
    let body: &'static [u8] = Box::leak(vec![b'r'; 16 * 1024].into_boxed_slice());
    let http = Http::new(move |_: &Request, res: &mut Response<'_>| res.body(body))
        .write_timeout(Some(Duration::from_secs(1)));
    let metrics = http.metrics();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .output_high_water(MARK as usize)
        .serve(http)
        .expect("server starts");
    let addr = addr(&server);
    let rss_before = rss_kib();
    let request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let peers: Vec<TcpStream> = (0..PEERS)
        .map(|_| {
            let s = connect(addr);
            socket2::SockRef::from(&s)
                .set_recv_buffer_size(4096)
                .unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // Each asks for 16 MB of responses and reads none of them; writes stop when the
    // server stops reading (it holds requests back above the mark).
    let start = Instant::now();
    let mut peak_output = 0;
    let mut written = [0usize; PEERS];
    while start.elapsed() < Duration::from_secs(3) {
        for (n, mut p) in peers.iter().enumerate() {
            if written[n] < request.len() {
                if let Ok(k) = common::write_some(&mut p, &request.as_bytes()[written[n]..]) {
                    written[n] += k;
                }
            }
        }
        peak_output = peak_output.max(server.stats().buffered_output);
        if metrics.snapshot().get(HttpEvent::WriteTimeout) == PEERS as u64 {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(eventually(|| metrics
        .snapshot()
        .get(HttpEvent::WriteTimeout)
        == PEERS as u64));
    eprintln!(
        "never-reading pipeliners: {PEERS} peers, peak queued output {peak_output} bytes \
         (mark {MARK} per connection), all closed at the write timeout; RSS {rss_before} -> {} KiB",
        rss_kib()
    );
    // One response past the mark at most: the handler is held back once it is reached.
    assert!(
        peak_output <= PEERS as u64 * (MARK + 32 * 1024),
        "{peak_output} bytes queued"
    );
    assert_eq!(server.stats().closed.write_timeout, PEERS as u64);
    drop(peers);
    assert!(eventually(|| server.stats().active == 0));
    server.shutdown(PATIENCE);
}

#[test]
fn reset_churn_leaks_no_descriptors_and_no_connections() {
    const CONNS: usize = 2000;
    let http = Http::new(hello as fn(&Request, &mut Response<'_>));
    let server = server(http);
    let addr = addr(&server);
    let fds_before = open_fds();
    let bystander = Bystander::start(addr);
    let start = Instant::now();
    for i in 0..CONNS {
        let mut s = connect(addr);
        // Half a request, a whole one, or nothing; then a reset (linger 0).
        let _ = match i % 3 {
            0 => s.write_all(b"GET / HTTP/1.1\r\nHo"),
            1 => s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"),
            _ => Ok(()),
        };
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    }
    let (served, failed) = bystander.finish();
    assert!(
        eventually(|| server.stats().active == 0),
        "{:?}",
        server.stats()
    );
    let leaked = extra_fds(&fds_before, &open_fds());
    let stats = server.stats();
    eprintln!(
        "reset churn: {CONNS} connections reset in {:?}; accepted {}, active after {}, \
         descriptors leaked {}; bystander served {served}, failed {failed}",
        start.elapsed(),
        stats.accepted,
        stats.active,
        leaked.len()
    );
    assert!(
        eventually(|| extra_fds(&fds_before, &open_fds()).is_empty()),
        "{leaked:?}"
    );
    assert!(stats.accepted >= CONNS as u64);
    assert!(served > 0);
    assert_eq!(failed, 0);
    server.shutdown(PATIENCE);
}
