//! Ten thousand idle WebSocket connections stay open and served. The clients run in a
//! child process (this test binary again), so neither process needs 20,000 descriptors.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::ws::*;
use common::*;
use netloop::http::Request;
use netloop::ws::{self, Message, WsConn, WsHandler};
use netloop::Server;

const CONNS: usize = 10_000;
const CHILD_ENV: &str = "NETLOOP_WS_IDLE_CHILD";
const TEST_NAME: &str = "ten_thousand_idle_websocket_connections_stay_open";

struct Echo;

impl WsHandler for Echo {
    type State = ();
    fn on_open(&self, _: &mut WsConn<'_>, _: &Request) {}
    fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
        ws.send(msg);
    }
}

#[test]
fn ten_thousand_idle_websocket_connections_stay_open() {
    if let Some(target) = std::env::var_os(CHILD_ENV) {
        return clients(target.to_str().unwrap().parse().unwrap());
    }
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .serve(ws::server(Echo, ws::Config::default()))
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, addr(&server).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the child's output to its end on a thread of its own (the harness writes
    // more after the marker, and a closed pipe would fail it).
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if line.contains("@ready@") {
                let _ = tx.send(());
            }
        }
    });
    ready
        .recv_timeout(PATIENCE * 3)
        .expect("the clients connected and were echoed");
    assert_eq!(server.stats().active, CONNS as u64);
    assert_eq!(server.stats().closed.total(), 0, "none dropped while idle");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(eventually(|| server.stats().active == 0));
    server.shutdown(PATIENCE);
}

/// The child: opens the connections, checks a sample echoes, says so, and holds them
/// until its stdin closes.
fn clients(target: std::net::SocketAddr) {
    raise_fd_limit();
    let mut conns: Vec<_> = (0..CONNS).map(|_| ws_connect(target, "").0).collect();
    for s in conns.iter_mut().step_by(997) {
        send_frame(s, true, TEXT, b"still here");
        assert_eq!(read_data_frame(s).payload, b"still here");
    }
    println!("@ready@");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a valid rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}
