//! tokio-tungstenite comparison peer, the client side: a WebSocket client on
//! tokio current-thread runtimes, for netloop's WebSocket client to be measured
//! and tested against. Two modes.
//!
//! # `--echo`: closed-loop echo load (the benchmark contract)
//!
//! ```text
//! tokio-tungstenite-client-peer --echo --url ws://HOST:PORT[/PATH] --conns N --size BYTES
//!                               --duration SECS [--threads T]
//! ```
//!
//! Opens N connections to URL (any echo server: netloop's `examples/ws_echo`),
//! spread over T threads (default 1), each thread running a tokio
//! current-thread runtime and its share of the connections as tasks. Once all
//! are open the measured period starts, and each connection runs a closed
//! loop: send one binary message of BYTES bytes, wait for the echo, check that
//! it is a binary message of BYTES bytes, repeat, until SECS seconds have
//! passed (the message in flight then is finished and counted). The measured
//! period ends when every loop has stopped; then each connection is closed
//! with the close handshake (not measured). At the end it prints one line of
//! JSON on stdout and exits 0:
//!
//! ```text
//! {"client":"tokio-tungstenite","conns":N,"size":BYTES,"messages":M,"seconds":X,"cpu_seconds":C}
//! ```
//!
//! `messages` is the number of echoes received in the measured period (all
//! connections), `seconds` its wall-clock length, `cpu_seconds` this process's
//! user + system CPU time over it (`getrusage(RUSAGE_SELF)` before and after,
//! all threads). So messages/s is `messages / seconds` and client CPU per
//! message `cpu_seconds / messages`. Anything unexpected (a connection that
//! fails or closes, a wrong echo, no echo within the duration + 10 s) is
//! printed on stderr and the exit status is 1, with no JSON line. netloop's
//! client example (`examples/ws_client`) implements the same command line and
//! prints the same line with `"client":"netloop"`, so `scripts/ws_client_bench.sh`
//! runs either.
//!
//! Choices: tungstenite's defaults (128 KiB read and write buffers, a random
//! mask per frame), `client_async_with_config` on a `TcpStream` connected
//! here with TCP_NODELAY (no TLS, no `connect` feature), no `split()`. Each
//! message is `send` (encode + flush: one `write`), then `next()` for the
//! echo. One timer per connection bounds the whole loop; none per message.
//!
//! # `--autobahn`: the Autobahn|Testsuite fuzzing server's client procedure
//!
//! ```text
//! tokio-tungstenite-client-peer --autobahn --url ws://HOST:PORT --agent NAME
//! ```
//!
//! The procedure `scripts/autobahn_client.sh` expects: `/getCaseCount` (its one
//! text message is the case count N), then `/runCase?case=i&agent=NAME` for
//! i = 1..N, sending every text and binary message back as it came until the
//! server closes, then `/updateReports?agent=NAME`; exits 0 once the reports
//! are written. tungstenite answers pings and closes by itself. Where
//! tungstenite reports a protocol violation, invalid UTF-8 or a too-large
//! message, this peer sends the close frame the RFC asks for (1002, 1007,
//! 1009), as an application using tungstenite has to, and drops the
//! connection. Messages and frames up to 64 MiB (the server peers' limit).
//! tungstenite has no permessage-deflate: the fuzzing server's 12.x and 13.x
//! cases come out UNIMPLEMENTED for this peer. A case is cut off after 10
//! minutes (the fuzzing server bounds each case itself, well within that).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netloop_bench_peers::{die, ws, Args};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

const USAGE: &str = "tokio-tungstenite-client-peer --echo --url ws://HOST:PORT --conns N --size BYTES --duration SECS [--threads T]
tokio-tungstenite-client-peer --autobahn --url ws://HOST:PORT --agent NAME
  --echo      N connections, each a closed loop of one binary message of BYTES bytes and
              its echo, for SECS seconds; prints one JSON line
                {\"client\":\"tokio-tungstenite\",\"conns\":N,\"size\":BYTES,\"messages\":M,\"seconds\":X,\"cpu_seconds\":C}
  --threads T T threads, each a current-thread runtime with its share of the connections; default 1
  --autobahn  the Autobahn|Testsuite fuzzing server's client procedure (getCaseCount,
              runCase for each case, echoing, updateReports)";

/// Connecting (TCP and handshake), per connection.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// How long past the duration a connection may take to finish its loop.
const ECHO_GRACE: Duration = Duration::from_secs(10);
/// The close handshake at the end, per connection.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);
/// One Autobahn case.
const CASE_LIMIT: Duration = Duration::from_secs(600);
/// The most cases getCaseCount may announce (the suite has about 520).
const MAX_CASES: u32 = 10_000;

type Ws = WebSocketStream<TcpStream>;

