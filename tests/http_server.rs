//! The HTTP/1.1 layer: exact plaintext responses, keep-alive, pipelining, bodies that
//! arrive in pieces, chunked bodies, `100 Continue`, `Connection: close`, HTTP/1.0, HEAD,
//! the 400/413/414/417/431/501 answers for requests it will not serve, and its deadlines.
//! (Hostile peers in numbers: `tests/http_hostile.rs`.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use netloop::http::{Http, Request, Response};

const DATE_LINE_LEN: usize = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n".len();

fn plaintext(_req: &Request, res: &mut Response<'_>) {
    res.header("Content-Type", "text/plain")
        .body(b"Hello, World!");
}

/// Echoes method, path, a header and the body: shows what the service saw.
fn inspect(req: &Request, res: &mut Response<'_>) {
    let mut out = format!(
        "{} {} 1.{} x-test={:?} body=",
        req.method(),
        req.path(),
        req.minor_version(),
        req.header("X-Test")
            .map(|v| String::from_utf8_lossy(v).into_owned())
    )
    .into_bytes();
    out.extend_from_slice(req.body());
    res.header("Content-Type", "text/plain").body(&out);
}

/// Reads one response (head + Content-Length body) and returns it with the Date value
/// blanked out, so responses compare byte for byte.
fn read_response(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    let date_at = head.find("Date: ").expect("Date header");
    let date = &head[date_at + 6..date_at + DATE_LINE_LEN - 2];
    assert!(httpdate::parse_http_date(date).is_ok(), "bad Date {date:?}");
    let blanked = format!(
        "{}Date: *{}",
        &head[..date_at],
        &head[date_at + DATE_LINE_LEN - 2..]
    );
    blanked + &String::from_utf8(body).unwrap()
}

const HELLO: &str = "HTTP/1.1 200 OK\r\nServer: netloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: *\r\n\r\nHello, World!";

#[test]
fn plaintext_answers_the_exact_bytes_on_a_kept_alive_connection() {
    for mode in modes() {
        let server = serve(mode, 1, Http::new(plaintext));
        let mut s = connect(addr(&server));
        for _ in 0..3 {
            s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(read_response(&mut s), HELLO, "{mode:?}");
        }
        assert_eq!(server.stats().active, 1, "kept alive");
        server.shutdown(PATIENCE);
    }
}

#[test]
fn sixteen_pipelined_requests_get_sixteen_responses_in_order() {
    for mode in modes() {
        let server = serve(mode, 1, Http::new(inspect));
        let mut s = connect(addr(&server));
        let burst: String = (0..16)
            .map(|i| format!("GET /r{i} HTTP/1.1\r\nHost: x\r\n\r\n"))
            .collect();
        s.write_all(burst.as_bytes()).unwrap();
        for i in 0..16 {
            let r = read_response(&mut s);
            assert!(
                r.ends_with(&format!("GET /r{i} 1.1 x-test=None body=")),
                "{mode:?}: {r}"
            );
        }
        server.shutdown(PATIENCE);
    }
}

#[test]
fn a_body_split_across_writes_is_delivered_whole() {
    for mode in modes() {
        let server = serve(mode, 1, Http::new(inspect));
        let mut s = connect(addr(&server));
        let body = "x".repeat(5000);
        let req = format!(
            "POST /up HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for piece in req.as_bytes().chunks(777) {
            s.write_all(piece).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let r = read_response(&mut s);
        assert!(
            r.ends_with(&format!("POST /up 1.1 x-test=Some(\"yes\") body={body}")),
            "{mode:?}"
        );
        server.shutdown(PATIENCE);
    }
}

#[test]
fn connection_close_and_http_1_0_close_after_the_response() {
    for mode in modes() {
        let server = serve(mode, 1, Http::new(plaintext));
        for req in [
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
        ] {
            let mut s = connect(addr(&server));
            s.write_all(req.as_bytes()).unwrap();
            let all = String::from_utf8(read_to_close(&mut s)).unwrap();
            assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 1, "{mode:?}: {all}");
            assert!(all.contains("Connection: close\r\n"), "{all}");
        }
        let mut s = connect(addr(&server));
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        read_response(&mut s);
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        read_response(&mut s);
        server.shutdown(PATIENCE);
    }
}

#[test]
fn head_gets_the_headers_without_the_body() {
    let server = serve(netloop::Dispatch::Inline, 1, Http::new(plaintext));
    let mut s = connect(addr(&server));
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).contains("Content-Length: 13\r\n"));
    // The next bytes are the GET's response, not a body for the HEAD.
    assert_eq!(read_response(&mut s), HELLO);
    server.shutdown(PATIENCE);
}

