//! The server's figures for Prometheus (feature `prometheus`): its
//! responses by route and status, latency, connections and refusals, its
//! loop's phases and delay, its pool's lanes, in the OpenMetrics text
//! format, encoded by the `prometheus-client` crate.
//!
//! A scrape takes a snapshot on the loop and encodes it; nothing is
//! counted twice and nothing runs between scrapes. Latencies are
//! histograms (the crate has no summaries, and buckets add up across
//! loops and instances where quantiles do not). Label values are escaped
//! here (`\`, `"`, newline): the crate writes them as given.
//!
//! ```no_run
//! # use phaseloop::{App, Server, ServerConfig};
//! # let lp = phaseloop::core::Loop::new().unwrap();
//! # let server = Server::bind(&lp, "127.0.0.1:0".parse().unwrap(), App::new(), ServerConfig::default()).unwrap();
//! let text = phaseloop::metrics::render(&lp, &server, None, &[]);
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::fmt::{self, Write};

use phaseloop_core::{Lane, Loop, Phase};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::engine::{RouteStats, ServerStats};
use crate::serve::cluster::ClusterStats;
use crate::serve::server::Server;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets' upper bounds, seconds (and +Inf).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A figure of the application's own, rendered with the server's.
#[derive(Debug, Clone, Copy)]
pub struct Extra {
    /// The metric's name (a counter's without `_total`: it is added).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Counter (only ever grows) or gauge.
    pub kind: ExtraKind,
    /// Its value now.
    pub value: f64,
}

/// A histogram of the application's own (an hdrhistogram), rendered with
/// the server's figures in seconds, on the buckets of
/// [`EXTRA_HISTOGRAM_BUCKETS`].
#[derive(Debug, Clone)]
pub struct ExtraHistogram {
    /// The metric's name (ending in `_seconds`, by convention).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// The recorded values.
    pub histogram: hdrhistogram::Histogram<u64>,
    /// Seconds per recorded unit (`1e-3` for milliseconds).
    pub unit: f64,
}

/// The buckets of an [`ExtraHistogram`], seconds: from a millisecond to
/// ten minutes (work that waits and retries, not a request's latency).
pub const EXTRA_HISTOGRAM_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0,
];

/// The kind of an [`Extra`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    /// Only ever grows.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Renders `server`'s, `lp`'s and `lp`'s pool's figures, then `extras`.
/// In a cluster, pass every loop's counters (`cluster`): connection
/// figures are then their sum, with requests per loop; route and latency
/// figures stay this loop's.
pub fn render(
    lp: &Loop,
    server: &Server,
    cluster: Option<&ClusterStats>,
    extras: &[Extra],
) -> String {
    render_with_histograms(lp, server, cluster, extras, &[])
}