fn main() {
    let args = Args::from_env_with_flags(
        &["url", "agent", "conns", "size", "duration", "threads"],
        &["echo", "autobahn"],
        USAGE,
    );
    let url = args
        .get("url")
        .unwrap_or_else(|| die(USAGE, "--url ws://HOST:PORT is required"))
        .to_string();
    if !url.starts_with("ws://") {
        die(USAGE, "--url must be ws://HOST:PORT (no TLS)");
    }
    let result = match (args.flag("echo"), args.flag("autobahn")) {
        (true, false) => echo_mode(&args, &url),
        (false, true) => {
            let agent = args
                .get("agent")
                .unwrap_or_else(|| die(USAGE, "--autobahn needs --agent NAME"));
            autobahn_mode(&url, agent)
        }
        _ => die(USAGE, "give one of --echo and --autobahn"),
    };
    if let Err(e) = result {
        eprintln!("tokio-tungstenite-client-peer: {e}");
        std::process::exit(1);
    }
}

fn number<T: std::str::FromStr>(args: &Args, key: &str) -> T {
    let v = args
        .get(key)
        .unwrap_or_else(|| die(USAGE, &format!("--echo needs --{key}")));
    v.parse()
        .unwrap_or_else(|_| die(USAGE, &format!("bad --{key} {v:?}")))
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}

/// Connects TCP (TCP_NODELAY) and does the WebSocket handshake for `url`.
async fn connect(url: &str) -> Result<Ws, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("no host in {url:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let config = WebSocketConfig::default()
        .max_message_size(Some(ws::MAX_MESSAGE))
        .max_frame_size(Some(ws::MAX_MESSAGE));
    let handshake = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| format!("handshake with {url}: {e}"))?;
        Ok(ws)
    };
    timeout(CONNECT_LIMIT, handshake)
        .await
        .map_err(|_| format!("{url}: no connection within {CONNECT_LIMIT:?}"))?
}

/// User + system CPU time of this process (all threads), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

// ---------------------------------------------------------------- --echo

fn echo_mode(args: &Args, url: &str) -> Result<(), String> {
    let conns: usize = number(args, "conns");
    let size: usize = number(args, "size");
    let duration: f64 = number(args, "duration");
    if conns == 0 || size > ws::MAX_MESSAGE || !(duration > 0.0 && duration <= 3600.0) {
        die(
            USAGE,
            "--conns must be > 0, --size at most 64 MiB, --duration in (0, 3600]",
        );
    }
    let duration = Duration::from_secs_f64(duration);
    let threads = args.threads(1, USAGE).min(conns);

    // Phases, each ended by all threads and this one meeting at the barrier:
    // connect; (start: the deadline is set) loops; (stop: measured) close.
    let barrier = Arc::new(Barrier::new(threads + 1));
    let deadline = Arc::new(OnceLock::<Instant>::new());
    let messages = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let payload = Bytes::from(vec![0x5a; size]);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let share = conns / threads + usize::from(i < conns % threads);
            let (url, barrier, deadline, messages, failed, payload) = (
                url.to_string(),
                barrier.clone(),
                deadline.clone(),
                messages.clone(),
                failed.clone(),
                payload.clone(),
            );
            std::thread::Builder::new()
                .name(format!("client-{i}"))
                .spawn(move || {
                    let fail = |e: String| {
                        eprintln!("tokio-tungstenite-client-peer: {e}");
                        failed.store(true, Ordering::Relaxed);
                    };
                    let rt = match runtime() {
                        Ok(rt) => rt,
                        Err(e) => {
                            eprintln!("runtime: {e}");
                            std::process::exit(1);
                        }
                    };
                    // A connection that cannot be opened ends the run here:
                    // there is nothing to measure.
                    let mut sockets = Vec::with_capacity(share);
                    for _ in 0..share {
                        match rt.block_on(connect(&url)) {
                            Ok(ws) => sockets.push(ws),
                            Err(e) => {
                                eprintln!("tokio-tungstenite-client-peer: {e}");
                                std::process::exit(1);
                            }
                        }
                    }
                    barrier.wait(); // all connected
                    barrier.wait(); // the deadline is set
                    let until = *deadline.get().expect("deadline set before the start");
                    let limit = tokio::time::Instant::from_std(until + ECHO_GRACE);
                    let done = rt.block_on(async {
                        let mut tasks = tokio::task::JoinSet::new();
                        for ws in sockets {
                            let payload = payload.clone();
                            tasks.spawn(async move {
                                tokio::time::timeout_at(limit, closed_loop(ws, payload, until))
                                    .await
                                    .unwrap_or_else(|_| {
                                        Err("no echo within the duration + 10 s".into())
                                    })
                            });
                        }
                        let mut open = Vec::with_capacity(share);
                        while let Some(r) = tasks.join_next().await {
                            match r.map_err(|e| e.to_string()).and_then(|r| r) {
                                Ok((ws, n)) => {
                                    messages.fetch_add(n, Ordering::Relaxed);
                                    open.push(ws);
                                }
                                Err(e) => fail(e),
                            }
                        }
                        open
                    });
                    barrier.wait(); // every loop has stopped
                    barrier.wait(); // measured
                    rt.block_on(async {
                        for mut ws in done {
                            match timeout(CLOSE_LIMIT, close(&mut ws)).await {
                                Ok(Ok(()) | Err(Error::ConnectionClosed)) => {}
                                Ok(Err(e)) => fail(format!("close handshake: {e}")),
                                Err(_) => fail(format!(
                                    "close handshake: no close within {CLOSE_LIMIT:?}"
                                )),
                            }
                        }
                    });
                })
                .expect("spawn thread")
        })
        .collect();

    barrier.wait(); // all connected
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    deadline.set(t0 + duration).expect("set once");
    barrier.wait(); // start
    barrier.wait(); // every loop has stopped
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    barrier.wait(); // measured: close
    for h in handles {
        h.join()
            .map_err(|_| "a client thread panicked".to_string())?;
    }
    if failed.load(Ordering::Relaxed) {
        return Err("the run failed (see above)".into());
    }
    println!(
        "{{\"client\":\"tokio-tungstenite\",\"conns\":{conns},\"size\":{size},\"messages\":{},\"seconds\":{seconds:.3},\"cpu_seconds\":{cpu:.4}}}",
        messages.load(Ordering::Relaxed)
    );
    Ok(())
}

