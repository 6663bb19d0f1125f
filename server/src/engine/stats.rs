//! The engine's counters: per server, per route and status, and the
//! dispatch-to-answer latency histogram.

use std::rc::Rc;

use crate::engine::service::{Service, Target};
use crate::engine::Engine;

/// Highest handler latency the histogram tracks, in microseconds (an hour).
pub(crate) const LATENCY_MAX_US: u64 = 3_600_000_000;

/// Counters a server keeps (read with [`crate::Server::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Of those, connections with request work in hand now: an exchange
    /// (buffers, parsing state, the queue of answers). The others are idle
    /// and keep only their socket and their place in a waiting list.
    pub busy: u64,
    /// Connections closed (counted in the loop's close phase).
    pub closed: u64,
    /// Requests dispatched to handlers.
    pub requests: u64,
    /// Handlers' answers by class: 1xx..5xx at index 1..5 (the codec's
    /// refusals are counted in `refused`).
    pub responses_by_class: [u64; 6],
    /// Requests refused by the codec (400, 413, 414, 431, 501, 505...).
    pub refused: u64,
    /// Connections closed by a timeout (of any kind, those below included).
    pub timeouts: u64,
    /// Requests refused (408) for a body arriving below its minimum rate.
    pub body_rate_timeouts: u64,
    /// Requests refused (408) for taking longer than the request timeout.
    pub request_timeouts: u64,
    /// Connections closed for taking our response below the minimum rate.
    pub response_rate_closes: u64,
    /// accept() failures, EMFILE/ENFILE included.
    pub accept_errors: u64,
    /// Times accepting paused because descriptors ran out.
    pub accept_pauses: u64,
    /// Handlers that panicked.
    pub handler_panics: u64,
    /// Requests answered 503 because their handler passed
    /// [`crate::ServerConfig::handler_timeout`].
    pub handler_timeouts: u64,
    /// `read` calls on connections (about one per request on a keep-alive
    /// connection, far fewer when pipelined: no `read` follows a short one).
    pub socket_reads: u64,
    /// Connections handed to another protocol after a 101 (WebSocket):
    /// no longer the server's, counted neither open nor closed.
    pub upgraded: u64,
    /// TLS handshakes completed (feature `tls`; 0 on plain HTTP).
    pub tls_handshakes: u64,
    /// TLS handshakes that failed: garbage instead of a ClientHello, no
    /// common version or cipher, a client refusing our certificate, a
    /// peer gone mid-handshake.
    pub tls_handshake_errors: u64,
    /// TLS errors after the handshake (a bad record, a fatal alert).
    pub tls_errors: u64,
}

/// Responses of one route, by status code, and its latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStats {
    /// The route's pattern (`GET /api/users/:id`), or `unmatched` for 404/405.
    pub route: Rc<str>,
    /// (status, responses) in order of first appearance.
    pub by_status: Vec<(u16, u64)>,
    /// The 99th percentile of its dispatch-to-answer time (`None` before
    /// its first answer).
    pub p99: Option<std::time::Duration>,
}

/// What the engine keeps of one route.
#[derive(Default)]
pub(crate) struct RouteFigures {
    /// (status, count) pairs, in order of first appearance.
    by_status: Vec<(u16, u64)>,
    /// Answers given during their own dispatch (the loop's clock has not
    /// moved: 1 µs). Counted apart and added when the latency is read:
    /// most answers are these, and a counter is a tenth of a record.
    at_once: u64,
    /// Slower answers' time, microseconds (made at the first of them; one
    /// record per answer, into the route's own histogram instead of one
    /// for the server: per-route figures at no cost per request).
    latency: Option<Box<hdrhistogram::Histogram<u64>>>,
}

impl RouteFigures {
    /// Its latency's 99th percentile, the at-once answers (1 µs) counted
    /// in: read off the histogram in place (a scrape asks for every route).
    fn p99(&self) -> Option<std::time::Duration> {
        let slower = self.latency.as_ref().map_or(0, |h| h.len());
        let total = slower + self.at_once;
        if total == 0 {
            return None;
        }
        // The rank of the 99th percentile among all answers; the at-once
        // ones are the lowest.
        let rank = (total as f64 * 0.99).ceil() as u64;
        let us = match &self.latency {
            Some(h) if rank > self.at_once => {
                h.value_at_quantile((rank - self.at_once) as f64 / slower as f64)
            }
            _ => 1,
        };
        Some(std::time::Duration::from_micros(us))
    }
}

