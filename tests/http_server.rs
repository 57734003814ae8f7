//! The HTTP/1.1 layer: exact plaintext responses, keep-alive, pipelining, bodies that
//! arrive in pieces, `Connection: close`, HTTP/1.0, HEAD, and the 400/413/431/501 answers
//! for requests it will not serve.

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
            "POST /up HTTP/1.1\r\nX-Test: yes\r\nContent-Length: {}\r\n\r\n{body}",
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
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n",
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
    s.write_all(b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
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
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
            "400 Bad Request",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            "501 Not Implemented",
            Http::new(plain),
        ),
        (
            format!("GET / HTTP/1.1\r\n{too_many}\r\n").into_bytes(),
            "431 Request Header Fields Too Large",
            Http::new(plain),
        ),
        (
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000)).into_bytes(),
            "431 Request Header Fields Too Large",
            Http::new(plain),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n".to_vec(),
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
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let all = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    assert!(!all.contains("Set-Cookie"), "{all}");
    assert!(eventually(|| server.stats().closed.panic == 1));
    server.shutdown(PATIENCE);
}
