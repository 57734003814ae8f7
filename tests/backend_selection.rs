//! Choosing the I/O backend: `Auto` falls back to epoll when the io_uring probe fails and
//! the server works; an explicit `IoUring` either runs on io_uring or refuses to start
//! with the probe's reason; `ServerHandle::backend` reports the one in use.
//!
//! `NETLOOP_BACKEND` overrides the builder, so these tests only assert what holds under
//! whichever override the suite runs with (scripts/test.sh runs it under each).

mod common;

use common::*;
use netloop::{Backend, Error, Server};

/// The override the suite runs under, if any.
fn forced() -> Option<String> {
    std::env::var("NETLOOP_BACKEND")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

#[test]
fn auto_falls_back_to_epoll_when_the_probe_fails() {
    let result = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(1)
        .backend(Backend::Auto)
        .fail_io_uring_probe()
        .serve(echo());
    match forced().as_deref() {
        // Forcing io_uring with a failing probe must refuse, not silently use epoll.
        Some("io_uring") => {
            let err = result.expect_err("a failed probe cannot start io_uring");
            assert!(matches!(err, Error::Config(_)), "{err}");
        }
        _ => {
            let server = result.expect("epoll serves");
            assert_eq!(server.backend(), Backend::Epoll);
            let mut c = connect(addr(&server));
            assert_eq!(round_trip(&mut c, b"still served"), b"still served");
        }
    }
}

#[test]
fn io_uring_runs_where_usable_and_says_why_not_elsewhere() {
    let result = Server::builder()
        .listen("127.0.0.1:0")
        .pollers(2)
        .backend(Backend::IoUring)
        .serve(echo());
    match (forced().as_deref(), Backend::io_uring_unavailable()) {
        (Some("epoll"), _) => assert_eq!(result.unwrap().backend(), Backend::Epoll),
        (_, None) => {
            let server = result.expect("io_uring is usable here");
            assert_eq!(server.backend(), Backend::IoUring);
            let mut c = connect(addr(&server));
            let data = payload(256 * 1024, 3);
            assert_eq!(round_trip(&mut c, &data), data);
        }
        (_, Some(why)) => {
            eprintln!("io_uring is not usable here ({why}); checking that it says so");
            let err = result.expect_err("io_uring cannot start here");
            assert!(err.to_string().contains(&why), "{err} / {why}");
        }
    }
}

#[test]
fn the_backend_in_use_is_reported() {
    let server = serve(netloop::Dispatch::Inline, 1, echo());
    let expected = match forced().as_deref() {
        Some("io_uring") => Backend::IoUring,
        Some("auto") if Backend::io_uring_unavailable().is_none() => Backend::IoUring,
        _ => Backend::Epoll,
    };
    assert_eq!(server.backend(), expected);
    assert_ne!(server.backend(), Backend::Auto);
}
