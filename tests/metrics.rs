//! The Prometheus endpoint: a scrape of `/metrics` on a running HTTP server parses as
//! the text exposition format and reports the traffic the test made, the server's and
//! the HTTP layer's counters both.

mod common;

use std::collections::HashMap;
use std::io::Write;

use common::*;
use netloop::http::{Exporter, Http, Request, Response};
use netloop::Server;

/// Parses the text format into `name{labels}` → value, checking every line's shape and
/// that every sample belongs to a family announced by `# TYPE`.
fn parse(text: &str) -> HashMap<String, u64> {
    let mut families = Vec::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            families.push(name.to_owned());
        } else if line.starts_with("# HELP ") {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let name = series.split('{').next().unwrap();
            assert!(families.iter().any(|f| f == name), "{name} has no # TYPE");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            samples.insert(series.to_owned(), value.parse().expect("an integer value"));
        }
    }
    samples
}

fn get(s: &mut std::net::TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = common::read_some(s, &mut buf).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            if got.len() >= end + 4 + len {
                return text[end + 4..end + 4 + len].to_owned();
            }
        }
    }
}

#[test]
fn a_scrape_reports_the_servers_and_the_http_layers_counters() {
    let exporter = Exporter::new("netloop");
    let http = Http::new(|_: &Request, res: &mut Response<'_>| res.body(b"ok"))
        .metrics_at("/metrics", exporter.clone());
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .serve(http)
        .unwrap();
    exporter.add_server(&server);
    let addr = addr(&server);
    let mut s = connect(addr);
    for _ in 0..5 {
        assert_eq!(get(&mut s, "/"), "ok");
    }
    // Two refused requests, each on its own connection.
    for bad in ["GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\n\r\n"] {
        let mut b = connect(addr);
        b.write_all(bad.as_bytes()).unwrap();
        read_to_close(&mut b);
    }
    // A close is counted just before the gauge of active connections is set, perhaps
    // on the other poller: wait for both.
    assert!(eventually(|| {
        let st = server.stats();
        st.closed.total() >= 2 && st.active == 1
    }));
    let text = get(&mut s, "/metrics");
    let m = parse(&text);
    assert_eq!(m["netloop_connections_accepted_total"], 3, "{text}");
    assert_eq!(m["netloop_connections_active"], 1, "{text}");
    assert!(m["netloop_handler_calls_total"] >= 6, "{text}");
    assert!(m["netloop_bytes_in_total"] > 0);
    assert_eq!(
        m["netloop_http_events_total{event=\"bad_request\"}"], 2,
        "{text}"
    );
    assert_eq!(m["netloop_http_events_total{event=\"head_timeout\"}"], 0);
    assert!(m.contains_key("netloop_poller_connections_active{poller=\"1\"}"));
    let closed: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("netloop_connections_closed_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(closed, 2, "{text}");
    // The readable summary says the same.
    let summary = server.stats().to_string();
    assert!(summary.contains("3 accepted"), "{summary}");
    server.shutdown(PATIENCE);
}
