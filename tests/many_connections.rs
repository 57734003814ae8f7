//! 1000+ concurrent connections are all served, and are spread over the pollers as
//! the balance policy says.

mod common;

use std::time::Duration;

use common::*;
use netloop::{Balance, Server};

const CONNS: usize = 1200;

fn serve_many(balance: Balance) {
    for mode in modes() {
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .pollers(2)
            .dispatch(mode)
            .balance(balance)
            .backlog(2048)
            .serve(echo())
            .unwrap();
        let a = addr(&server);
        let mut clients: Vec<_> = (0..CONNS).map(|_| connect(a)).collect();
        // Every connection is open at once, then each is served.
        for (i, c) in clients.iter_mut().enumerate() {
            let msg = format!("hello from {i}");
            assert_eq!(round_trip(c, msg.as_bytes()), msg.as_bytes());
        }
        let stats = server.stats();
        assert_eq!(stats.active as usize, CONNS, "{balance:?} {mode:?}");
        let per_poller: Vec<u64> = stats.pollers.iter().map(|p| p.active).collect();
        match balance {
            Balance::RoundRobin | Balance::LeastConnections => {
                // A single acceptor assigns in turn / to the emptier poller: exact halves.
                assert_eq!(per_poller, vec![600, 600], "{balance:?} {mode:?}");
            }
            _ => {
                // The kernel hashes connections over the SO_REUSEPORT sockets.
                assert!(per_poller.iter().all(|&n| n > 0), "{per_poller:?}");
                assert_eq!(per_poller.iter().sum::<u64>() as usize, CONNS);
            }
        }
        drop(clients);
        assert!(eventually(|| server.stats().active == 0));
        server.shutdown(Duration::from_secs(5));
        let stats = server.stats();
        assert_eq!(stats.accepted as usize, CONNS);
        assert_eq!(stats.closed.peer_closed as usize, CONNS);
    }
}

#[test]
fn round_robin_serves_1200_concurrent_connections_split_evenly() {
    serve_many(Balance::RoundRobin);
}

#[test]
fn least_connections_serves_1200_concurrent_connections_split_evenly() {
    serve_many(Balance::LeastConnections);
}

#[test]
fn reuse_port_serves_1200_concurrent_connections_on_every_poller() {
    serve_many(Balance::ReusePort);
}