/// A service as a plain function pointer, so differently configured layers share a type.
type Plain = fn(&Request, &mut Response<'_>);

/// Sends `request` and returns everything until the server closes.
fn refused(http: Http<Plain>, request: &[u8]) -> String {
    let server = serve(netloop::Dispatch::Inline, 1, http);
    let mut s = connect(addr(&server));
    let _ = s.write_all(request);
    let all = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    server.shutdown(PATIENCE);
    all
}

#[test]
fn requests_it_will_not_serve_get_a_clear_status_and_a_close() {
    let plain: Plain = plaintext;
    let too_many: String = (0..70).map(|i| format!("H{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, &str, Http<Plain>)> = vec![
        (
            b"GARBAGE\r\n\r\n".to_vec(),
            "400 Bad Request",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
            "400 Bad Request",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            "501 Not Implemented",
            Http::new(plain),
        ),
        (
            // CL.TE smuggling: a front end that believes the length would pass "0\r\n\r\nG".
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"
                .to_vec(),
            "400 Bad Request",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            "400 Bad Request",
            Http::new(plain),
        ),
        (
            b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n".to_vec(),
            "400 Bad Request",
            Http::new(plain),
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000)).into_bytes(),
            "414 URI Too Long",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx".to_vec(),
            "417 Expectation Failed",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d1\r\n".to_vec(),
            "413 Payload Too Large",
            Http::new(plain).max_body_bytes(2000),
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\n{too_many}\r\n").into_bytes(),
            "431 Request Header Fields Too Large",
            Http::new(plain),
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(9000)).into_bytes(),
            "431 Request Header Fields Too Large",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n".to_vec(),
            "413 Payload Too Large",
            Http::new(plain).max_body_bytes(1000),
        ),
    ];
    for (request, status, http) in cases {
        let all = refused(http, &request);
        assert!(
            all.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{:?} got {all:?}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
        assert!(all.contains("Connection: close\r\n"), "{all}");
    }
}

#[test]
fn a_header_with_cr_lf_is_refused_and_never_reaches_the_wire() {
    let server = serve(
        netloop::Dispatch::Inline,
        1,
        Http::new(|_req: &Request, res: &mut Response<'_>| {
            res.header("X-Evil", "a\r\nSet-Cookie: x").body(b"no");
        }),
    );
    let mut s = connect(addr(&server));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let all = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    assert!(!all.contains("Set-Cookie"), "{all}");
    assert!(eventually(|| server.stats().closed.panic == 1));
    server.shutdown(PATIENCE);
}

