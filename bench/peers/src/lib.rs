//! Shared pieces of the comparison peers: argument parsing, the three
//! protocols' byte-level logic (echo / framed / http), the cached HTTP date,
//! and SO_REUSEPORT listeners for thread-per-core runtimes.
//!
//! The protocol code is runtime-agnostic: each binary reads into a buffer,
//! calls [`framed::complete_prefix`] or [`http::process`], and writes the
//! produced bytes with one write. The WebSocket peers (`--proto ws`) leave the
//! protocol to their crates and share only [`ws`] (limits and the tokio
//! thread-per-listener plumbing). The task (RPC) echo peers (`tarpc-peer`,
//! `tonic-peer`) leave the protocol to their frameworks too and share [`rpc`]:
//! their `--bench` load client.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

/// Which protocol a peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Echo,
    Framed,
    Http,
}

impl Proto {
    pub fn parse(s: &str) -> Result<Proto, String> {
        match s {
            "echo" => Ok(Proto::Echo),
            "framed" => Ok(Proto::Framed),
            "http" => Ok(Proto::Http),
            other => Err(format!("unknown --proto {other:?} (echo|framed|http)")),
        }
    }
}

/// Minimal `--key value` / `--key=value` parser (no clap: keeps the peers lean).
pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Parses `std::env::args()`. `known` lists accepted keys (without `--`);
    /// `usage` is printed for `--help` or an unknown/malformed argument.
    pub fn from_env(known: &[&str], usage: &str) -> Args {
        Args::from_env_with_flags(known, &[], usage)
    }

    /// [`Args::from_env`], and `flags` lists keys that take no value
    /// (`--echo`); [`Args::flag`] tells whether one was given.
    pub fn from_env_with_flags(known: &[&str], flags: &[&str], usage: &str) -> Args {
        let mut pairs = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if arg == "-h" || arg == "--help" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(body) = arg.strip_prefix("--") else {
                die(usage, &format!("unexpected argument {arg:?}"));
            };
            if flags.contains(&body) {
                pairs.push((body.to_string(), String::new()));
                continue;
            }
            let (key, value) = match body.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => match it.next() {
                    Some(v) => (body.to_string(), v),
                    None => die(usage, &format!("--{body} needs a value")),
                },
            };
            if !known.contains(&key.as_str()) {
                die(usage, &format!("unknown option --{key}"));
            }
            pairs.push((key, value));
        }
        Args { pairs }
    }

    /// Whether the flag `key` (one of `from_env_with_flags`' `flags`) was given.
    pub fn flag(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// Last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn proto(&self, usage: &str) -> Proto {
        Proto::parse(self.get("proto").unwrap_or("echo")).unwrap_or_else(|e| die(usage, &e))
    }

    pub fn addr(&self) -> String {
        self.get("addr").unwrap_or("127.0.0.1:7000").to_string()
    }

    /// For peers that speak one protocol only: `--proto` may be left out, and
    /// anything but `only` is an error.
    pub fn require_proto(&self, only: &str, usage: &str) {
        if let Some(p) = self.get("proto") {
            if p != only {
                die(
                    usage,
                    &format!("this peer speaks only --proto {only}, not {p:?}"),
                );
            }
        }
    }

    pub fn threads(&self, default: usize, usage: &str) -> usize {
        match self.get("threads") {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => die(usage, &format!("bad --threads {v:?}")),
            },
        }
    }
}

pub fn die(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{usage}");
    std::process::exit(2);
}

/// Number of CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Binds `count` listening sockets on the same address with SO_REUSEPORT
/// (the kernel spreads new connections over them), non-blocking, backlog 1024.
/// Port 0 is resolved once by the first socket and reused by the others.
pub fn bind_reuseport(addr: &str, count: usize) -> io::Result<Vec<TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut sa: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing"))?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let sock = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&sa.into())?;
        sock.listen(1024)?;
        let l: TcpListener = sock.into();
        sa = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Prints the one "listening" line scripts wait for, and flushes stdout.
pub fn announce(name: &str, addr: SocketAddr, detail: &str) {
    use std::io::Write;
    println!("{name} listening on {addr} {detail}");
    let _ = std::io::stdout().flush();
}

/// What the WebSocket echo peers share: their limits, and N threads each
/// running a tokio current-thread runtime on its own listener.
pub mod ws {
    use std::future::Future;
    use std::io;

    /// Largest message, and largest single frame, the WebSocket peers accept
    /// (netloop's `ws_echo` default, `--max-message`).
    pub const MAX_MESSAGE: usize = 64 << 20;