/// A latency histogram: 1 µs to an hour, two significant digits (a
/// route's costs 25 KB; three digits would cost ten times that).
fn new_latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, LATENCY_MAX_US, 2).expect("static bounds are valid")
}

impl<S: Service> Engine<S> {
    /// Counts a response for its route and records its latency.
    // Inline into the responder's answer, its one caller.
    #[inline(always)]
    pub(crate) fn record(&self, route: u32, status: u16, took_ns: u64) {
        let mut stats = self.route_stats.borrow_mut();
        let last = stats.len() - 1;
        let figures = &mut stats[(route as usize).min(last)];
        let by_status = &mut figures.by_status;
        match by_status.first_mut() {
            // A route nearly always answers with its first status.
            Some((s, n)) if *s == status => *n += 1,
            _ => match by_status.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => by_status.push((status, 1)),
            },
        }
        if took_ns < 2_000 {
            figures.at_once += 1;
            return;
        }
        let us = (took_ns / 1_000).min(LATENCY_MAX_US);
        figures
            .latency
            .get_or_insert_with(|| Box::new(new_latency_histogram()))
            .saturating_record(us);
    }

    pub(crate) fn note_handler_panic(&self) {
        self.stats.borrow_mut().handler_panics += 1;
    }

    /// Responses by route and status.
    pub(crate) fn route_stats(&self) -> Vec<RouteStats> {
        self.route_stats
            .borrow()
            .iter()
            .enumerate()
            .map(|(i, figures)| RouteStats {
                // The last entry counts requests that matched no route.
                route: (i < self.service.route_count())
                    .then(|| self.service.label(Target::Route { index: i as u32 }))
                    .flatten()
                    .unwrap_or_else(|| "unmatched".into()),
                by_status: figures.by_status.clone(),
                p99: figures.p99(),
            })
            .collect()
    }

    /// Time from dispatch to response of every request so far, in
    /// microseconds (see [`crate::Server::latency_histogram`]).
    pub(crate) fn latency_histogram(&self) -> hdrhistogram::Histogram<u64> {
        // The routes' histograms added up when asked (a scrape, a feed),
        // so no answer records twice.
        let mut total = new_latency_histogram();
        for figures in self.route_stats.borrow().iter() {
            if let Some(h) = &figures.latency {
                let _ = total.add(&**h);
            }
            total.saturating_record_n(1, figures.at_once);
        }
        total
    }

    /// A copy of the server's counters.
    pub(crate) fn stats(&self) -> ServerStats {
        let mut stats = self.stats.borrow().clone();
        // Counted when asked (a walk over the connections), not kept up to
        // date on every request.
        stats.busy = self
            .conns
            .borrow()
            .iter()
            .filter(|(_, c)| c.ex.is_some())
            .count() as u64;
        // Every handler's answer is counted once, by route and status;
        // the classes are added up from there when asked for.
        for figures in self.route_stats.borrow().iter() {
            for &(status, n) in &figures.by_status {
                stats.responses_by_class[usize::from(status / 100).min(5)] += n;
            }
        }
        #[cfg(feature = "tls")]
        {
            let tls = &self.tls_counters;
            stats.tls_handshakes = tls.handshakes.get();
            stats.tls_handshake_errors = tls.handshake_errors.get();
            stats.tls_errors = tls.errors.get();
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_counts_the_answers_given_at_once_as_the_fastest() {
        let mut f = RouteFigures::default();
        assert_eq!(f.p99(), None);
        f.at_once = 990;
        let mut h = new_latency_histogram();
        h.saturating_record_n(5_000, 10);
        f.latency = Some(Box::new(h));
        // 990 of 1,000 at once: the 99th percentile is one of them.
        assert_eq!(f.p99(), Some(std::time::Duration::from_micros(1)));
        f.at_once = 980;
        // 980 at once, 10 at 5 ms: the 990th answer is a slow one.
        let p99 = f.p99().unwrap().as_micros();
        assert!((4_900..=5_100).contains(&p99), "{p99}");
        let only_slow = RouteFigures {
            latency: f.latency.take(),
            ..Default::default()
        };
        assert!(only_slow.p99().unwrap().as_micros() >= 4_900);
    }
}