/// One connection's loop: message, echo, until `until`; returns the connection
/// and the number of echoes.
async fn closed_loop(mut ws: Ws, payload: Bytes, until: Instant) -> Result<(Ws, u64), String> {
    let size = payload.len();
    let mut n = 0u64;
    while Instant::now() < until {
        ws.send(Message::Binary(payload.clone()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        // Pings (answered by tungstenite) and pongs may come in between; the
        // timer around the loop bounds the wait.
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if b.len() == size => break,
                Some(Ok(Message::Binary(b))) => {
                    return Err(format!("echo of {} bytes for a message of {size}", b.len()))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => return Err(format!("unexpected {other:?} instead of the echo")),
                Some(Err(e)) => return Err(format!("waiting for the echo: {e}")),
                None => return Err("the server closed the connection".into()),
            }
        }
        n += 1;
    }
    Ok((ws, n))
}

/// The close handshake: our close frame, then reading until the server's.
async fn close(ws: &mut Ws) -> Result<(), Error> {
    ws.close(None).await?;
    while let Some(msg) = ws.next().await {
        msg?;
    }
    Ok(())
}

// ------------------------------------------------------------ --autobahn

fn autobahn_mode(url: &str, agent: &str) -> Result<(), String> {
    let base = url.trim_end_matches('/');
    let agent = percent_encode(agent);
    let rt = runtime().map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let count = case_count(&format!("{base}/getCaseCount")).await?;
        eprintln!("{count} cases");
        for case in 1..=count {
            let case_url = format!("{base}/runCase?case={case}&agent={agent}");
            match timeout(CASE_LIMIT, run_case(&case_url)).await {
                Ok(Ok(())) => {}
                // Expected in the fuzzing cases; the server's report judges them.
                Ok(Err(e)) => eprintln!("case {case}: {e}"),
                Err(_) => eprintln!("case {case}: cut off after {CASE_LIMIT:?}"),
            }
        }
        let mut ws = connect(&format!("{base}/updateReports?agent={agent}")).await?;
        // The reports are written when the connection opens; wait for the close.
        timeout(CLOSE_LIMIT, async {
            while let Some(msg) = ws.next().await {
                if msg.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(|_| "updateReports: the server did not close".to_string())?;
        eprintln!("reports updated");
        Ok(())
    })
}

/// getCaseCount: one text message with the count, then the server closes.
async fn case_count(url: &str) -> Result<u32, String> {
    let mut ws = connect(url).await?;
    let mut count = None;
    timeout(CLOSE_LIMIT, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(t)) => count = t.trim().parse::<u32>().ok(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await
    .map_err(|_| "getCaseCount: the server did not close".to_string())?;
    match count {
        Some(n) if n <= MAX_CASES => Ok(n),
        Some(n) => Err(format!("getCaseCount: {n} cases (more than {MAX_CASES})")),
        None => Err("getCaseCount: no count received".into()),
    }
}

/// One case: echo every data message until the server closes.
async fn run_case(url: &str) -> Result<(), String> {
    let mut ws = connect(url).await?;
    loop {
        let error = match ws.next().await {
            None => return Ok(()),
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => match ws.send(msg).await {
                Ok(()) => continue,
                Err(e) => e,
            },
            // Pings, pongs and closes: tungstenite has queued the replies.
            Some(Ok(_)) => continue,
            Some(Err(e)) => e,
        };
        let code = match &error {
            Error::Protocol(_) => Some(CloseCode::Protocol),
            Error::Utf8(_) => Some(CloseCode::Invalid),
            Error::Capacity(_) => Some(CloseCode::Size),
            _ => None,
        };
        if let Some(code) = code {
            // Fail the connection with the code the RFC asks for; the server's
            // close reply is not waited for.
            let frame = CloseFrame {
                code,
                reason: "".into(),
            };
            let _ = timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
        }
        return match error {
            Error::ConnectionClosed | Error::AlreadyClosed => Ok(()),
            e => Err(e.to_string()),
        };
    }
}

/// The agent as a query value: unreserved characters as they are, the rest %XX.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