    /// Runs one thread per listener, each with its own current-thread runtime
    /// accepting on that listener; every accepted socket gets TCP_NODELAY and
    /// is handed to `conn` in a task of its own. Returns if a thread fails.
    pub fn serve_current_threads<F, Fut>(
        listeners: Vec<std::net::TcpListener>,
        thread_name: &str,
        conn: F,
    ) -> io::Result<()>
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handles: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let conn = conn.clone();
                std::thread::Builder::new()
                    .name(format!("{thread_name}-{i}"))
                    .spawn(move || -> io::Result<()> {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_io()
                            .build()?;
                        rt.block_on(async move {
                            let l = tokio::net::TcpListener::from_std(l)?;
                            loop {
                                let (s, _) = match l.accept().await {
                                    Ok(x) => x,
                                    // EMFILE and friends: keep serving the connections we have.
                                    Err(e) => {
                                        eprintln!("accept: {e}");
                                        tokio::task::yield_now().await;
                                        continue;
                                    }
                                };
                                let _ = s.set_nodelay(true);
                                tokio::spawn(conn(s));
                            }
                        })
                    })
                    .expect("spawn thread")
            })
            .collect();
        for h in handles {
            h.join().expect("runtime thread panicked")?;
        }
        Ok(())
    }
}

/// What the task (RPC) echo peers share: the current-thread runtime they serve
/// on, and their `--bench` load client, which runs the closed loops, keeps the
/// latency histogram, measures its own CPU time and prints the one JSON line
/// (the contract is in `tarpc-peer`'s module doc). A peer only says how to open
/// a connection and how to make one echo call on it ([`rpc::Peer`]).
pub mod rpc {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use hdrhistogram::Histogram;

    use super::{die, Args};

    /// The keys of the `--bench` command line (with `--addr`).
    pub const BENCH_KEYS: &[&str] = &["addr", "conns", "concurrency", "size", "duration"];
    /// Largest `--size`: netloop's task server's default payload limit.
    pub const MAX_SIZE: usize = 16 << 20;
    /// Opening one connection.
    const CONNECT_LIMIT: Duration = Duration::from_secs(10);
    /// How long past the duration a loop may take to get its last reply.
    const GRACE: Duration = Duration::from_secs(10);
    /// The histogram's range: 1 ns to 1 hour (longer latencies are clamped).
    const HIST_MAX_NS: u64 = 3_600_000_000_000;