/// [`render`], with histograms of the application's own after the rest.
pub fn render_with_histograms(
    lp: &Loop,
    server: &Server,
    cluster: Option<&ClusterStats>,
    extras: &[Extra],
    histograms: &[ExtraHistogram],
) -> String {
    let mut snapshot = Snapshot::take(lp, server, cluster, extras);
    snapshot.extra_histograms = histograms
        .iter()
        .map(|h| {
            (
                h.name,
                h.help,
                buckets_on(&h.histogram, h.unit, &EXTRA_HISTOGRAM_BUCKETS),
            )
        })
        .collect();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// A label value written escaped, as the exposition formats require.
#[derive(Debug)]
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// One pool lane's figures.
#[derive(Debug)]
struct LaneFigures {
    name: &'static str,
    queued: usize,
    running: usize,
    completed: u64,
    /// Queue wait at the median and the 99th percentile, seconds.
    wait_p50: f64,
    wait_p99: f64,
}

/// Everything a scrape shows, read at once on the loop.
#[derive(Debug)]
struct Snapshot {
    stats: ServerStats,
    /// This loop's WebSockets.
    ws: crate::ws::WsStats,
    /// Route, then (status as text, responses).
    routes: Vec<(String, Vec<(String, u64)>)>,
    /// (sum in seconds, count, per-bucket counts).
    latency: (f64, u64, Vec<(f64, u64)>),
    loop_delay: (f64, u64, Vec<(f64, u64)>),
    phases: Vec<(&'static str, f64)>,
    poll_wait: f64,
    ticks: u64,
    blocks: u64,
    panics: u64,
    lanes: Vec<LaneFigures>,
    pool: Option<(usize, u64)>,
    buffered: usize,
    open_files: u64,
    per_loop: Vec<u64>,
    extras: Vec<Extra>,
    /// (name, help, its buckets).
    extra_histograms: Vec<(&'static str, &'static str, Buckets)>,
}

/// A histogram as Prometheus takes it: (sum in seconds, count, per-bucket
/// counts).
type Buckets = (f64, u64, Vec<(f64, u64)>);

/// An hdrhistogram as Prometheus buckets: (sum, count, per-bucket counts),
/// its values in units of `unit` seconds.
fn buckets(h: &hdrhistogram::Histogram<u64>, unit: f64) -> (f64, u64, Vec<(f64, u64)>) {
    buckets_on(h, unit, &LATENCY_BUCKETS)
}

/// [`buckets`] on the bucket bounds `bounds` (seconds).
fn buckets_on(
    h: &hdrhistogram::Histogram<u64>,
    unit: f64,
    bounds: &[f64],
) -> (f64, u64, Vec<(f64, u64)>) {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut below = 0;
    for &bound in bounds {
        let upto = h.count_between(0, (bound / unit) as u64);
        out.push((bound, upto - below));
        below = upto;
    }
    out.push((f64::MAX, h.len() - below));
    (h.mean() * h.len() as f64 * unit, h.len(), out)
}

impl Snapshot {
    fn take(
        lp: &Loop,
        server: &Server,
        cluster: Option<&ClusterStats>,
        extras: &[Extra],
    ) -> Snapshot {
        let m = lp.metrics();
        let (lanes, pool) = match lp.pool_stats() {
            Some(p) => (
                Lane::ALL
                    .iter()
                    .map(|lane| {
                        let l = p.lane(*lane);
                        LaneFigures {
                            name: lane.name(),
                            queued: l.queued,
                            running: l.running,
                            completed: l.completed,
                            wait_p50: l.wait_at(0.5).as_secs_f64(),
                            wait_p99: l.wait_at(0.99).as_secs_f64(),
                        }
                    })
                    .collect(),
                Some((p.threads, p.rejected)),
            ),
            None => (Vec::new(), None),
        };
        Snapshot {
            stats: cluster.map_or_else(|| server.stats(), ClusterStats::total),
            ws: crate::ws::stats(),
            routes: server
                .route_stats()
                .into_iter()
                .map(
                    |RouteStats {
                         route,
                         mut by_status,
                         ..
                     }| {
                        by_status.sort_unstable();
                        let by_status = by_status.into_iter().map(|(s, n)| (s.to_string(), n));
                        (route.to_string(), by_status.collect())
                    },
                )
                .collect(),
            latency: buckets(&server.latency_histogram(), 1e-6),
            loop_delay: buckets(&m.loop_delay, 1e-9),
            phases: Phase::ALL
                .iter()
                .map(|p| (p.name(), m.time_in(*p).as_secs_f64()))
                .collect(),
            poll_wait: m.poll_wait.as_secs_f64(),
            ticks: m.ticks,
            blocks: m.block_reports,
            panics: m.callback_panics,
            lanes,
            pool,
            buffered: server.buffered_bytes(),
            open_files: crate::engine::limits::open_files_limit(),
            per_loop: cluster.map_or_else(Vec::new, |c| {
                c.per_loop().iter().map(|s| s.requests).collect()
            }),
            extras: extras.to_vec(),
            extra_histograms: Vec::new(),
        }
    }
}

/// Encodes one metric without labels.
fn one(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    one(e, name, help, &ConstCounter::new(v))
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    one(e, name, help, &ConstGauge::new(v))
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    (sum, count, buckets): &(f64, u64, Vec<(f64, u64)>),
) -> fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(*sum, *count, buckets, None)
}

/// A gauge or counter per label value.
fn family<'v, V: 'v>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Vec<(&'static str, Escaped<'v>)>, V)>,
    value: impl Fn(&mut prometheus_client::encoding::MetricEncoder, V) -> fmt::Result,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        value(&mut metric.encode_family(&labels)?, v)?;
    }
    Ok(())
}

