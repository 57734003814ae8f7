//! [`Stats`] for people and for scrapers: a readable summary (`Display`) and the
//! Prometheus text exposition format.

use std::fmt::{self, Write};

use super::{ClosedStats, Stats};

impl ClosedStats {
    /// Each reason's counter with its name (the field's), in a fixed order.
    pub fn by_reason(&self) -> [(&'static str, u64); 12] {
        [
            ("peer_closed", self.peer_closed),
            ("local", self.local),
            ("shutdown", self.shutdown),
            ("shutdown_forced", self.shutdown_forced),
            ("panic", self.panic),
            ("error", self.error),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
            ("idle_timeout", self.idle_timeout),
            ("input_limit", self.input_limit),
            ("handshake_timeout", self.handshake_timeout),
            ("backpressure", self.backpressure),
        ]
    }
}

/// Bytes as a person reads them: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Stats {
    /// A summary of a few lines; closing reasons with a zero count are left out.
    ///
    /// ```
    /// let stats = netloop::Stats::default();
    /// assert!(stats.to_string().starts_with("connections: 0 active, 0 accepted"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connections: {} active, {} accepted, {} rejected, {} over the limit",
            self.active, self.accepted, self.rejected, self.over_limit
        )?;
        write!(f, "closed: {}", self.closed.total())?;
        let reasons: Vec<String> = self
            .closed
            .by_reason()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{} {n}", name.replace('_', " ")))
            .collect();
        if !reasons.is_empty() {
            write!(f, " ({})", reasons.join(", "))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "traffic: {} in, {} out; buffered now {} in, {} out",
            bytes(self.bytes_in),
            bytes(self.bytes_out),
            bytes(self.buffered_input),
            bytes(self.buffered_output)
        )?;
        write!(
            f,
            "handler calls: {}, panics {}, failed dials {}, fan-out drops {}",
            self.handler_calls, self.panics, self.connect_failed, self.dropped
        )?;
        if self.pollers.len() > 1 {
            let per: Vec<String> = self
                .pollers
                .iter()
                .enumerate()
                .map(|(i, p)| format!("#{i} {}", p.active))
                .collect();
            write!(f, "\npollers (active): {}", per.join(", "))?;
        }
        Ok(())
    }
}

impl Stats {
    /// Appends the counters in the Prometheus text exposition format (version 0.0.4),
    /// every metric name starting with `prefix` (`netloop` gives `netloop_connections_active`
    /// and so on). Closed connections are one family with a `reason` label; per-poller
    /// gauges have a `poller` label.
    ///
    /// ```
    /// let mut text = String::new();
    /// netloop::Stats::default().write_prometheus("netloop", &mut text);
    /// assert!(text.contains("# TYPE netloop_connections_closed_total counter\n"));
    /// assert!(text.contains("netloop_connections_closed_total{reason=\"peer_closed\"} 0\n"));
    /// ```
    pub fn write_prometheus(&self, prefix: &str, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{prefix}_{name}{labels} {value}");
            }
        };
        let one = |v: u64| [(String::new(), v)];
        family(
            "connections_active",
            "gauge",
            "Connections open now.",
            &one(self.active),
        );
        family(
            "connections_accepted_total",
            "counter",
            "Connections accepted by the listeners.",
            &one(self.accepted),
        );
        family(
            "connections_rejected_total",
            "counter",
            "Connections refused by on_prepare.",
            &one(self.rejected),
        );
        family(
            "connections_over_limit_total",
            "counter",
            "Connections refused at max_connections.",
            &one(self.over_limit),
        );
        let closed: Vec<(String, u64)> = self
            .closed
            .by_reason()
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n))
            .collect();
        family(
            "connections_closed_total",
            "counter",
            "Connections closed, by reason.",
            &closed,
        );
        family(
            "bytes_in_total",
            "counter",
            "Bytes read from sockets.",
            &one(self.bytes_in),
        );
        family(
            "bytes_out_total",
            "counter",
            "Bytes written to sockets.",
            &one(self.bytes_out),
        );
        family(
            "buffered_input_bytes",
            "gauge",
            "Input bytes read and not yet consumed.",
            &one(self.buffered_input),
        );
        family(
            "buffered_output_bytes",
            "gauge",
            "Output bytes written and not yet sent.",
            &one(self.buffered_output),
        );
        family(
            "handler_calls_total",
            "counter",
            "on_request calls.",
            &one(self.handler_calls),
        );
        family(
            "panics_total",
            "counter",
            "Handler callbacks that panicked.",
            &one(self.panics),
        );
        family(
            "connect_failed_total",
            "counter",
            "Dials that failed to connect.",
            &one(self.connect_failed),
        );
        family(
            "fanout_dropped_total",
            "counter",
            "Fan-out messages dropped for members over their output mark.",
            &one(self.dropped),
        );
        let pollers: Vec<(String, u64)> = self
            .pollers
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("{{poller=\"{i}\"}}"), p.active))
            .collect();
        family(
            "poller_connections_active",
            "gauge",
            "Connections each poller owns now.",
            &pollers,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_what_is_not_zero() {
        let mut s = Stats {
            active: 2,
            accepted: 5,
            bytes_in: 3 * 1024 * 1024 / 2,
            ..Stats::default()
        };
        s.closed.peer_closed = 2;
        s.closed.read_timeout = 1;
        let text = s.to_string();
        assert!(text.contains("connections: 2 active, 5 accepted"), "{text}");
        assert!(
            text.contains("closed: 3 (peer closed 2, read timeout 1)"),
            "{text}"
        );
        assert!(text.contains("traffic: 1.5 MiB in, 0 B out"), "{text}");
    }

    #[test]
    fn prometheus_text_has_a_type_line_per_family_and_every_reason() {
        let mut s = Stats::default();
        s.closed.idle_timeout = 7;
        s.pollers = vec![Default::default(), Default::default()];
        let mut text = String::new();
        s.write_prometheus("nl", &mut text);
        assert!(text.contains("nl_connections_closed_total{reason=\"idle_timeout\"} 7\n"));
        assert_eq!(
            text.matches("nl_connections_closed_total{").count(),
            s.closed.by_reason().len()
        );
        assert!(text.contains("nl_poller_connections_active{poller=\"1\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("nl_"), "{line}");
            value.parse::<u64>().unwrap();
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
    }
}