    /// The current-thread runtime the servers and the load client run on: one
    /// thread, with the I/O and timer drivers (tarpc keeps per-request
    /// deadlines, tonic's HTTP/2 server has timers; the client bounds its loops).
    pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
    }

    /// A framework's client side, as the load client needs it.
    #[allow(async_fn_in_trait)] // run on one thread (a LocalSet): no Send needed
    pub trait Peer {
        /// The `"client"` value of the JSON line.
        const NAME: &'static str;
        /// One open connection.
        type Conn;
        /// What one closed loop holds to make calls on a connection.
        type Caller: 'static;
        /// Opens one connection to `addr` (`HOST:PORT`), ready for calls.
        async fn connect(addr: &str) -> Result<Self::Conn, String>;
        /// A handle for one more loop on `conn`.
        fn caller(conn: &Self::Conn) -> Self::Caller;
        /// One echo call; returns the length of the reply's bytes.
        async fn echo(caller: &mut Self::Caller, payload: Bytes) -> Result<usize, String>;
    }

    /// The `--bench` settings.
    #[derive(Clone, Debug)]
    pub struct Bench {
        pub addr: String,
        pub conns: usize,
        pub concurrency: usize,
        pub size: usize,
        pub duration: Duration,
    }

    impl Bench {
        /// Reads `--addr --conns --concurrency --size --duration` (all required).
        pub fn from_args(args: &Args, usage: &str) -> Bench {
            fn number<T: std::str::FromStr>(args: &Args, key: &str, usage: &str) -> T {
                let v = args
                    .get(key)
                    .unwrap_or_else(|| die(usage, &format!("--bench needs --{key}")));
                v.parse()
                    .unwrap_or_else(|_| die(usage, &format!("bad --{key} {v:?}")))
            }
            let addr = args
                .get("addr")
                .unwrap_or_else(|| die(usage, "--bench needs --addr HOST:PORT"))
                .to_string();
            let conns: usize = number(args, "conns", usage);
            let concurrency: usize = number(args, "concurrency", usage);
            let size: usize = number(args, "size", usage);
            let duration: f64 = number(args, "duration", usage);
            if conns == 0 || concurrency < conns {
                die(
                    usage,
                    "--conns must be > 0 and --concurrency at least --conns",
                );
            }
            if size > MAX_SIZE || !(duration > 0.0 && duration <= 3600.0) {
                die(
                    usage,
                    "--size must be at most 16 MiB and --duration in (0, 3600]",
                );
            }
            Bench {
                addr,
                conns,
                concurrency,
                size,
                duration: Duration::from_secs_f64(duration),
            }
        }

        /// How many of the loops connection `i` carries: `concurrency` spread
        /// evenly, the first `concurrency % conns` connections one more.
        pub fn share(&self, i: usize) -> usize {
            self.concurrency / self.conns + usize::from(i < self.concurrency % self.conns)
        }
    }

    /// User + system CPU time of this process (all threads), in seconds.
    pub fn cpu_seconds() -> f64 {
        // SAFETY: getrusage only writes the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        assert_eq!(rc, 0, "getrusage");
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }

    /// What one run measured.
    #[derive(Clone, Debug)]
    pub struct Outcome {
        pub tasks: u64,
        pub seconds: f64,
        pub p99_us: f64,
        pub cpu_seconds: f64,
    }

    impl Outcome {
        /// The one JSON line of the contract.
        pub fn json(&self, client: &str, b: &Bench) -> String {
            format!(
                "{{\"client\":\"{client}\",\"conns\":{},\"concurrency\":{},\"size\":{},\"tasks\":{},\"seconds\":{:.3},\"p99_us\":{:.1},\"cpu_seconds\":{:.4}}}",
                b.conns, b.concurrency, b.size, self.tasks, self.seconds, self.p99_us, self.cpu_seconds
            )
        }
    }

    /// The load client: opens `conns` connections one after the other, then
    /// (the measured period) runs `concurrency` closed loops spread over them,
    /// each sending `size` bytes, awaiting the echo, checking its length and
    /// recording the latency, until `duration` has passed (the call in flight
    /// then is finished and counted). All on one thread: a current-thread
    /// runtime and a `LocalSet`, one task per loop, one shared histogram.
    /// Prints `measuring: ...` on stderr when the measured period starts, and
    /// the JSON line on stdout at the end. Any failure (a connection, a call,
    /// a wrong length, no reply by the duration + 10 s) is an error: no JSON.
    pub fn run<P: Peer>(b: &Bench) -> Result<Outcome, String> {
        let rt = runtime().map_err(|e| format!("runtime: {e}"))?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, measure::<P>(b))
    }

    async fn measure<P: Peer>(b: &Bench) -> Result<Outcome, String> {
        let mut conns = Vec::with_capacity(b.conns);
        for i in 0..b.conns {
            let conn = tokio::time::timeout(CONNECT_LIMIT, P::connect(&b.addr))
                .await
                .map_err(|_| {
                    format!(
                        "connection {i} to {}: not open within {CONNECT_LIMIT:?}",
                        b.addr
                    )
                })?
                .map_err(|e| format!("connection {i} to {}: {e}", b.addr))?;
            conns.push(conn);
        }
        let hist = Rc::new(RefCell::new(
            Histogram::<u64>::new_with_bounds(1, HIST_MAX_NS, 3).expect("histogram bounds"),
        ));
        let payload = Bytes::from(vec![0x5a; b.size]);
        let size = b.size;

        eprintln!(
            "measuring: {} connection(s) open, {} loop(s), {:?}",
            b.conns, b.concurrency, b.duration
        );
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let until = t0 + b.duration;
        let limit = tokio::time::Instant::from_std(until + GRACE);
        let mut loops = tokio::task::JoinSet::new();
        for (i, conn) in conns.iter().enumerate() {
            for _ in 0..b.share(i) {
                let mut caller = P::caller(conn);
                let (hist, payload) = (hist.clone(), payload.clone());
                loops.spawn_local(async move {
                    let closed_loop = async {
                        let mut n = 0u64;
                        while Instant::now() < until {
                            let sent = Instant::now();
                            let len = P::echo(&mut caller, payload.clone()).await?;
                            let ns = sent.elapsed().as_nanos();
                            if len != size {
                                return Err(format!(
                                    "a reply of {len} bytes to a request of {size}"
                                ));
                            }
                            hist.borrow_mut()
                                .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
                            n += 1;
                        }
                        Ok(n)
                    };
                    tokio::time::timeout_at(limit, closed_loop)
                        .await
                        .unwrap_or_else(|_| Err("no reply within the duration + 10 s".into()))
                });
            }
        }
        let mut tasks = 0u64;
        let mut failure = None;
        while let Some(r) = loops.join_next().await {
            match r.map_err(|e| format!("a loop failed: {e}")).and_then(|r| r) {
                Ok(n) => tasks += n,
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                        loops.abort_all();
                    }
                }
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        let cpu_seconds = cpu_seconds() - cpu0;
        if let Some(e) = failure {
            return Err(e);
        }
        if tasks == 0 {
            return Err("no call completed".into());
        }
        let p99_us = hist.borrow().value_at_quantile(0.99) as f64 / 1000.0;
        drop(conns);
        Ok(Outcome {
            tasks,
            seconds,
            p99_us,
            cpu_seconds,
        })
    }
}

