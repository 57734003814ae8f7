//! Starting a server: the [`Builder`], binding listeners, spawning pollers and workers;
//! and the [`ServerHandle`] that stops it.

mod builder;
mod handle;
mod listen;
mod start;
mod stats_source;

pub use builder::{Builder, IntoAddr};
pub use handle::{ServerHandle, Stopper};
pub use stats_source::StatsSource;

/// Entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the defaults: one poller per available CPU, inline dispatch,
    /// round-robin balancing, no listeners yet.
    pub fn builder() -> Builder {
        Builder::default()
    }
}
