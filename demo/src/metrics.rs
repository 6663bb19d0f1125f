//! `/metrics`: the library's figures (`phaseloop::metrics`, OpenMetrics
//! text) with the demo's own after them.

use phaseloop::metrics::{Extra, ExtraKind};
use phaseloop::{ClusterStats, Server};
use phaseloop_core::Loop;

/// Figures the demo itself keeps.
pub struct DemoFigures {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub store_reads: u64,
    pub orders: usize,
    pub notifications: u64,
    pub replayed: u64,
    pub journal_pending: usize,
    /// Journal batches that were not saved (undone, or refused as damaged).
    pub journal_failures: u64,
    /// Journals of this loop refusing appends until repaired (0 or more).
    pub journals_damaged: u64,
    /// The notification outbox's counters.
    pub outbox: crate::outbox::OutboxFigures,
    /// From an order's notification being scheduled to its delivery.
    pub delivery_latency_ms: phaseloop::hdrhistogram::Histogram<u64>,
}

pub fn render(
    lp: &Loop,
    server: &Server,
    cluster: Option<&ClusterStats>,
    demo: &DemoFigures,
) -> String {
    let counter = |name, help, value: u64| Extra {
        name,
        help,
        kind: ExtraKind::Counter,
        value: value as f64,
    };
    let gauge = |name, help, value: u64| Extra {
        name,
        help,
        kind: ExtraKind::Gauge,
        value: value as f64,
    };
    let extras = [
        counter(
            "phaseloop_users_cache_hits",
            "Users served from the cache.",
            demo.cache_hits,
        ),
        counter(
            "phaseloop_users_cache_misses",
            "Users not in the cache.",
            demo.cache_misses,
        ),
        counter(
            "phaseloop_users_store_reads",
            "Reads of the users store.",
            demo.store_reads,
        ),
        gauge(
            "phaseloop_orders_stored",
            "Orders in this loop's journal.",
            demo.orders as u64,
        ),
        counter(
            "phaseloop_notifications_delivered",
            "Restaurant notifications delivered.",
            demo.notifications,
        ),
        counter(
            "phaseloop_notifications_replayed",
            "Notifications replayed after a restart.",
            demo.replayed,
        ),
        gauge(
            "phaseloop_journal_pending",
            "Orders waiting for their journal write.",
            demo.journal_pending as u64,
        ),
        counter(
            "phaseloop_journal_write_failures",
            "Journal batches not saved (undone, or refused as damaged).",
            demo.journal_failures,
        ),
        gauge(
            "phaseloop_journals_damaged",
            "Journals refusing appends until repaired.",
            demo.journals_damaged,
        ),
        counter(
            "phaseloop_notification_retries",
            "Notification attempts that failed and will be tried again.",
            demo.outbox.retries,
        ),
        counter(
            "phaseloop_notification_failures",
            "Notifications the restaurant refused for good (a 4xx).",
            demo.outbox.failed,
        ),
        gauge(
            "phaseloop_notification_breaker_state",
            "The restaurant endpoint's circuit breaker: 0 closed, 1 open, 2 half-open.",
            demo.outbox.breaker,
        ),
        counter(
            "phaseloop_notification_breaker_opened",
            "Times the circuit breaker opened.",
            demo.outbox.breaker_opened,
        ),
        gauge(
            "phaseloop_notification_outbox_depth",
            "Notifications waiting in memory: queued, waiting to retry, or being sent.",
            demo.outbox.depth,
        ),
    ];
    let latency = phaseloop::metrics::ExtraHistogram {
        name: "phaseloop_notification_delivery_seconds",
        help: "From an order's notification being scheduled to its delivery.",
        histogram: demo.delivery_latency_ms.clone(),
        unit: 1e-3,
    };
    phaseloop::metrics::render_with_histograms(lp, server, cluster, &extras, &[latency])
}