/// The framed protocol: 4-byte big-endian length N, then N payload bytes;
/// the reply is the identical frame.
pub mod framed {
    /// Largest payload accepted; a bigger announced length closes the connection.
    pub const MAX_PAYLOAD: usize = 64 << 20;

    /// Frames longer than [`MAX_PAYLOAD`].
    #[derive(Debug)]
    pub struct TooLarge(pub usize);

    /// Scans `buf` and returns `(done, want)`: `done` is the length of the
    /// prefix made of complete frames (to be sent back unchanged and consumed),
    /// `want` is the total size of the next, incomplete frame when its header
    /// is already in (0 otherwise), so callers can reserve that much.
    #[inline]
    pub fn complete_prefix(buf: &[u8]) -> Result<(usize, usize), TooLarge> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            if rest.len() < 4 {
                return Ok((pos, 0));
            }
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if n > MAX_PAYLOAD {
                return Err(TooLarge(n));
            }
            if rest.len() < 4 + n {
                return Ok((pos, 4 + n));
            }
            pos += 4 + n;
        }
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), cached per thread and
/// refreshed when the wall-clock second changes.
pub mod date {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};

    pub const LEN: usize = 29;

    thread_local! {
        static CACHE: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
    }

    /// The current date value, formatted at most once a second per thread.
    #[inline]
    pub fn now() -> [u8; LEN] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        CACHE.with(|c| {
            let (cached, bytes) = c.get();
            if cached == secs {
                bytes
            } else {
                let bytes = format(secs);
                c.set((secs, bytes));
                bytes
            }
        })
    }

    /// Formats seconds since the Unix epoch as an IMF-fixdate.
    pub fn format(secs: u64) -> [u8; LEN] {
        const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
        const MONTHS: [&[u8; 3]; 12] = [
            b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
            b"Nov", b"Dec",
        ];
        let days = secs / 86_400;
        let sod = secs % 86_400;
        let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
        let weekday = DAYS[(days % 7) as usize];
        // Civil-from-days (Howard Hinnant), days since 1970-01-01.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as u64;

        let mut b = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        b[0..3].copy_from_slice(weekday);
        two(&mut b[5..7], day);
        b[8..11].copy_from_slice(MONTHS[month - 1]);
        b[12] = b'0' + ((year / 1000) % 10) as u8;
        b[13] = b'0' + ((year / 100) % 10) as u8;
        two(&mut b[14..16], year % 100);
        two(&mut b[17..19], hh);
        two(&mut b[20..22], mm);
        two(&mut b[23..25], ss);
        b
    }

    fn two(dst: &mut [u8], v: u64) {
        dst[0] = b'0' + (v / 10) as u8;
        dst[1] = b'0' + (v % 10) as u8;
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn known_dates() {
            assert_eq!(&super::format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
            assert_eq!(&super::format(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
            assert_eq!(&super::format(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
            assert_eq!(&super::format(1_795_280_100), b"Sat, 21 Nov 2026 16:55:00 GMT");
        }
    }
}

/// The TechEmpower-plaintext HTTP shape.
pub mod http {
    use bytes::{Buf, BytesMut};

    /// Everything before the Date value.
    pub const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: netloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: ";
    /// Everything after the Date value.
    pub const TAIL: &[u8] = b"\r\n\r\nHello, World!";
    /// Bytes of one response.
    pub const RESPONSE_LEN: usize = HEAD.len() + super::date::LEN + TAIL.len();

    /// Most request headers accepted per request.
    pub const MAX_HEADERS: usize = 64;
    /// Largest request head (start line + headers) accepted.
    pub const MAX_HEAD: usize = 64 * 1024;
    /// Largest request body (Content-Length) accepted; bodies are skipped.
    pub const MAX_BODY: usize = 16 << 20;

    /// Why a connection must be closed without a further response.
    #[derive(Debug)]
    pub enum Error {
        Parse(httparse::Error),
        HeadTooLarge,
        BodyTooLarge,
        BadContentLength,
        /// Transfer-Encoding other than identity (chunked bodies are not supported).
        TransferEncoding,
    }

    /// Appends one response (with the given date) to `out`.
    #[inline]
    pub fn respond(out: &mut Vec<u8>, date: &[u8; super::date::LEN]) {
        out.reserve(RESPONSE_LEN);
        out.extend_from_slice(HEAD);
        out.extend_from_slice(date);
        out.extend_from_slice(TAIL);
    }

    /// Consumes every complete request at the front of `inbuf` (head plus any
    /// Content-Length body), appending one response per request to `out` in
    /// order. Returns `Ok(true)` when the connection should be closed after
    /// `out` is written (`Connection: close`, or HTTP/1.0 without keep-alive);
    /// bytes after such a request are discarded. An incomplete request stays
    /// in `inbuf` for the next read.
    pub fn process(inbuf: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, Error> {
        let mut date: Option<[u8; super::date::LEN]> = None;
        while !inbuf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let head_len = match req.parse(inbuf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => {
                    if inbuf.len() > MAX_HEAD {
                        return Err(Error::HeadTooLarge);
                    }
                    break;
                }
                Err(e) => return Err(Error::Parse(e)),
            };
            // HTTP/1.1 defaults to keep-alive, HTTP/1.0 to close.
            let mut close = req.version == Some(0);
            let mut body_len = 0usize;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("connection") {
                    for token in h.value.split(|&b| b == b',') {
                        let token = token.trim_ascii();
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            close = false;
                        }
                    }
                } else if h.name.eq_ignore_ascii_case("content-length") {
                    body_len = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .ok_or(Error::BadContentLength)?;
                    if body_len > MAX_BODY {
                        return Err(Error::BodyTooLarge);
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                    && !h.value.trim_ascii().eq_ignore_ascii_case(b"identity")
                {
                    return Err(Error::TransferEncoding);
                }
            }
            let total = head_len + body_len;
            if inbuf.len() < total {
                inbuf.reserve(total - inbuf.len());
                break; // body still arriving; the head is parsed again next time
            }
            let d = *date.get_or_insert_with(super::date::now);
            respond(out, &d);
            if close {
                inbuf.clear();
                return Ok(true);
            }
            inbuf.advance(total);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    #[test]
    fn rpc_share_and_json() {
        use super::rpc::{Bench, Outcome};
        let b = |conns, concurrency| Bench {
            addr: "127.0.0.1:1".into(),
            conns,
            concurrency,
            size: 1024,
            duration: std::time::Duration::from_secs(5),
        };
        assert_eq!(b(1, 100).share(0), 100);
        assert!((0..100).all(|i| b(100, 100).share(i) == 1));
        let uneven = b(3, 100);
        assert_eq!(
            (0..3).map(|i| uneven.share(i)).collect::<Vec<_>>(),
            [34, 33, 33]
        );
        let out = Outcome {
            tasks: 12,
            seconds: 5.0004,
            p99_us: 123.45,
            cpu_seconds: 1.5,
        };
        assert_eq!(
            out.json("tarpc", &b(1, 100)),
            r#"{"client":"tarpc","conns":1,"concurrency":100,"size":1024,"tasks":12,"seconds":5.000,"p99_us":123.5,"cpu_seconds":1.5000}"#
        );
    }

    #[test]
    fn framed_prefix() {
        let mut b = Vec::new();
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&5u32.to_be_bytes());
        b.extend_from_slice(b"xy");
        assert_eq!(super::framed::complete_prefix(&b).unwrap(), (11, 9));
        assert_eq!(super::framed::complete_prefix(&b[..2]).unwrap(), (0, 0));
    }

    #[test]
    fn http_pipelined_and_partial() {
        let mut inbuf = BytesMut::from(
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /p"[..],
        );
        let mut out = Vec::new();
        assert!(!super::http::process(&mut inbuf, &mut out).unwrap());
        assert_eq!(out.len(), 2 * super::http::RESPONSE_LEN);
        assert_eq!(&inbuf[..], b"GET /p");
        inbuf.extend_from_slice(b" HTTP/1.1\r\nConnection: close\r\n\r\n");
        out.clear();
        assert!(super::http::process(&mut inbuf, &mut out).unwrap());
        assert_eq!(out.len(), super::http::RESPONSE_LEN);
        assert!(out.starts_with(super::http::HEAD));
        assert!(out.ends_with(super::http::TAIL));
    }
}
