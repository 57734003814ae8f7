//! The client engine under faults: a link black-holed between two network namespaces
//! the test creates (veth, and tc's `blackhole` qdisc, which drops every packet: these
//! kernels have no netem), where only the pong deadline can tell; and a thousand engines on one runtime whose server restarts under them.

mod common;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netloop::http::Request;
use netloop::ws::client::{Backoff, Client, EngineError, EngineState};
use netloop::ws::{self, Message, WsConn, WsHandler};
use netloop::{Server, ServerHandle};

const WAIT: Duration = Duration::from_secs(20);

/// Echoes; counts opens.
struct Echo(Arc<AtomicUsize>);

impl WsHandler for Echo {
    type State = ();
    fn on_open(&self, _ws: &mut WsConn<'_>, _req: &Request) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn on_message(&self, _: &mut (), ws: &mut WsConn<'_>, msg: Message) {
        ws.send(msg);
    }
}

fn serve_at(addr: &str, opens: &Arc<AtomicUsize>) -> ServerHandle {
    Server::builder()
        .pollers(1)
        .listen(addr)
        .serve(ws::server(Echo(opens.clone()), ws::Config::default()))
        .expect("server")
}

fn tcp(server: &ServerHandle) -> SocketAddr {
    match &server.local_addrs()[0] {
        netloop::Addr::Tcp(a) => *a,
        other => panic!("{other:?}"),
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Two network namespaces joined by a veth pair: the client's end 10.78.N.1, the
/// server's 10.78.N.2. Removed on drop.
struct Netns {
    client: String,
    server: String,
    client_dev: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// `None` where namespaces cannot be made here (not root, no `ip`).
    fn create() -> Option<Netns> {
        let tag = std::process::id() % 100_000;
        let net = tag % 250;
        let ns = Netns {
            client: format!("nlc-c{tag}"),
            server: format!("nlc-s{tag}"),
            client_dev: format!("nlc{tag}a"),
        };
        let server_dev = format!("nlc{tag}b");
        if !ip(&["netns", "add", &ns.client]) {
            return None;
        }
        let (c, s) = (ns.client.as_str(), ns.server.as_str());
        let client_addr = format!("10.78.{net}.1/30");
        let server_addr = format!("10.78.{net}.2/30");
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", s],
            vec![
                "link",
                "add",
                &ns.client_dev,
                "type",
                "veth",
                "peer",
                "name",
                &server_dev,
            ],
            vec!["link", "set", &ns.client_dev, "netns", c],
            vec!["link", "set", &server_dev, "netns", s],
            vec!["-n", c, "addr", "add", &client_addr, "dev", &ns.client_dev],
            vec!["-n", s, "addr", "add", &server_addr, "dev", &server_dev],
            vec!["-n", c, "link", "set", &ns.client_dev, "up"],
            vec!["-n", s, "link", "set", &server_dev, "up"],
            vec!["-n", c, "link", "set", "lo", "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
        ];
        for step in steps {
            assert!(ip(&step), "ip {step:?}");
        }
        Some(ns)
    }

    fn server_ip(&self) -> String {
        format!("10.78.{}.2", (std::process::id() % 100_000) % 250)
    }

    /// Runs `f` on a thread inside namespace `name`; threads it starts (a runtime's
    /// pollers) are in it too, and so is every socket they open.
    fn inside<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{name}");
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("the namespace");
            // SAFETY: setns on this thread only, with a namespace file it just opened.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("the namespace thread")
    }

    /// Drops every packet the client's end sends (`loss` true) or none.
    fn blackhole(&self, loss: bool) {
        let action = if loss { "add" } else { "del" };
        let mut args = vec!["netns", "exec", &self.client, "tc", "qdisc", action, "dev"];
        // `del` of the root qdisc restores the default.
        args.push(&self.client_dev);
        args.extend(["root", "blackhole"]);
        let ok = Command::new("ip")
            .args(&args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {args:?}");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.client]);
        ip(&["netns", "del", &self.server]);
    }
}

#[test]
fn a_blackholed_link_trips_the_pong_deadline_and_the_engine_comes_back() {
    let Some(ns) = Netns::create() else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and iproute2)");
        return;
    };
    let opens = Arc::new(AtomicUsize::new(0));
    let o = opens.clone();
    let listen = format!("{}:0", ns.server_ip());
    let server = Netns::inside(&ns.server, move || serve_at(&listen, &o));
    let addr = tcp(&server);
    let client = Netns::inside(&ns.client, || {
        Client::with_runtime(
            Server::builder()
                .pollers(1)
                .connect_timeout(Duration::from_millis(300)),
        )
        .unwrap()
    });
    let read_errors = Arc::new(Mutex::new(Vec::new()));
    let restart_errors = Arc::new(Mutex::new(Vec::new()));
    let (r, re) = (read_errors.clone(), restart_errors.clone());
    let engine = client
        .engine(format!("ws://{addr}/"))
        .config(
            ws::Config::default()
                .ping_interval(Some(Duration::from_millis(100)))
                .pong_timeout(Duration::from_millis(300))
                .close_timeout(Duration::from_millis(300)),
        )
        .backoff(
            Backoff::default()
                .min(Duration::from_millis(20))
                .max(Duration::from_millis(200)),
        )
        .on_read_error(move |_s, e| r.lock().unwrap().push(e.clone()))
        .on_restart_error(move |_s, e, _n| re.lock().unwrap().push(e.clone()))
        .on_message(|_, _| {})
        .start(WAIT)
        .unwrap();
    assert_eq!(opens.load(Ordering::SeqCst), 1);
    ns.blackhole(true);
    // No FIN, no RST, no error: only the missing pong can tell.
    wait_for("the pong deadline", || {
        !read_errors.lock().unwrap().is_empty()
    });
    assert!(matches!(
        read_errors.lock().unwrap()[0],
        EngineError::PongTimeout
    ));
    // Reconnecting into the black hole: connects time out.
    wait_for("a failed restart", || {
        !restart_errors.lock().unwrap().is_empty()
    });
    assert!(
        matches!(&restart_errors.lock().unwrap()[0], EngineError::Connect(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "{:?}",
        restart_errors.lock().unwrap()
    );
    assert_ne!(engine.state(), EngineState::Open);
    ns.blackhole(false);
    assert!(engine.handle().wait_open(WAIT), "back once the link is");
    wait_for("the second session", || engine.stats().sessions == 2);
    assert_eq!(opens.load(Ordering::SeqCst), 2);
    engine.stop(WAIT).unwrap();
    drop(client);
    server.shutdown(Duration::ZERO);
}

#[test]
fn a_thousand_engines_on_one_runtime_all_reconnect_after_a_server_restart() {
    const ENGINES: usize = 1000;
    let opens = Arc::new(AtomicUsize::new(0));
    let server = serve_at("127.0.0.1:0", &opens);
    let addr = tcp(&server);
    let client = Client::start().unwrap();
    let restarted = Arc::new(AtomicUsize::new(0));
    let engines: Vec<_> = (0..ENGINES)
        .map(|_| {
            let restarted = restarted.clone();
            client
                .engine(format!("ws://{addr}/"))
                .backoff(
                    Backoff::default()
                        .min(Duration::from_millis(10))
                        .max(Duration::from_millis(500)),
                )
                .on_open(move |_s, restart| {
                    if restart {
                        restarted.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .on_message(|_, _| {})
                .start(WAIT)
                .expect("opens")
        })
        .collect();
    assert_eq!(opens.load(Ordering::SeqCst), ENGINES);
    server.shutdown(Duration::ZERO);
    wait_for("every engine to notice", || {
        engines.iter().all(|e| e.state() != EngineState::Open)
    });
    let _server = serve_at(&addr.to_string(), &opens);
    wait_for("every engine to reopen", || {
        engines
            .iter()
            .all(|e| e.state() == EngineState::Open && e.stats().sessions == 2)
    });
    assert_eq!(
        restarted.load(Ordering::SeqCst),
        ENGINES,
        "each on_open told"
    );
    assert_eq!(opens.load(Ordering::SeqCst), 2 * ENGINES);
    for e in &engines {
        e.handle().send_text("still there").unwrap();
    }
    let deadline = Instant::now() + WAIT;
    for e in &engines {
        assert!(e
            .stop(deadline.saturating_duration_since(Instant::now()))
            .is_ok());
    }
}
