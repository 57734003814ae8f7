//! The task server and client against `PROTOCOL.md`: the seed's contract (register,
//! task and run functions, OK/ERROR headers, cancel, per-client queries, graceful
//! disconnect, the three timeouts, shutdown), every malformed input of §5 and the bad
//! hellos of §2.3 answered as written, both byte orders, output paced by the output
//! mark, and 10,000 tasks from 100 clients with random cancels.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::eventually;
use netloop::task::client::{ClientError, ClientOptions, TaskClient};
use netloop::task::{
    ByteOrder, Output, ReservedCode, RunError, Task, TaskConfig, TaskError, TaskServer,
};
use netloop::{Bytes, Server, ServerHandle};

const T: Duration = Duration::from_secs(10);
const ECHO: u32 = 1;
const SLEEP: u32 = 2;
const STREAM: u32 = 3;
const CODED: u32 = 4;
const FAILS: u32 = 5;
const BAD_TASK_FN: u32 = 6;
const DONE: u32 = 7;
const INLINE_ECHO: u32 = 9;
const INLINE_CODED: u32 = 10;
const INLINE_FAILS: u32 = 11;

/// A server with the test's task codes; `produced` counts stream chunks made.
fn tasks(config: TaskConfig, produced: Arc<AtomicU64>) -> TaskServer {
    let s = TaskServer::new(config);
    s.register(ECHO, "echo", |req| {
        let p = req.payload().clone();
        Ok(Task::run(move |_| Ok(Output::Bytes(p))))
    })
    .unwrap();
    s.register(SLEEP, "sleep", |req| {
        let ms = u32::from_le_bytes(req.payload()[..4].try_into().unwrap());
        Ok(Task::run(move |ctx| {
            ctx.cancel_token().sleep(Duration::from_millis(ms.into()));
            Ok(Output::Empty)
        })
        .with_data(Arc::new(format!("sleeping {ms} ms"))))
    })
    .unwrap();
    s.register(STREAM, "stream", move |req| {
        let total = u64::from_le_bytes(req.payload()[..8].try_into().unwrap());
        let produced = produced.clone();
        Ok(Task::run(move |ctx| {
            let token = ctx.cancel_token().clone();
            let mut left = total;
            let mut n = 0u8;
            Ok(Output::Stream(Box::new(std::iter::from_fn(move || {
                if left == 0 || token.is_cancelled() {
                    return None;
                }
                let len = left.min(65_536) as usize;
                left -= len as u64;
                n = n.wrapping_add(1);
                produced.fetch_add(1, Ordering::SeqCst);
                Some(Ok(Bytes::from(vec![n; len])))
            }))))
        }))
    })
    .unwrap();
    s.register(CODED, "coded", |_| {
        Ok(Task::run(|_| Err(RunError::Code(42))))
    })
    .unwrap();
    s.register(FAILS, "fails", |_| {
        Ok(Task::run(|_| Err(RunError::Failed("disk on fire".into()))))
    })
    .unwrap();
    s.register(BAD_TASK_FN, "bad", |_| Err(TaskError("no".into())))
        .unwrap();
    s.register(DONE, "done", |_| Ok(Task::done())).unwrap();
    s.register(INLINE_ECHO, "inline echo", |req| {
        let p = req.payload().clone();
        Ok(Task::run_inline(move |_| Ok(Output::Bytes(p))))
    })
    .unwrap();
    s.register(INLINE_CODED, "inline coded", |_| {
        Ok(Task::run_inline(|_| Err(RunError::Code(7))))
    })
    .unwrap();
    s.register(INLINE_FAILS, "inline fails", |_| {
        Ok(Task::run_inline(|_| Err(RunError::Failed("inline".into()))))
    })
    .unwrap();
    s
}

struct Fixture {
    tasks: TaskServer,
    server: ServerHandle,
    addr: SocketAddr,
    runtime: ServerHandle,
    produced: Arc<AtomicU64>,
}

fn fixture(config: TaskConfig) -> Fixture {
    let produced = Arc::new(AtomicU64::new(0));
    let tasks = tasks(config, produced.clone());
    let server = Server::builder()
        .pollers(1)
        .listen("127.0.0.1:0")
        .serve(tasks.clone())
        .unwrap();
    let addr = match &server.local_addrs()[0] {
        netloop::Addr::Tcp(a) => *a,
        other => panic!("{other:?}"),
    };
    Fixture {
        tasks,
        server,
        addr,
        runtime: Server::builder().pollers(1).start().unwrap(),
        produced,
    }
}

