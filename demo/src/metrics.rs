//! `/metrics` in the Prometheus text format.

use std::fmt::Write;

use phaseloop::{ClusterStats, Server};
use phaseloop_core::{Lane, Loop, Phase};

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

/// A Prometheus summary: HELP, TYPE and one line per quantile (seconds).
fn summary(
    w: &mut String,
    name: &str,
    help: &str,
    quantiles: &[f64],
    seconds_at: impl Fn(f64) -> f64,
) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} summary");
    for q in quantiles {
        let _ = writeln!(w, "{name}{{quantile=\"{q}\"}} {:.6}", seconds_at(*q));
    }
}

pub fn render(
    lp: &Loop,
    server: &Server,
    cluster: Option<&ClusterStats>,
    demo: &DemoFigures,
) -> String {
    // In cluster mode, connection figures are every loop's together (each
    // loop publishes its own twice a second); route figures are this loop's.
    let server_stats = cluster.map_or_else(|| server.stats(), ClusterStats::total);
    let mut out = String::with_capacity(4096);
    let w = &mut out;
    let _ = writeln!(
        w,
        "# HELP phaseloop_http_requests_total Responses sent, by route and status."
    );
    let _ = writeln!(w, "# TYPE phaseloop_http_requests_total counter");
    for route in server.route_stats() {
        let mut by_status = route.by_status.clone();
        by_status.sort_unstable();
        for (status, n) in by_status {
            let _ = writeln!(
                w,
                "phaseloop_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                route.route
            );
        }
    }
    let lat = server.latency_histogram();
    summary(
        w,
        "phaseloop_http_request_duration_seconds",
        "Time from dispatch to response.",
        &[0.5, 0.9, 0.99, 0.999],
        |q| lat.value_at_quantile(q) as f64 / 1e6,
    );
    let _ = writeln!(
        w,
        "phaseloop_http_request_duration_seconds_count {}",
        lat.len()
    );

    let m = lp.metrics();
    summary(
        w,
        "phaseloop_event_loop_delay_seconds",
        "Event-loop delay (monitorEventLoopDelay).",
        &[0.5, 0.9, 0.99, 1.0],
        |q| m.loop_delay.value_at_quantile(q) as f64 / 1e9,
    );
    let _ = writeln!(
        w,
        "# HELP phaseloop_loop_phase_seconds_total Time spent in each phase."
    );
    let _ = writeln!(w, "# TYPE phaseloop_loop_phase_seconds_total counter");
    for phase in Phase::ALL {
        let _ = writeln!(
            w,
            "phaseloop_loop_phase_seconds_total{{phase=\"{phase}\"}} {:.6}",
            m.time_in(phase).as_secs_f64()
        );
    }
    let _ = writeln!(
        w,
        "phaseloop_loop_poll_wait_seconds_total {:.6}",
        m.poll_wait.as_secs_f64()
    );
    let _ = writeln!(w, "phaseloop_loop_ticks_total {}", m.ticks);
    let _ = writeln!(w, "# HELP phaseloop_loop_blocks_total Starvation-guard reports (callbacks or microtask drains over the threshold).");
    let _ = writeln!(w, "phaseloop_loop_blocks_total {}", m.block_reports);
    let _ = writeln!(w, "# HELP phaseloop_loop_callback_panics_total Callbacks that panicked; the loop caught them and went on.");
    let _ = writeln!(
        w,
        "phaseloop_loop_callback_panics_total {}",
        m.callback_panics
    );

    if let Some(pool) = lp.pool_stats() {
        let _ = writeln!(
            w,
            "# HELP phaseloop_pool_queue_depth Jobs waiting in each pool lane."
        );
        let _ = writeln!(w, "# TYPE phaseloop_pool_queue_depth gauge");
        for lane in Lane::ALL {
            let l = pool.lane(lane);
            let _ = writeln!(
                w,
                "phaseloop_pool_queue_depth{{lane=\"{}\"}} {}",
                lane.name(),
                l.queued
            );
            let _ = writeln!(
                w,
                "phaseloop_pool_running{{lane=\"{}\"}} {}",
                lane.name(),
                l.running
            );
            let _ = writeln!(
                w,
                "phaseloop_pool_completed_total{{lane=\"{}\"}} {}",
                lane.name(),
                l.completed
            );
            for q in [0.5, 0.99] {
                let _ = writeln!(
                    w,
                    "phaseloop_pool_queue_wait_seconds{{lane=\"{}\",quantile=\"{q}\"}} {:.6}",
                    lane.name(),
                    l.wait_at(q).as_secs_f64()
                );
            }
        }
        let _ = writeln!(w, "phaseloop_pool_threads {}", pool.threads);
        let _ = writeln!(w, "phaseloop_pool_rejected_total {}", pool.rejected);
    }

    let _ = writeln!(
        w,
        "# HELP phaseloop_connections_open Open client connections."
    );
    let _ = writeln!(w, "phaseloop_connections_open {}", server_stats.open);
    let _ = writeln!(
        w,
        "# HELP phaseloop_connection_buffer_bytes Buffer memory held by connections."
    );
    let _ = writeln!(
        w,
        "phaseloop_connection_buffer_bytes {}",
        server.buffered_bytes()
    );
    for (name, value) in [
        (
            "phaseloop_connections_accepted_total",
            server_stats.accepted,
        ),
        ("phaseloop_accept_errors_total", server_stats.accept_errors),
        ("phaseloop_accept_pauses_total", server_stats.accept_pauses),
        ("phaseloop_open_files_limit", phaseloop::open_files_limit()),
        ("phaseloop_requests_refused_total", server_stats.refused),
        ("phaseloop_timeouts_total", server_stats.timeouts),
        (
            "phaseloop_body_rate_timeouts_total",
            server_stats.body_rate_timeouts,
        ),
        (
            "phaseloop_request_timeouts_total",
            server_stats.request_timeouts,
        ),
        (
            "phaseloop_response_rate_closes_total",
            server_stats.response_rate_closes,
        ),
        (
            "phaseloop_handler_panics_total",
            server_stats.handler_panics,
        ),
        (
            "phaseloop_handler_timeouts_total",
            server_stats.handler_timeouts,
        ),
        ("phaseloop_socket_reads_total", server_stats.socket_reads),
    ] {
        let _ = writeln!(w, "{name} {value}");
    }

    if let Some(cluster) = cluster {
        let _ = writeln!(
            w,
            "# HELP phaseloop_loop_requests_total Requests served by each loop (balance)."
        );
        for (i, s) in cluster.per_loop().iter().enumerate() {
            let _ = writeln!(
                w,
                "phaseloop_loop_requests_total{{loop=\"{i}\"}} {}",
                s.requests
            );
        }
    }
    for (name, value) in [
        ("phaseloop_users_cache_hits_total", demo.cache_hits),
        ("phaseloop_users_cache_misses_total", demo.cache_misses),
        ("phaseloop_users_store_reads_total", demo.store_reads),
        ("phaseloop_orders_stored", demo.orders as u64),
        (
            "phaseloop_notifications_delivered_total",
            demo.notifications,
        ),
        ("phaseloop_notifications_replayed_total", demo.replayed),
        ("phaseloop_journal_pending", demo.journal_pending as u64),
        (
            "phaseloop_journal_write_failures_total",
            demo.journal_failures,
        ),
        ("phaseloop_journals_damaged", demo.journals_damaged),
    ] {
        let _ = writeln!(w, "{name} {value}");
    }
    out
}
