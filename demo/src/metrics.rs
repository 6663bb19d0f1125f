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
    ];
    phaseloop::metrics::render(lp, server, cluster, &extras)
}