impl Fixture {
    fn client(&self, order: ByteOrder) -> TaskClient {
        TaskClient::connect(
            &self.runtime.dialer(),
            self.addr,
            ClientOptions::default().byte_order(order).name("test"),
        )
        .unwrap()
    }
}

fn ms(n: u32) -> Bytes {
    Bytes::copy_from_slice(&n.to_le_bytes())
}

#[test]
fn registering_replaces_and_reserved_codes_are_refused() {
    let s = TaskServer::new(TaskConfig::default());
    s.register(9, "a", |_| Ok(Task::done())).unwrap();
    s.register(9, "b", |_| Ok(Task::done())).unwrap();
    s.register(3, "c", |_| Ok(Task::done())).unwrap();
    assert_eq!(s.registered_task_codes(), [3, 9]);
    assert_eq!(
        &*s.task_fn(9).unwrap().1,
        "b",
        "the second registration replaced the first"
    );
    assert_eq!(
        s.register(0xFFFF_FF00, "x", |_| Ok(Task::done())),
        Err(ReservedCode(0xFFFF_FF00))
    );
    assert!(s.task_fn(0xFFFF_FF00).is_none());
}

#[test]
fn tasks_are_answered_in_both_byte_orders() {
    let f = fixture(TaskConfig::default());
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let c = f.client(order);
        assert_eq!(c.byte_order(), order);
        let big = Bytes::from((0..300_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        assert_eq!(
            c.call(ECHO, big.clone(), T).unwrap(),
            big,
            "a payload over a chunk"
        );
        assert_eq!(c.call(ECHO, Bytes::new(), T).unwrap(), Bytes::new());
        assert_eq!(
            c.call(DONE, Bytes::new(), T).unwrap(),
            Bytes::new(),
            "no run function: OK, END"
        );
        // A streamed output, chunk by chunk, in order.
        let p = c
            .submit(STREAM, Bytes::copy_from_slice(&200_000u64.to_le_bytes()))
            .unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = p.next_chunk(T).unwrap() {
            got.push(chunk);
        }
        assert_eq!(
            got.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [65_536, 65_536, 65_536, 3_392]
        );
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8 + 1)));
        assert_eq!(
            c.call(CODED, Bytes::new(), T),
            Err(ClientError::Server(42)),
            "§4.2"
        );
        assert_eq!(
            c.call(77, Bytes::new(), T),
            Err(ClientError::Server(255)),
            "§4.2: unknown code"
        );
        assert!(c.ping(T).is_ok(), "§4.5");
        assert_eq!(c.in_flight(), 0);
    }
    let clients = f.tasks.clients();
    assert_eq!(clients.len(), 2);
    assert_eq!(
        clients.iter().map(|c| c.byte_order()).collect::<Vec<_>>(),
        [ByteOrder::Little, ByteOrder::Big],
        "oldest first"
    );
    let shown = clients[0].to_string();
    assert!(
        shown.contains("->") && shown.ends_with(&f.addr.to_string()),
        "{shown}"
    );
    assert_eq!(clients[0].name(), "test");
}

