//! `/metrics` in the Prometheus text format, and the per-route counters a
//! middleware keeps for it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::rc::Rc;
use std::time::Instant;

use hdrhistogram::Histogram;
use phaseloop::{Next, Request, Responder, ServerStats};
use phaseloop_core::{Lane, Loop, Phase};

/// Requests counted by (route, status) and a latency histogram. Bounded:
/// routes and statuses are finite; unmatched paths count as one route.
pub struct RequestMetrics {
    counts: RefCell<BTreeMap<(Rc<str>, u16), u64>>,
    latency_us: RefCell<Histogram<u64>>,
    unmatched: Rc<str>,
}

impl RequestMetrics {
    pub fn new() -> Rc<RequestMetrics> {
        Rc::new(RequestMetrics {
            counts: RefCell::new(BTreeMap::new()),
            latency_us: RefCell::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds"),
            ),
            unmatched: "unmatched".into(),
        })
    }

    /// The middleware that counts every response.
    pub fn middleware(self: &Rc<Self>) -> impl Fn(&Loop, Request, Responder, Next) + 'static {
        let metrics = self.clone();
        move |lp, req, mut res, next| {
            let route = req
                .route()
                .cloned()
                .unwrap_or_else(|| metrics.unmatched.clone());
            let start = Instant::now();
            let m = metrics.clone();
            res.on_send(move |response| {
                *m.counts
                    .borrow_mut()
                    .entry((route, response.status()))
                    .or_insert(0) += 1;
                m.latency_us
                    .borrow_mut()
                    .saturating_record(start.elapsed().as_micros().max(1) as u64);
            });
            next.run(lp, req, res)
        }
    }
}

/// Figures the demo itself keeps.
pub struct DemoFigures {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub store_reads: u64,
    pub orders: usize,
    pub notifications: u64,
    pub replayed: u64,
    pub journal_pending: usize,
}

pub fn render(
    lp: &Loop,
    req_metrics: &RequestMetrics,
    server: &ServerStats,
    demo: &DemoFigures,
) -> String {
    let mut out = String::with_capacity(4096);
    let w = &mut out;
    let _ = writeln!(
        w,
        "# HELP phaseloop_http_requests_total Responses sent, by route and status."
    );
    let _ = writeln!(w, "# TYPE phaseloop_http_requests_total counter");
    for ((route, status), n) in req_metrics.counts.borrow().iter() {
        let _ = writeln!(
            w,
            "phaseloop_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    let lat = req_metrics.latency_us.borrow();
    let _ = writeln!(
        w,
        "# HELP phaseloop_http_request_duration_seconds Time from dispatch to response."
    );
    let _ = writeln!(w, "# TYPE phaseloop_http_request_duration_seconds summary");
    for q in [0.5, 0.9, 0.99, 0.999] {
        let _ = writeln!(
            w,
            "phaseloop_http_request_duration_seconds{{quantile=\"{q}\"}} {:.6}",
            lat.value_at_quantile(q) as f64 / 1e6
        );
    }
    let _ = writeln!(
        w,
        "phaseloop_http_request_duration_seconds_count {}",
        lat.len()
    );

    let m = lp.metrics();
    let _ = writeln!(
        w,
        "# HELP phaseloop_event_loop_delay_seconds Event-loop delay (monitorEventLoopDelay)."
    );
    let _ = writeln!(w, "# TYPE phaseloop_event_loop_delay_seconds summary");
    for q in [0.5, 0.9, 0.99, 1.0] {
        let _ = writeln!(
            w,
            "phaseloop_event_loop_delay_seconds{{quantile=\"{q}\"}} {:.6}",
            m.loop_delay.value_at_quantile(q) as f64 / 1e9
        );
    }
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
    let _ = writeln!(w, "phaseloop_connections_open {}", server.open);
    let _ = writeln!(
        w,
        "phaseloop_connections_accepted_total {}",
        server.accepted
    );
    let _ = writeln!(w, "phaseloop_accept_errors_total {}", server.accept_errors);
    let _ = writeln!(w, "phaseloop_accept_pauses_total {}", server.accept_pauses);
    let _ = writeln!(w, "phaseloop_requests_refused_total {}", server.refused);
    let _ = writeln!(w, "phaseloop_timeouts_total {}", server.timeouts);
    let _ = writeln!(
        w,
        "phaseloop_handler_panics_total {}",
        server.handler_panics
    );

    let _ = writeln!(w, "phaseloop_users_cache_hits_total {}", demo.cache_hits);
    let _ = writeln!(
        w,
        "phaseloop_users_cache_misses_total {}",
        demo.cache_misses
    );
    let _ = writeln!(w, "phaseloop_users_store_reads_total {}", demo.store_reads);
    let _ = writeln!(w, "phaseloop_orders_stored {}", demo.orders);
    let _ = writeln!(
        w,
        "phaseloop_notifications_delivered_total {}",
        demo.notifications
    );
    let _ = writeln!(
        w,
        "phaseloop_notifications_replayed_total {}",
        demo.replayed
    );
    let _ = writeln!(w, "phaseloop_journal_pending {}", demo.journal_pending);
    out
}
