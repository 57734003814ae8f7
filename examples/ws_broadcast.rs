//! A WebSocket broadcast server: every connection subscribes to one topic of a
//! [`Hub`](netloop::ws::hub::Hub) and every message received is published to it, so each
//! message goes to every connection, its sender included. The target of the broadcast
//! benchmarks (`netloop-load --proto ws --mode broadcast`, the `bcast-*` scenarios of
//! `scripts/bench.sh`), in the shape of uWebSockets' pub/sub broadcast test.
//!
//! ```text
//! cargo run --release --example ws_broadcast -- --addr 127.0.0.1:9001 [--pollers 1]
//! ```
//! Stops gracefully on Ctrl-C / SIGTERM and prints the shutdown report, the counters and
//! the hub's counters (deliveries, drops).

mod support;

use clap::Parser;
use netloop::http::Request;
use netloop::ws::hub::Hub;
use netloop::ws::{self, Message, WsConn, WsHandler};

/// The one topic every connection is in.
const TOPIC: &str = "broadcast";

#[derive(Parser)]
#[command(about = "netloop WebSocket broadcast server (one topic, every message to everyone)")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
    /// Output a subscriber may have queued before a publish skips it (the hub drops the
    /// message for it and counts the drop), in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_backpressure: usize,
}

/// Subscribes every connection and publishes every message.
struct Broadcast {
    hub: Hub,
}

impl WsHandler for Broadcast {
    type State = ();

    fn on_open(&self, ws: &mut WsConn<'_>, _req: &Request) {
        self.hub.subscribe(&ws.handle(), TOPIC);
    }

    fn on_message(&self, _: &mut (), _ws: &mut WsConn<'_>, msg: Message) {
        self.hub.publish(TOPIC, msg);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let args = Args::parse();
    let hub = Hub::new();
    let config = ws::Config::default().max_backpressure(args.max_backpressure);
    let server = args
        .server
        .builder("127.0.0.1:9001")
        .serve(ws::server(Broadcast { hub: hub.clone() }, config))?;
    support::run_until_signal(&server, "ws_broadcast", args.server.grace())?;
    println!("{:?}", hub.stats());
    Ok(())
}