#[test]
fn replies_come_in_any_order_and_cancels_end_tasks_once() {
    let f = fixture(TaskConfig::default());
    let c = f.client(ByteOrder::Little);
    let slow = c.submit(SLEEP, ms(60_000)).unwrap();
    let fast = c.submit(ECHO, Bytes::from_static(b"quick")).unwrap();
    assert_eq!(
        fast.wait(T).unwrap(),
        Bytes::from_static(b"quick"),
        "answered before the slow one"
    );
    // The server's view of the client while the slow task runs.
    assert!(eventually(|| f.tasks.running_tasks() == 1));
    let sc = f.tasks.clients().pop().unwrap();
    assert_eq!(sc.tasks(), [slow.id()]);
    let meta = sc.metadata(slow.id()).unwrap();
    assert_eq!(
        (meta.code, &*meta.name, meta.payload_len),
        (SLEEP, "sleep", 4)
    );
    let data = sc.run_data(slow.id()).unwrap();
    assert_eq!(data.downcast_ref::<String>().unwrap(), "sleeping 60000 ms");
    slow.cancel();
    let id = slow.id();
    assert_eq!(slow.wait(T), Err(ClientError::Cancelled), "§4.3");
    assert!(
        sc.run_data(id).is_none(),
        "run data goes with the run function"
    );
    sc.cancel(id);
    sc.cancel(12345);
    // Several codes, assigned in order; cancel_all.
    let a = c.submit(SLEEP, ms(60_000)).unwrap();
    let b = c
        .submit(STREAM, Bytes::copy_from_slice(&u64::MAX.to_le_bytes()))
        .unwrap();
    let d = c.submit(SLEEP, ms(60_000)).unwrap();
    assert!(eventually(|| sc.tasks().len() == 3));
    let mut ids = vec![a.id(), b.id(), d.id()];
    ids.sort_unstable();
    assert_eq!(sc.tasks(), ids, "ascending");
    assert_eq!(sc.task_codes(), [SLEEP, STREAM, SLEEP], "in assigned order");
    assert_eq!(sc.tasks_with_task_code(SLEEP), [a.id(), d.id()]);
    c.cancel_all();
    assert_eq!(a.wait(T), Err(ClientError::Cancelled));
    assert_eq!(d.wait(T), Err(ClientError::Cancelled));
    loop {
        match b.next_chunk(T) {
            Ok(Some(_)) => continue,
            other => {
                assert_eq!(
                    other,
                    Err(ClientError::Cancelled),
                    "a stream ends CANCELLED"
                );
                break;
            }
        }
    }
    assert!(eventually(
        || f.tasks.running_tasks() == 0 && sc.tasks().is_empty()
    ));
    assert_eq!(
        c.call(ECHO, Bytes::from_static(b"still fine"), T)
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn serious_failures_drop_the_client_with_their_reason() {
    let f = fixture(TaskConfig::default());
    for (code, reason) in [(BAD_TASK_FN, 3u8), (FAILS, 4), (INLINE_FAILS, 4)] {
        let c = f.client(ByteOrder::Big);
        let slow = c.submit(SLEEP, ms(60_000)).unwrap();
        let err = c.call(code, Bytes::new(), T).unwrap_err();
        assert!(
            matches!(&err, ClientError::Disconnected { reason: Some(r), .. } if *r == reason),
            "{code}: {err:?}"
        );
        assert!(
            matches!(slow.wait(T), Err(ClientError::Disconnected { .. })),
            "dropped with it"
        );
    }
    assert!(eventually(
        || f.tasks.num_clients() == 0 && f.tasks.running_tasks() == 0
    ));
    assert_eq!(f.tasks.metrics().failures.get(), 3);
}

#[test]
fn a_graceful_disconnect_stops_reading_and_lets_tasks_finish() {
    let f = fixture(TaskConfig::default());
    let c = f.client(ByteOrder::Little);
    let running = c.submit(SLEEP, ms(300)).unwrap();
    assert!(eventually(|| f.tasks.running_tasks() == 1));
    let sc = f.tasks.clients().pop().unwrap();
    sc.disconnect(Duration::from_secs(30));
    sc.disconnect(Duration::from_secs(20));
    // Not read any more: this task is never answered.
    let ignored = c.submit(ECHO, Bytes::from_static(b"late"));
    assert_eq!(
        running.wait(T),
        Ok(Bytes::new()),
        "the running task finished"
    );
    if let Ok(p) = ignored {
        let e = p.wait(T).unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Disconnected {
                    reason: Some(0),
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert!(
        eventually(|| c.closed().is_some()),
        "closed once no task was left"
    );
    assert!(eventually(|| f.tasks.num_clients() == 0));
    // A disconnect's time runs out with a task still running: it is cut off.
    let c = f.client(ByteOrder::Little);
    let stuck = c.submit(SLEEP, ms(60_000)).unwrap();
    assert!(eventually(|| f.tasks.running_tasks() == 1));
    f.tasks.disconnect(Duration::from_millis(100));
    assert!(matches!(
        stuck.wait(T),
        Err(ClientError::Disconnected {
            reason: Some(0),
            ..
        })
    ));
    assert!(
        eventually(|| f.tasks.running_tasks() == 0),
        "and cancelled, not leaked"
    );
}

#[test]
fn the_wait_read_and_write_timeouts() {
    let f = fixture(
        TaskConfig::default()
            .wait_timeout(Duration::from_millis(200))
            .read_timeout(Duration::from_millis(200))
            .write_timeout(Duration::from_millis(300)),
    );
    // Waiting for a task: GOODBYE 1 (with a task running, the wait does not count).
    let c = f.client(ByteOrder::Little);
    assert_eq!(
        c.call(SLEEP, ms(500), T),
        Ok(Bytes::new()),
        "a long task is not a wait"
    );
    assert!(eventually(|| c.closed().is_some()));
    let e = c.closed().unwrap();
    assert!(
        matches!(&e, ClientError::Disconnected { reason: Some(1), text } if text == "timeout waiting for task"),
        "{e:?}"
    );
    // Reading: half a frame, then nothing.
    let mut raw = raw_hello(f.addr, b'L');
    raw.write_all(&[0x01, 0, 0]).unwrap();
    assert!(read_all(&mut raw).is_empty(), "closed with no answer");
    // Writing: a client that does not read a huge output.
    let mut raw = raw_hello(f.addr, b'L');
    let mut task = vec![0x01];
    task.extend_from_slice(&1u32.to_le_bytes());
    task.extend_from_slice(&STREAM.to_le_bytes());
    task.extend_from_slice(&8u32.to_le_bytes());
    task.extend_from_slice(&u64::MAX.to_le_bytes());
    raw.write_all(&task).unwrap();
    assert!(eventually(
        || f.tasks.num_clients() == 0 || f.produced.load(Ordering::SeqCst) > 0
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        eventually(|| f.tasks.running_tasks() == 0),
        "the stalled stream ended"
    );
    let produced = f.produced.load(Ordering::SeqCst) * 65_536;
    assert!(
        produced < 64 << 20,
        "paced by the output mark, not buffered: {produced} bytes made"
    );
    drop(raw);
}

/// A raw connection past the hello (`order` b'L' or b'B'), welcome read.
fn raw_hello(addr: SocketAddr, order: u8) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let version = if order == b'L' { [1, 0] } else { [0, 1] };
    s.write_all(&[b'N', b'L', b'T', b'K', order, version[0], version[1], 0])
        .unwrap();
    let mut welcome = [0u8; 7];
    s.read_exact(&mut welcome).unwrap();
    assert_eq!(&welcome[..5], b"NLTK\x00", "§2.2: accepted");
    s
}

fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    all
}

/// The GOODBYE a raw connection got: (reason, text).
fn goodbye(bytes: &[u8]) -> (u8, String) {
    let at = bytes.iter().position(|&b| b == 0x07).expect("a GOODBYE");
    let len = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
    (
        bytes[at + 1],
        String::from_utf8_lossy(&bytes[at + 4..at + 4 + len]).into_owned(),
    )
}

#[test]
fn malformed_input_is_answered_as_protocol_md_says() {
    let f = fixture(TaskConfig::default().max_payload(1000));
    let task = |id: u32, code: u32, len: u32| {
        let mut t = vec![0x01];
        t.extend_from_slice(&id.to_le_bytes());
        t.extend_from_slice(&code.to_le_bytes());
        t.extend_from_slice(&len.to_le_bytes());
        t
    };
    let mut sleep = task(5, SLEEP, 4);
    sleep.extend_from_slice(&60_000u32.to_le_bytes());
    let cases: [(&str, Vec<u8>); 5] = [
        ("5.1", vec![0x42]),
        ("5.2", task(1, ECHO, 1001)),
        ("5.3", task(1, 0xFFFF_FF07, 0)),
        ("5.4", [sleep.clone(), sleep.clone()].concat()),
        ("5.5", vec![0x05, 0x04]),
    ];
    for (rule, bytes) in cases {
        let mut raw = raw_hello(f.addr, b'L');
        raw.write_all(&bytes).unwrap();
        let (why, text) = goodbye(&read_all(&mut raw));
        assert_eq!(why, 2, "{rule}: reason 2");
        assert!(text.contains(&format!("§{rule}")), "{rule}: {text}");
    }
    // §2.3: bad hellos.
    let answer = |hello: &[u8]| {
        let mut s = TcpStream::connect(f.addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(hello).unwrap();
        read_all(&mut s)
    };
    assert!(
        answer(b"GET / HTTP/1.1\r\n\r\n").is_empty(),
        "not this protocol: no answer"
    );
    assert_eq!(
        &answer(b"NLTKX\x01\x00\x00")[..5],
        b"NLTK\x02",
        "bad byte order: status 2"
    );
    assert_eq!(
        &answer(b"NLTKL\x00\x00\x00")[..5],
        b"NLTK\x01",
        "version 0: status 1"
    );
    assert_eq!(
        &answer(b"NLTKL\x01\x00\x02\xff\xfe")[..5],
        b"NLTK\x02",
        "a name not UTF-8"
    );
    assert!(eventually(
        || f.tasks.running_tasks() == 0 && f.tasks.num_clients() == 0
    ));
}

#[test]
fn handle_connection_serves_a_connection_its_own_handshake_accepted() {
    let produced = Arc::new(AtomicU64::new(0));
    let tasks = tasks(TaskConfig::default(), produced);
    let seen_args = Arc::new(Mutex::new(None));
    let sa = seen_args.clone();
    tasks
        .register(8, "args", move |req| {
            *sa.lock().unwrap() = req.args().downcast_ref::<String>().cloned();
            Ok(Task::done())
        })
        .unwrap();
    let t2 = tasks.clone();
    // The handshake: one byte, 'L' or 'B'; then the task protocol without its hello.
    let server = Server::builder()
        .pollers(1)
        .listen("127.0.0.1:0")
        .serve(netloop::handler_fn(move |conn| {
            let order = match conn.input().as_slice()[0] {
                b'B' => ByteOrder::Big,
                _ => ByteOrder::Little,
            };
            conn.input().skip(1);
            t2.handle_connection(conn, order, Arc::new(String::from("custom")));
        }))
        .unwrap();
    let mut s = TcpStream::connect(server.local_addrs()[0].to_string()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut frame = vec![b'B', 0x01];
    frame.extend_from_slice(&9u32.to_be_bytes());
    frame.extend_from_slice(&ECHO.to_be_bytes());
    frame.extend_from_slice(&3u32.to_be_bytes());
    frame.extend_from_slice(b"abc");
    s.write_all(&frame).unwrap();
    let mut reply = [0u8; 5 + 9 + 3 + 5];
    s.read_exact(&mut reply).unwrap();
    let mut want = vec![0x01, 0, 0, 0, 9, 0x03, 0, 0, 0, 9, 0, 0, 0, 3];
    want.extend_from_slice(b"abc");
    want.extend_from_slice(&[0x04, 0, 0, 0, 9]);
    assert_eq!(reply.to_vec(), want, "OK, DATA, END in big-endian (§4.1)");
    let mut args_task = vec![0x01];
    args_task.extend_from_slice(&10u32.to_be_bytes());
    args_task.extend_from_slice(&8u32.to_be_bytes());
    args_task.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&args_task).unwrap();
    let mut done = [0u8; 10];
    s.read_exact(&mut done).unwrap();
    assert_eq!(
        seen_args.lock().unwrap().as_deref(),
        Some("custom"),
        "the connection's args"
    );
    assert_eq!(tasks.clients()[0].name(), "", "no hello, no name");
}

#[test]
fn ten_thousand_tasks_from_a_hundred_clients_with_random_cancels() {
    // Sixteen workers: a third of the tasks sleep (up to 9 ms each), which two workers
    // would take over ten seconds to get through.
    let f = fixture(TaskConfig::default().workers(16));
    let clients: Vec<TaskClient> = (0..100)
        .map(|i| {
            f.client(if i % 2 == 0 {
                ByteOrder::Little
            } else {
                ByteOrder::Big
            })
        })
        .collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (answered, cancelled) = (answered.clone(), cancelled.clone());
            std::thread::spawn(move || {
                let mut seed = i as u64 * 2654435761 + 1;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let pending: Vec<_> = (0..100)
                    .map(|_| {
                        let r = next();
                        let p = if r % 3 == 0 {
                            c.submit(SLEEP, ms((r % 10) as u32)).unwrap()
                        } else {
                            c.submit(ECHO, Bytes::from(vec![r as u8; (r % 2000) as usize]))
                                .unwrap()
                        };
                        if r % 5 == 0 {
                            p.cancel();
                        }
                        p
                    })
                    .collect();
                for p in pending {
                    match p.wait(T) {
                        Ok(_) => answered.fetch_add(1, Ordering::SeqCst),
                        Err(ClientError::Cancelled) => cancelled.fetch_add(1, Ordering::SeqCst),
                        Err(e) => panic!("{e:?}"),
                    };
                }
                assert_eq!(c.in_flight(), 0);
                c
            })
        })
        .collect();
    let clients: Vec<TaskClient> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        answered.load(Ordering::SeqCst) + cancelled.load(Ordering::SeqCst),
        10_000
    );
    assert!(cancelled.load(Ordering::SeqCst) > 0);
    assert!(
        eventually(|| f.tasks.running_tasks() == 0),
        "no leaked task entries"
    );
    assert!(f.tasks.clients().iter().all(|c| c.tasks().is_empty()));
    let m = f.tasks.metrics();
    assert_eq!(m.received.get(), 10_000);
    assert_eq!(
        (m.ok.get() + m.errors.get() + m.cancelled.get()) as usize,
        10_000,
        "each answered exactly once"
    );
    assert_eq!(m.cancelled.get() as usize, cancelled.load(Ordering::SeqCst));
    drop(clients);
}

#[test]
fn shutdown_lets_running_tasks_finish_until_the_deadline_then_cancels() {
    let f = fixture(TaskConfig::default());
    let c = f.client(ByteOrder::Little);
    let short = c.submit(SLEEP, ms(100)).unwrap();
    let long = c.submit(SLEEP, ms(60_000)).unwrap();
    assert!(eventually(|| f.tasks.running_tasks() == 2));
    let report = f.tasks.shutdown(&f.server, Duration::from_millis(800));
    assert_eq!(
        (report.clients, report.finished, report.cancelled),
        (1, 1, 1)
    );
    assert_eq!(short.wait(T), Ok(Bytes::new()));
    assert!(long.wait(T).is_err());
    assert!(eventually(|| f.tasks.running_tasks() == 0));
}

#[test]
fn a_task_cut_off_by_its_clients_earlier_disconnect_deadline_counts_as_cancelled_by_the_shutdown() {
    let f = fixture(TaskConfig::default());
    let c = f.client(ByteOrder::Little);
    let short = c.submit(SLEEP, ms(100)).unwrap();
    let long = c.submit(SLEEP, ms(60_000)).unwrap();
    assert!(eventually(|| f.tasks.running_tasks() == 2));
    // The client's own deadline comes first and stays (the shorter one is kept): its
    // timer, not the shutdown, cancels the long task, before the shutdown's deadline.
    f.tasks.disconnect(Duration::from_millis(300));
    let report = f.tasks.shutdown(&f.server, Duration::from_secs(20));
    assert_eq!(
        (report.clients, report.finished, report.cancelled),
        (1, 1, 1)
    );
    assert_eq!(short.wait(T), Ok(Bytes::new()));
    assert!(long.wait(T).is_err());
}

#[cfg(feature = "tls")]
#[test]
fn tasks_run_over_tls_and_an_untrusted_server_is_refused_at_connect() {
    let pki = common::tls::Pki::new(&["localhost"]);
    let produced = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .pollers(1)
        .listen("127.0.0.1:0")
        .tls(pki.server())
        .serve(tasks(TaskConfig::default(), produced))
        .unwrap();
    let addr = server.local_addrs()[0].as_tcp().unwrap();
    let runtime = Server::builder().pollers(1).start().unwrap();
    let c = TaskClient::connect(
        &runtime.dialer().tls(pki.client(), "localhost"),
        addr,
        ClientOptions::default().name("tls"),
    )
    .unwrap();
    let big = Bytes::from((0..300_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    assert_eq!(c.call(ECHO, big.clone(), T).unwrap(), big);
    // A streamed output of several chunks, each its own TLS records.
    let stream = c
        .submit(STREAM, Bytes::copy_from_slice(&200_000u64.to_le_bytes()))
        .unwrap();
    let mut total = 0;
    while let Some(chunk) = stream.next_chunk(T).unwrap() {
        total += chunk.len();
    }
    assert_eq!(total, 200_000);
    // A cancelled sleep ends exactly once, as over plain TCP.
    let sleeping = c.submit(SLEEP, ms(60_000)).unwrap();
    sleeping.cancel();
    assert!(matches!(sleeping.wait(T), Err(ClientError::Cancelled)));

    let stranger = common::tls::Pki::new(&["localhost"]);
    let refused = TaskClient::connect(
        &runtime.dialer().tls(stranger.client(), "localhost"),
        addr,
        ClientOptions::default(),
    );
    let Err(err) = refused else {
        panic!("the server's certificate is not trusted");
    };
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    server.shutdown(T);
    runtime.shutdown(T);
}