fn as_gauge(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let e = &mut e;
        let s = &self.stats;
        let count = |m: &mut prometheus_client::encoding::MetricEncoder, v: u64| {
            m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
        };
        let seconds = |m: &mut prometheus_client::encoding::MetricEncoder, v: f64| {
            m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
        };
        let level = |m: &mut prometheus_client::encoding::MetricEncoder, v: i64| m.encode_gauge(&v);
        let level_f =
            |m: &mut prometheus_client::encoding::MetricEncoder, v: f64| m.encode_gauge(&v);

        family(
            e,
            "phaseloop_http_requests",
            "Responses sent, by route and status.",
            MetricType::Counter,
            self.routes.iter().flat_map(|(route, by_status)| {
                by_status.iter().map(move |(status, n)| {
                    (
                        vec![("route", Escaped(route)), ("status", Escaped(status))],
                        *n,
                    )
                })
            }),
            count,
        )?;
        histogram(
            e,
            "phaseloop_http_request_duration_seconds",
            "Time from dispatch to response, on the loop's clock.",
            &self.latency,
        )?;
        histogram(
            e,
            "phaseloop_event_loop_delay_seconds",
            "Event-loop delay (Node's monitorEventLoopDelay).",
            &self.loop_delay,
        )?;
        family(
            e,
            "phaseloop_loop_phase_seconds",
            "Time spent in each phase.",
            MetricType::Counter,
            self.phases
                .iter()
                .map(|(p, v)| (vec![("phase", Escaped(p))], *v)),
            seconds,
        )?;
        one(
            e,
            "phaseloop_loop_poll_wait_seconds",
            "Time the poll phase waited for I/O.",
            &ConstCounter::new(self.poll_wait),
        )?;
        counter(e, "phaseloop_loop_ticks", "Loop iterations.", self.ticks)?;
        counter(
            e,
            "phaseloop_loop_blocks",
            "Starvation-guard reports (callbacks or microtask drains over the threshold).",
            self.blocks,
        )?;
        counter(
            e,
            "phaseloop_loop_callback_panics",
            "Callbacks that panicked; the loop caught them and went on.",
            self.panics,
        )?;
        if let Some((threads, rejected)) = self.pool {
            let lanes = |f: fn(&LaneFigures) -> i64| {
                self.lanes
                    .iter()
                    .map(move |l| (vec![("lane", Escaped(l.name))], f(l)))
            };
            family(
                e,
                "phaseloop_pool_queue_depth",
                "Jobs waiting in each pool lane.",
                MetricType::Gauge,
                lanes(|l| as_gauge(l.queued)),
                level,
            )?;
            family(
                e,
                "phaseloop_pool_running",
                "Jobs running in each pool lane.",
                MetricType::Gauge,
                lanes(|l| as_gauge(l.running)),
                level,
            )?;
            family(
                e,
                "phaseloop_pool_completed",
                "Jobs completed in each pool lane.",
                MetricType::Counter,
                self.lanes
                    .iter()
                    .map(|l| (vec![("lane", Escaped(l.name))], l.completed)),
                count,
            )?;
            family(
                e,
                "phaseloop_pool_queue_wait_seconds",
                "Time jobs waited in each lane's queue, at the median (q=0.5) and the 99th percentile (q=0.99).",
                MetricType::Gauge,
                self.lanes.iter().flat_map(|l| {
                    [
                        (vec![("lane", Escaped(l.name)), ("q", Escaped("0.5"))], l.wait_p50),
                        (vec![("lane", Escaped(l.name)), ("q", Escaped("0.99"))], l.wait_p99),
                    ]
                }),
                level_f,
            )?;
            gauge(
                e,
                "phaseloop_pool_threads",
                "Pool threads.",
                as_gauge(threads),
            )?;
            counter(
                e,
                "phaseloop_pool_rejected",
                "Jobs refused by a full pool.",
                rejected,
            )?;
        }
        gauge(
            e,
            "phaseloop_connections_open",
            "Open client connections.",
            i64::try_from(s.open).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "phaseloop_connections_busy",
            "Open connections with request work in hand (the rest are idle and hold no buffers).",
            i64::try_from(s.busy).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "phaseloop_connection_buffer_bytes",
            "Buffer memory held by connections.",
            as_gauge(self.buffered),
        )?;
        gauge(
            e,
            "phaseloop_websockets_open",
            "WebSockets open now (on the loop that answered the scrape).",
            i64::try_from(self.ws.open).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "phaseloop_open_files_limit",
            "The soft limit on open files.",
            i64::try_from(self.open_files).unwrap_or(i64::MAX),
        )?;
        for (name, help, v) in [
            (
                "phaseloop_connections_accepted",
                "Connections accepted.",
                s.accepted,
            ),
            (
                "phaseloop_accept_errors",
                "Accept calls that failed (EMFILE, say).",
                s.accept_errors,
            ),
            (
                "phaseloop_accept_pauses",
                "Times accepting paused for want of descriptors.",
                s.accept_pauses,
            ),
            (
                "phaseloop_requests_refused",
                "Requests refused by the codec (400, 413, 414, 431, 505).",
                s.refused,
            ),
            (
                "phaseloop_timeouts",
                "Connections timed out (any deadline).",
                s.timeouts,
            ),
            (
                "phaseloop_body_rate_timeouts",
                "Requests refused for a body below its minimum rate.",
                s.body_rate_timeouts,
            ),
            (
                "phaseloop_request_timeouts",
                "Requests refused for taking longer than the request timeout.",
                s.request_timeouts,
            ),
            (
                "phaseloop_response_rate_closes",
                "Connections closed for taking responses below the minimum rate.",
                s.response_rate_closes,
            ),
            (
                "phaseloop_handler_panics",
                "Handlers (or hooks) that panicked.",
                s.handler_panics,
            ),
            (
                "phaseloop_handler_timeouts",
                "Requests answered 503 by the handler timeout.",
                s.handler_timeouts,
            ),
            (
                "phaseloop_socket_reads",
                "read(2) calls on client sockets.",
                s.socket_reads,
            ),
            (
                "phaseloop_websockets_opened",
                "WebSockets opened (on the loop that answered the scrape).",
                self.ws.opened,
            ),
            (
                "phaseloop_websocket_messages_in",
                "WebSocket messages received.",
                self.ws.messages_in,
            ),
            (
                "phaseloop_websocket_messages_out",
                "WebSocket messages sent.",
                self.ws.messages_out,
            ),
            (
                "phaseloop_websocket_protocol_errors",
                "WebSockets closed for a protocol breach (1002, 1007).",
                self.ws.protocol_errors,
            ),
            (
                "phaseloop_websocket_too_big",
                "WebSockets closed for a message over the limit (1009).",
                self.ws.too_big,
            ),
            (
                "phaseloop_websocket_idle_timeouts",
                "WebSockets closed for silence (1001).",
                self.ws.idle_timeouts,
            ),
            (
                "phaseloop_websocket_sends_refused",
                "WebSocket sends refused: the client was not reading.",
                self.ws.sends_refused,
            ),
            (
                "phaseloop_websocket_read_pauses",
                "Times a WebSocket stopped reading while its client left our output unread.",
                self.ws.read_pauses,
            ),
            (
                "phaseloop_tls_handshakes",
                "TLS handshakes completed.",
                s.tls_handshakes,
            ),
            (
                "phaseloop_tls_handshake_errors",
                "TLS handshakes that failed (garbage, no common cipher, a refused certificate, a peer gone).",
                s.tls_handshake_errors,
            ),
            (
                "phaseloop_tls_errors",
                "TLS errors after the handshake (bad records, fatal alerts).",
                s.tls_errors,
            ),
        ] {
            counter(e, name, help, v)?;
        }
        if !self.per_loop.is_empty() {
            let names: Vec<String> = (0..self.per_loop.len()).map(|i| i.to_string()).collect();
            family(
                e,
                "phaseloop_loop_requests",
                "Requests served by each loop (balance).",
                MetricType::Counter,
                names
                    .iter()
                    .zip(&self.per_loop)
                    .map(|(i, n)| (vec![("loop", Escaped(i))], *n)),
                count,
            )?;
        }
        for x in &self.extras {
            // Whole numbers are written as such (`2`, not `2.0`).
            let whole = x.value.fract() == 0.0 && x.value.abs() < 9.0e15;
            match (x.kind, whole) {
                (ExtraKind::Counter, true) if x.value >= 0.0 => {
                    counter(e, x.name, x.help, x.value as u64)?
                }
                (ExtraKind::Counter, _) => one(e, x.name, x.help, &ConstCounter::new(x.value))?,
                (ExtraKind::Gauge, true) => gauge(e, x.name, x.help, x.value as i64)?,
                (ExtraKind::Gauge, false) => one(e, x.name, x.help, &ConstGauge::new(x.value))?,
            }
        }
        for (name, help, figures) in &self.extra_histograms {
            histogram(e, name, help, figures)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut registry = Registry::default();
        #[derive(Debug)]
        struct One;
        impl Collector for One {
            fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
                family(
                    &mut e,
                    "x",
                    "help",
                    MetricType::Counter,
                    [(vec![("route", Escaped("GET /a\"b\\c\nd"))], 1u64)],
                    |m, v| {
                        m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            &v, None,
                        )
                    },
                )
            }
        }
        registry.register_collector(Box::new(One));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(r#"x_total{route="GET /a\"b\\c\nd"} 1"#),
            "{out}"
        );
    }
}
