//! [`Exporter`]: the counters of servers and HTTP layers in the Prometheus text format,
//! served by an HTTP layer.

use std::sync::{Arc, Mutex};

use super::{HttpMetrics, Response};
use crate::{ServerHandle, StatsSource};

/// Collects the counters of any number of servers ([`Stats`](crate::Stats)) and HTTP
/// layers ([`HttpMetrics`]) and renders them in the Prometheus text exposition format.
/// Clones share one registry, so it can be handed to an HTTP layer before the server it
/// reports on exists:
///
/// ```no_run
/// use netloop::http::{Exporter, Http, Request, Response};
/// use netloop::Server;
///
/// let exporter = Exporter::new("netloop");
/// let http = Http::new(|_: &Request, res: &mut Response<'_>| res.body(b"hello"))
///     .metrics_at("/metrics", exporter.clone());
/// let server = Server::builder().listen("127.0.0.1:8080").serve(http)?;
/// exporter.add_server(&server);
/// // curl http://127.0.0.1:8080/metrics
/// # Ok::<(), netloop::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Exporter {
    inner: Arc<Registry>,
}

#[derive(Debug)]
struct Registry {
    prefix: String,
    sources: Mutex<Sources>,
}

#[derive(Debug, Default)]
struct Sources {
    servers: Vec<StatsSource>,
    http: Vec<HttpMetrics>,
}

impl Exporter {
    /// An empty registry whose metric names start with `prefix` (`"netloop"`).
    ///
    /// # Panics
    /// If `prefix` is not a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    pub fn new(prefix: &str) -> Exporter {
        let valid = prefix.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        assert!(
            valid && !prefix.is_empty(),
            "Exporter::new({prefix:?}): not a metric name"
        );
        Exporter {
            inner: Arc::new(Registry {
                prefix: prefix.to_owned(),
                sources: Mutex::new(Sources::default()),
            }),
        }
    }

    /// Adds a server's counters. With several servers, their counters are summed.
    pub fn add_server(&self, server: &ServerHandle) {
        self.sources().servers.push(server.stats_source());
    }

    /// Adds an HTTP layer's counters ([`Http::metrics_at`](super::Http::metrics_at) adds
    /// its own layer's).
    pub fn add_http(&self, metrics: HttpMetrics) {
        self.sources().http.push(metrics);
    }

    /// The counters now, in the Prometheus text format.
    pub fn render(&self) -> String {
        let sources = self.sources();
        let mut out = String::new();
        if !sources.servers.is_empty() {
            let mut total = crate::Stats::default();
            for s in &sources.servers {
                total.absorb(&s.stats());
            }
            total.write_prometheus(&self.inner.prefix, &mut out);
        }
        if !sources.http.is_empty() {
            let mut http = sources.http[0].snapshot();
            for m in &sources.http[1..] {
                http.absorb(&m.snapshot());
            }
            http.write_prometheus(&self.inner.prefix, &mut out);
        }
        out
    }

    /// Answers a request with [`render`](Exporter::render)'s text, for a service that
    /// routes itself.
    pub fn respond(&self, res: &mut Response<'_>) {
        let text = self.render();
        res.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .body(text.as_bytes());
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.inner.sources.lock().unwrap_or_else(|p| p.into_inner())
    }
}
