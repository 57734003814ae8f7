//! # netloop-load
//!
//! The project's load generator, built on netloop itself: N connections on **one**
//! netloop poller (so the generator can be pinned to one CPU with `taskset`), speaking
//! one of three protocols, driven closed or open loop, with latencies in an HDR
//! histogram.
//!
//! * [`proto`]: encoding the request and decoding the responses of the `echo`, `framed`
//!   and `http` protocols;
//! * [`schedule`]: the open-loop intended send times;
//! * [`stats`]: the recorder (window, histograms, errors by kind) and the [`Report`];
//! * [`broadcast`]: the rounds of the WebSocket broadcast mode ([`Load::Broadcast`]);
//! * [`engine`]: the connections' handler and [`run`], which drives a whole run.
//!
//! ```no_run
//! use std::time::Duration;
//! use netloop_load::{run, Config, Load, Protocol, RequestSpec};
//!
//! let request = RequestSpec {
//!     protocol: Protocol::Http,
//!     size: 0,
//!     path: "/".into(),
//!     host: "127.0.0.1:8080".into(),
//! };
//! let mut config = Config::new("127.0.0.1:8080", request, 64);
//! config.load = Load::Open { rate: 10_000.0 };
//! config.duration = Duration::from_secs(10);
//! let report = run(&config, |_progress| {}).expect("run");
//! println!("{:.0} requests/s, p99 {} µs", report.measurements.rps, report.measurements.latency_us.p99);
//! ```
//!
//! ## Closed and open loop
//!
//! Closed loop keeps `pipeline` requests outstanding per connection and measures each
//! from its actual send time: it finds the highest throughput, but a server stall delays
//! the requests that would have been sent during it, so its latencies understate what
//! users would see (coordinated omission). Open loop sends at a fixed rate on a schedule
//! that does not wait for responses, and measures from each request's *intended* send
//! time, so a stall shows up in every request it delayed. Its pacing uses netloop's
//! per-connection timer (`Conn::set_timer`), which has a 1 ms resolution; the report's
//! `send_lag_us` says how late requests left, which is included in the open-loop
//! latencies.
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod broadcast;
pub mod engine;
pub mod proto;
pub mod schedule;
pub mod stats;

pub use engine::{run, Config, Error, Load, Phase, Progress};
pub use proto::{DecodeError, Decoded, Decoder, Protocol, RequestSpec};
pub use stats::{ErrorKind, Errors, Latency, Measurements, Recorder, Report};