#[test]
fn chunked_bodies_are_decoded_in_one_chunk_or_many_and_split_anywhere() {
    for mode in modes() {
        let server = serve(mode, 1, Http::new(inspect));
        let mut s = connect(addr(&server));
        let one = "POST /one HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        s.write_all(one.as_bytes()).unwrap();
        assert!(read_response(&mut s).ends_with("POST /one 1.1 x-test=None body=hello"));
        // Several chunks with an extension and trailers, written a few bytes at a time,
        // then a pipelined request right behind it.
        let many =
            "POST /many HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Test: t\r\n\r\n\
                    3;ext=\"a b\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n\
                    GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
        for piece in many.as_bytes().chunks(7) {
            s.write_all(piece).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            read_response(&mut s)
                .ends_with("POST /many 1.1 x-test=Some(\"t\") body=abc0123456789abcdef"),
            "{mode:?}"
        );
        assert!(read_response(&mut s).ends_with("GET /after 1.1 x-test=None body="));
        // An empty chunked body.
        s.write_all(b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .unwrap();
        assert!(read_response(&mut s).ends_with("POST /e 1.1 x-test=None body="));
        server.shutdown(PATIENCE);
    }
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    for chunked in [false, true] {
        let http = Http::new(inspect);
        let metrics = http.metrics();
        let server = serve(netloop::Dispatch::Inline, 1, http);
        let mut s = connect(addr(&server));
        let framing = if chunked {
            "Transfer-Encoding: chunked"
        } else {
            "Content-Length: 4"
        };
        s.write_all(
            format!("PUT /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n{framing}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        // The client waits for the interim answer before it sends the body.
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let mut got = vec![0u8; interim.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, interim);
        let body: &[u8] = if chunked {
            b"4\r\ndata\r\n0\r\n\r\n"
        } else {
            b"data"
        };
        s.write_all(body).unwrap();
        assert!(read_response(&mut s).ends_with("PUT /c 1.1 x-test=None body=data"));
        assert_eq!(
            metrics.snapshot().get(netloop::http::HttpEvent::Continue),
            1
        );
        server.shutdown(PATIENCE);
    }
}

/// How long past a deadline a close may come: timers have a 1 ms resolution, but a test
/// machine may be busy.
const MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Sends `first`, then waits for the server to answer and close; returns what it sent
/// and how long after `first` the close came.
fn answer_and_close(addr: std::net::SocketAddr, first: &[u8]) -> (String, std::time::Duration) {
    // Timed from before the connect: the server's deadlines start when it accepts, which
    // may come before `connect` returns here.
    let start = std::time::Instant::now();
    let mut s = connect(addr);
    s.write_all(first).unwrap();
    let all = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    (all, start.elapsed())
}

#[test]
fn a_trickled_head_gets_408_at_the_head_deadline_not_after_the_last_byte() {
    use netloop::http::HttpEvent;
    let head_timeout = std::time::Duration::from_millis(400);
    let http = Http::new(plaintext as Plain).head_timeout(head_timeout);
    let metrics = http.metrics();
    let server = serve(netloop::Dispatch::Inline, 1, http);
    let mut s = connect(addr(&server));
    let start = std::time::Instant::now();
    // A byte every 50 ms: each read is progress, the head never completes.
    let trickle = std::thread::spawn({
        let mut w = s.try_clone().unwrap();
        move || {
            for &b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
                .iter()
                .chain([b'a'; 200].iter())
            {
                if w.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    });
    let all = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    let took = start.elapsed();
    assert!(all.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{all}");
    assert!(took >= head_timeout, "closed after {took:?}");
    assert!(took < head_timeout + MARGIN, "closed after {took:?}");
    assert_eq!(metrics.snapshot().get(HttpEvent::HeadTimeout), 1);
    trickle.join().unwrap();
    server.shutdown(PATIENCE);
}

#[test]
fn a_stalled_body_gets_408_and_a_steady_one_is_served() {
    use netloop::http::HttpEvent;
    let http = Http::new(inspect as Plain)
        .body_timeout(std::time::Duration::from_millis(300))
        .body_min_rate(1000);
    let metrics = http.metrics();
    let server = serve(netloop::Dispatch::Inline, 1, http);
    // Declares 100 bytes, sends 10, stops.
    let (all, took) = answer_and_close(
        addr(&server),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    );
    assert!(all.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{all}");
    // 300 ms of grace plus 10 ms for the 10 bytes at 1000 B/s.
    assert!(took >= std::time::Duration::from_millis(310), "{took:?}");
    assert!(
        took < std::time::Duration::from_millis(310) + MARGIN,
        "{took:?}"
    );
    assert_eq!(metrics.snapshot().get(HttpEvent::BodyTimeout), 1);
    // A body that keeps coming faster than the minimum rate outlives the grace period:
    // 2000 bytes at ~20 kB/s take ~100 ms past a 300 ms grace; each byte buys 1 ms.
    let mut s = connect(addr(&server));
    s.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(250));
    for piece in [b'z'; 2000].chunks(100) {
        s.write_all(piece).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(read_response(&mut s).ends_with(&"z".repeat(2000)));
    assert_eq!(metrics.snapshot().get(HttpEvent::BodyTimeout), 1);
    server.shutdown(PATIENCE);
}

#[test]
fn idle_connections_are_closed_at_the_keep_alive_deadline_and_silent_new_ones_at_the_head_deadline()
{
    use netloop::http::HttpEvent;
    let keep_alive = std::time::Duration::from_millis(300);
    let head = std::time::Duration::from_millis(500);
    let http = Http::new(plaintext as Plain)
        .keep_alive_timeout(keep_alive)
        .head_timeout(head);
    let metrics = http.metrics();
    let server = serve(netloop::Dispatch::Inline, 1, http);
    // After a response: closed without an answer once the keep-alive deadline passes.
    let mut s = connect(addr(&server));
    // Timed from before the request: the deadline runs from the server's write, which
    // comes before the response is read here (under load, long before).
    let start = std::time::Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s), HELLO);
    assert!(read_to_close(&mut s).is_empty());
    let took = start.elapsed();
    assert!(took >= keep_alive && took < keep_alive + MARGIN, "{took:?}");
    // A new connection that never sends: the head deadline.
    let (all, took) = answer_and_close(addr(&server), b"");
    assert!(all.is_empty(), "{all}");
    assert!(took >= head && took < head + MARGIN, "{took:?}");
    // Requests spaced closer than the deadline keep a connection open past it.
    let mut s = connect(addr(&server));
    for _ in 0..4 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s), HELLO);
        std::thread::sleep(keep_alive / 2);
    }
    assert_eq!(metrics.snapshot().get(HttpEvent::IdleTimeout), 2);
    server.shutdown(PATIENCE);
}

#[test]
fn a_peer_that_stops_reading_responses_is_closed_at_the_write_timeout() {
    use netloop::http::HttpEvent;
    let big = "b".repeat(1 << 20);
    let http = Http::new(move |_: &Request, res: &mut Response<'_>| res.body(big.as_bytes()))
        .write_timeout(Some(std::time::Duration::from_millis(300)));
    let metrics = http.metrics();
    let server = serve(netloop::Dispatch::Inline, 1, http);
    let mut s = connect(addr(&server));
    // Shrink the receive window so the responses cannot all be buffered by the kernel.
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(4096)
        .unwrap();
    let burst = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16);
    s.write_all(burst.as_bytes()).unwrap();
    assert!(eventually(|| metrics
        .snapshot()
        .get(HttpEvent::WriteTimeout)
        == 1));
    assert!(eventually(|| server.stats().closed.write_timeout == 1));
    server.shutdown(PATIENCE);
}
