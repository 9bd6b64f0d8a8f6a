//! The relay's metrics, in the Prometheus / OpenMetrics text format, served only on the
//! operator's `--metrics-listen` address (never on the public port).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    class: &'static str,
    /// The side an error answer blames: `sender`, `tunnel`, `target`; `none` for the app's
    /// own answers.
    side: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusalLabels {
    reason: &'static str,
}

/// Every metric of one relay.
pub(crate) struct Metrics {
    registry: Registry,
    tunnels: Gauge,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    refused: Family<RefusalLabels, Counter>,
    connects: Counter,
    reconnects: Counter,
    /// Requests waiting for their tunnel client to come back now.
    pub(crate) held: Gauge,
    /// Held requests, by how the hold ended.
    hold_ends: Family<RefusalLabels, Counter>,
    /// Requests kept for offline tunnels, dropped by the bounds, handed to clients.
    kept: Counter,
    kept_dropped: Counter,
    kept_handed_off: Counter,
    kept_refused: Counter,
    kept_skipped: Counter,
    kept_withheld: Counter,
    /// Requests for offline tunnels whose bodies are being read to be kept now.
    pub(crate) kept_reading: Gauge,
    /// With `--cluster`: nodes registered now, names this node holds live, requests sent
    /// to the node holding their tunnel.
    cluster_nodes: Gauge,
    cluster_names: Gauge,
    pub(crate) peer_forwarded: Counter,
    /// Public and peer connections closed because readers blocked together held over three
    /// quarters of their tunnel's HTTP/2 window (`window.rs`).
    pub(crate) readers_evicted: Counter,
    /// Requests the relay refused itself (429, 413) and listed to their tunnel's client, and
    /// those only counted to it (past a notice's list; `notices.rs`).
    refusals_listed: Counter,
    refusals_unlisted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("twk_relay");
        let tunnels = Gauge::default();
        registry.register(
            "tunnels_connected",
            "Tunnels connected now",
            tunnels.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Public requests by status class and the side an error answer blames",
            requests.clone(),
        );
        // 1 ms … ~16 s: webhooks answer in milliseconds, deadlines are 9–11 s.
        let duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 9.0, 11.0, 16.0,
        ]);
        registry.register(
            "request_duration_seconds",
            "Time from the request head to the response head",
            duration.clone(),
        );
        let bytes_in = Counter::default();
        registry.register(
            "request_body_bytes",
            "Request body bytes forwarded into tunnels",
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register(
            "response_body_bytes",
            "Response body bytes sent back to senders",
            bytes_out.clone(),
        );
        let refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "upgrades_refused",
            "Tunnel upgrades refused, by reason",
            refused.clone(),
        );
        let connects = Counter::default();
        registry.register(
            "tunnel_connects",
            "Tunnel sessions granted",
            connects.clone(),
        );
        let reconnects = Counter::default();
        registry.register(
            "tunnel_reconnects",
            "Tunnel sessions granted for a name the same token held before",
            reconnects.clone(),
        );
        let held = Gauge::default();
        registry.register(
            "requests_held",
            "Requests waiting now for their tunnel client to come back",
            held.clone(),
        );
        let hold_ends = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "holds",
            "Requests held for a reconnecting client, by outcome (delivered, offline)",
            hold_ends.clone(),
        );
        let kept = Counter::default();
        registry.register(
            "kept",
            "Requests kept (sealed) while their tunnel's client was offline",
            kept.clone(),
        );
        let kept_dropped = Counter::default();
        registry.register(
            "kept_dropped",
            "Kept requests dropped by the per-tunnel bounds or their age",
            kept_dropped.clone(),
        );
        let kept_handed_off = Counter::default();
        registry.register(
            "kept_handed_off",
            "Kept requests taken by their tunnel's client on reconnect",
            kept_handed_off.clone(),
        );
        let kept_refused = Counter::default();
        registry.register(
            "kept_refused",
            "Requests for offline tunnels not kept: too many being kept at once, or too large",
            kept_refused.clone(),
        );
        let kept_skipped = Counter::default();
        registry.register(
            "kept_skipped",
            "Kept requests a connecting client could not open (sealed to another key of its owner): left for that key",
            kept_skipped.clone(),
        );
        let kept_withheld = Counter::default();
        registry.register(
            "kept_withheld",
            "Kept requests not sent to a connecting client: the record names another key of its owner, which it was sealed to",
            kept_withheld.clone(),
        );
        let cluster_nodes = Gauge::default();
        registry.register(
            "cluster_nodes_seen",
            "Relay nodes registered in the cluster now, this one included (0: not clustered)",
            cluster_nodes.clone(),
        );
        let cluster_names = Gauge::default();
        registry.register(
            "cluster_names_held",
            "Tunnel names this node holds live in the cluster",
            cluster_names.clone(),
        );
        let peer_forwarded = Counter::default();
        registry.register(
            "cluster_forwarded",
            "Public requests sent on to the cluster node holding their tunnel",
            peer_forwarded.clone(),
        );
        let kept_reading = Gauge::default();
        registry.register(
            "kept_reading",
            "Requests for offline tunnels whose bodies are being read to be kept now",
            kept_reading.clone(),
        );
        let readers_evicted = Counter::default();
        registry.register(
            "readers_evicted",
            "Public connections closed because slow readers, blocked together, held over three \
             quarters of their tunnel's HTTP/2 window while other answers waited",
            readers_evicted.clone(),
        );
        let refusals_listed = Counter::default();
        registry.register(
            "refusals_listed",
            "Requests the relay refused itself (over the tunnel's rate, body over the cap), \
             listed to their tunnel's client",
            refusals_listed.clone(),
        );
        let refusals_unlisted = Counter::default();
        registry.register(
            "refusals_unlisted",
            "Requests the relay refused itself that their tunnel's client was told only the \
             number of (past a notice's list, or from a sender listed lately)",
            refusals_unlisted.clone(),
        );
        Metrics {
            refusals_listed,
            refusals_unlisted,
            kept_reading,
            readers_evicted,
            cluster_nodes,
            cluster_names,
            peer_forwarded,
            kept_skipped,
            kept_withheld,
            kept_refused,
            kept,
            kept_dropped,
            kept_handed_off,
            held,
            hold_ends,
            registry,
            tunnels,
            requests,
            duration,
            bytes_in,
            bytes_out,
            refused,
            connects,
            reconnects,
        }
    }
}

