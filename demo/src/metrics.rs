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
    /// The PostgreSQL pool's state and times (`--database`).
    pub db: Option<(phaseloop::pg::PoolStats, phaseloop::pg::PoolHistograms)>,
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
    let mut extras = vec![
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
    let mut histograms = vec![phaseloop::metrics::ExtraHistogram {
        name: "phaseloop_notification_delivery_seconds",
        help: "From an order's notification being scheduled to its delivery.",
        histogram: demo.delivery_latency_ms.clone(),
        unit: 1e-3,
    }];
    if let Some((stats, times)) = &demo.db {
        extras.extend([
            gauge(
                "phaseloop_db_pool_connections",
                "Pool connections open or opening.",
                stats.total as u64,
            ),
            gauge(
                "phaseloop_db_pool_idle",
                "Pool connections idle.",
                stats.idle as u64,
            ),
            gauge(
                "phaseloop_db_pool_in_use",
                "Pool connections checked out.",
                stats.in_use as u64,
            ),
            gauge(
                "phaseloop_db_pool_waiting",
                "Callers waiting for a connection.",
                stats.waiting as u64,
            ),
            counter(
                "phaseloop_db_connects",
                "Connections opened.",
                stats.connects,
            ),
            counter(
                "phaseloop_db_connect_errors",
                "Connects that failed.",
                stats.connect_errors,
            ),
            counter(
                "phaseloop_db_acquire_timeouts",
                "Callers that waited the whole acquire timeout.",
                stats.acquire_timeouts,
            ),
            counter(
                "phaseloop_db_pool_refused",
                "Callers refused: the wait queue was full.",
                stats.refused,
            ),
            counter(
                "phaseloop_db_broken",
                "Connections found broken and dropped.",
                stats.broken,
            ),
            counter(
                "phaseloop_db_queries",
                "Statements answered or failed.",
                stats.queries,
            ),
            counter(
                "phaseloop_db_errors",
                "Statements that failed (by SQLSTATE class: /health).",
                stats.errors_by_class.iter().map(|(_, n)| n).sum(),
            ),
        ]);
        histograms.push(phaseloop::metrics::ExtraHistogram {
            name: "phaseloop_db_pool_wait_seconds",
            help: "How long callers waited for a pool connection.",
            histogram: times.wait_us.clone(),
            unit: 1e-6,
        });
        histograms.push(phaseloop::metrics::ExtraHistogram {
            name: "phaseloop_db_query_seconds",
            help: "Statements, queued to answered.",
            histogram: times.query_us.clone(),
            unit: 1e-6,
        });
    }
    phaseloop::metrics::render_with_histograms(lp, server, cluster, &extras, &histograms)
}