impl Metrics {
    /// Counts one answered public request.
    pub(crate) fn request(&self, status: u16, source: Option<&str>, took: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        // twk's own answers say who made them; a 4xx from twk is the sender's fault.
        let side = match (source, status) {
            (None, _) => "none",
            (Some(_), 400..=499) => "sender",
            (Some("client"), _) => "target",
            (Some(_), _) => "tunnel",
        };
        self.requests
            .get_or_create(&RequestLabels { class, side })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// Counts a kept request and the older ones its bounds dropped.
    pub(crate) fn kept(&self, dropped: usize) {
        self.kept.inc();
        self.kept_dropped
            .inc_by(u64::try_from(dropped).unwrap_or(u64::MAX));
    }

    /// Counts a kept request left for another key of its owner, as the client found.
    pub(crate) fn kept_skipped(&self) {
        self.kept_skipped.inc();
    }

    /// Counts a kept request left for another key of its owner, as its record says: the
    /// client was not sent it.
    pub(crate) fn kept_withheld(&self) {
        self.kept_withheld.inc();
    }

    /// Counts a request that could not be kept.
    pub(crate) fn kept_refused(&self) {
        self.kept_refused.inc();
    }

    /// Counts the refusals of a notice the client took.
    pub(crate) fn refusals_told(&self, listed: u64, unlisted: u64) {
        self.refusals_listed.inc_by(listed);
        self.refusals_unlisted.inc_by(unlisted);
    }

    /// Counts a kept request handed to its client.
    pub(crate) fn kept_handed_off(&self) {
        self.kept_handed_off.inc();
    }

    /// Counts a hold that ended: the client came back (`delivered`) or not (`offline`).
    pub(crate) fn hold_ended(&self, reason: &'static str) {
        self.hold_ends
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    pub(crate) fn connected(&self, reconnect: bool) {
        self.connects.inc();
        if reconnect {
            self.reconnects.inc();
        }
    }

    /// The text exposition, with the tunnel gauge set to `tunnels` first.
    pub(crate) fn encode(&self, tunnels: usize, cluster: Option<&twk_cluster::Cluster>) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.tunnels.set(gauge(tunnels));
        if let Some(c) = cluster {
            self.cluster_nodes.set(gauge(c.nodes_seen()));
            self.cluster_names.set(gauge(c.names_held()));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_class_and_side() {
        let m = Metrics::default();
        m.request(200, None, Duration::from_millis(3));
        m.request(503, Some("relay"), Duration::from_millis(1));
        m.request(502, Some("client"), Duration::from_millis(1));
        m.request(413, Some("relay"), Duration::from_millis(1));
        m.refused("unauthorized");
        m.connected(true);
        let text = m.encode(2, None);
        assert!(text.contains("twk_relay_tunnels_connected 2"), "{text}");
        assert!(
            text.contains(r#"twk_relay_requests_total{class="2xx",side="none"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"twk_relay_requests_total{class="5xx",side="tunnel"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"twk_relay_requests_total{class="5xx",side="target"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"twk_relay_requests_total{class="4xx",side="sender"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"twk_relay_upgrades_refused_total{reason="unauthorized"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("twk_relay_tunnel_reconnects_total 1"),
            "{text}"
        );
        assert!(
            text.contains("twk_relay_request_duration_seconds_count 4"),
            "{text}"
        );
    }
}
