//! The restaurant notification, delivered for real: a webhook
//! (`POST {restaurant}/orders` with the order as JSON and an
//! `Idempotency-Key`, the order id) sent with the loop's HTTP client, from
//! a durable outbox.
//!
//! - The intent is on disk before the 201 (the order record says
//!   `"notify": true`); every attempt's outcome is journalled
//!   (`notifications*.log`: a failed attempt, the delivery, or a final
//!   failure), so after a crash every undelivered notification resumes,
//!   attempts counted. Delivery is at least once; the key lets the
//!   receiver act once.
//! - A 2xx delivers. A 4xx other than 408 and 429 is final: the order's
//!   notification has failed. Anything else (5xx, 408, 429, a refused or
//!   reset connection, a bad response, a timeout) is tried again after an
//!   exponential backoff with full jitter (100 ms doubling to 60 s), or
//!   the server's `Retry-After` if it says longer.
//! - A circuit breaker per endpoint: after [`BREAKER_FAILURES`] failures in
//!   a row it opens, and nothing is sent (deliveries wait) until its
//!   cool-down passes; then one probe goes; its success closes it, its
//!   failure opens it again.
//! - Bounded: at most [`MAX_IN_FLIGHT`] deliveries at once, at most
//!   [`MAX_QUEUED`] order ids waiting in memory; past that they stay on
//!   disk (in the order index, marked pending) and are picked up when the
//!   queue drains.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::time::Duration;

use phaseloop::client::{
    Client, ClientConfig, ClientError, ClientRequest, ClientResponse, ClientTls,
};
use phaseloop_core::{Loop, TimerId};

use crate::orders::Orders;

/// Deliveries sent at once, at most.
pub const MAX_IN_FLIGHT: usize = 64;
/// Order ids waiting in memory, at most; the rest wait on disk.
pub const MAX_QUEUED: usize = 10_000;
/// Failures in a row that open the breaker.
pub const BREAKER_FAILURES: u32 = 5;
/// The first retry's backoff ceiling; it doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The backoff's ceiling.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// One delivery's whole-request timeout.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries go.
    Closed,
    /// Nothing goes until the cool-down ends.
    Open,
    /// One probe is out (or may go).
    HalfOpen,
}

impl BreakerState {
    /// As a gauge: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

struct Breaker {
    state: BreakerState,
    failures: u32,
    /// When an open breaker lets a probe go (loop nanoseconds).
    opens_until: u64,
    probe_out: bool,
    cool_down: Duration,
}

impl Breaker {
    /// Whether a delivery may go now; in half-open, it becomes the probe.
    fn allows(&mut self, now: u64) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open if now >= self.opens_until => {
                self.state = BreakerState::HalfOpen;
                self.probe_out = true;
                true
            }
            BreakerState::Open => false,
            BreakerState::HalfOpen if !self.probe_out => {
                self.probe_out = true;
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    fn success(&mut self) {
        self.state = BreakerState::Closed;
        self.failures = 0;
        self.probe_out = false;
    }

    /// A failure; true if it opened the breaker.
    fn failure(&mut self, now: u64) -> bool {
        self.failures += 1;
        let open = self.state == BreakerState::HalfOpen || self.failures >= BREAKER_FAILURES;
        if open {
            self.state = BreakerState::Open;
            self.probe_out = false;
            self.opens_until = now.saturating_add(nanos(self.cool_down));
        }
        open
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What the outbox has done, for /metrics.
#[derive(Debug, Default, Clone)]
pub struct OutboxFigures {
    pub retries: u64,
    pub failed: u64,
    pub breaker: u64,
    pub breaker_opened: u64,
    pub depth: u64,
}

/// The restaurant system notifications go to: its base URL, to which
/// `/orders` is added.
pub enum Target {
    /// A base URL given (`--notify-url`), and whom an `https` one trusts
    /// (`--notify-ca`; else Mozilla's roots).
    Fixed(String, Option<ClientTls>),
    /// This server's embedded restaurant (`http://ADDR/restaurant`), known
    /// once the server listens (`None` before).
    ThisServer(Box<dyn Fn() -> Option<String>>),
}

impl Target {
    /// The client settings for this target: `base` with its TLS trust.
    pub fn client_config(&self, base: ClientConfig) -> ClientConfig {
        match self {
            Target::Fixed(_, Some(tls)) => ClientConfig {
                tls: Some(tls.clone()),
                ..base
            },
            _ => base,
        }
    }
}

/// One loop's outbox.
pub struct Outbox {
    client: Client,
    target: Target,
    orders: RefCell<Weak<Orders>>,
    queue: RefCell<VecDeque<u64>>,
    /// Ids waiting for their retry's time (bounded with the queue).
    retrying: RefCell<HashMap<u64, TimerId>>,
    in_flight: Cell<usize>,
    /// Ids beyond the queue's bound were left on disk: look for them when
    /// it drains.
    overflowed: Cell<bool>,
    breaker: RefCell<Breaker>,
    /// A timer to send again once the breaker's cool-down ends.
    wake: Cell<Option<TimerId>>,
    rng: Cell<u64>,
    /// When each order in memory was first scheduled (ms since the epoch),
    /// for the delivery latency.
    since: RefCell<HashMap<u64, u64>>,
    pub delivered: Cell<u64>,
    pub retries: Cell<u64>,
    pub failed: Cell<u64>,
    pub breaker_opened: Cell<u64>,
    /// From the order's save to its delivery, milliseconds.
    pub latency_ms: RefCell<phaseloop::hdrhistogram::Histogram<u64>>,
}

impl Outbox {
    /// An outbox delivering to `target`, its breaker cooling down for
    /// `cool_down` once open.
    pub fn new(target: Target, cool_down: Duration) -> Rc<Outbox> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        Rc::new(Outbox {
            client: Client::new(target.client_config(ClientConfig {
                max_sockets_per_origin: 16,
                max_waiting_per_origin: MAX_IN_FLIGHT,
                // The outbox retries itself (with backoff): one try each.
                retries: 0,
                ..ClientConfig::default()
            })),
            target,
            orders: RefCell::new(Weak::new()),
            queue: RefCell::new(VecDeque::new()),
            retrying: RefCell::new(HashMap::new()),
            in_flight: Cell::new(0),
            overflowed: Cell::new(false),
            breaker: RefCell::new(Breaker {
                state: BreakerState::Closed,
                failures: 0,
                opens_until: 0,
                probe_out: false,
                cool_down,
            }),
            wake: Cell::new(None),
            rng: Cell::new(seed),
            since: RefCell::new(HashMap::new()),
            delivered: Cell::new(0),
            retries: Cell::new(0),
            failed: Cell::new(0),
            breaker_opened: Cell::new(0),
            latency_ms: RefCell::new(
                phaseloop::hdrhistogram::Histogram::new_with_bounds(1, 24 * 3_600_000, 2)
                    .expect("static bounds are valid"),
            ),
        })
    }

    /// Where notifications go now: `{restaurant}/orders`.
    fn url(&self) -> Option<String> {
        let base = match &self.target {
            Target::Fixed(url, _) => url.clone(),
            Target::ThisServer(resolve) => resolve()?,
        };
        Some(format!("{}/orders", base.trim_end_matches('/')))
    }

    pub fn attach(&self, orders: &Rc<Orders>) {
        *self.orders.borrow_mut() = Rc::downgrade(orders);
    }

    pub fn figures(&self) -> OutboxFigures {
        OutboxFigures {
            retries: self.retries.get(),
            failed: self.failed.get(),
            breaker: self.breaker.borrow().state.as_gauge(),
            breaker_opened: self.breaker_opened.get(),
            depth: (self.queue.borrow().len() + self.retrying.borrow().len() + self.in_flight.get())
                as u64,
        }
    }

    /// Order `id`'s notification is due: queued (or left on disk when the
    /// queue is full).
    pub fn enqueue(self: &Rc<Self>, lp: &Loop, id: u64) {
        {
            let mut queue = self.queue.borrow_mut();
            if queue.len() >= MAX_QUEUED {
                self.overflowed.set(true);
                return;
            }
            queue.push_back(id);
        }
        self.since
            .borrow_mut()
            .entry(id)
            .or_insert_with(crate::now_ms);
        self.pump(lp);
    }

    /// Sends what may go now.
    fn pump(self: &Rc<Self>, lp: &Loop) {
        loop {
            if self.in_flight.get() >= MAX_IN_FLIGHT {
                return;
            }
            if self.queue.borrow().is_empty() {
                if self.overflowed.replace(false) {
                    self.pick_up_from_disk();
                    if !self.queue.borrow().is_empty() {
                        continue;
                    }
                }
                return;
            }
            let now = lp.now_ns();
            if !self.breaker.borrow_mut().allows(now) {
                self.wake_after_cool_down(lp);
                return;
            }
            let Some(id) = self.queue.borrow_mut().pop_front() else {
                return;
            };
            self.send(lp, id);
        }
    }

    /// Ids left on disk by a full queue: the index's pending ones of this
    /// slot, up to the bound.
    fn pick_up_from_disk(&self) {
        let Some(orders) = self.orders.borrow().upgrade() else {
            return;
        };
        let retrying = self.retrying.borrow();
        let mut ids = orders.pending_ids(MAX_QUEUED / 2);
        ids.retain(|id| !retrying.contains_key(id));
        if ids.len() >= MAX_QUEUED / 2 {
            self.overflowed.set(true);
        }
        let now = crate::now_ms();
        let mut since = self.since.borrow_mut();
        for &id in &ids {
            since.entry(id).or_insert(now);
        }
        self.queue.borrow_mut().extend(ids);
    }

    fn wake_after_cool_down(self: &Rc<Self>, lp: &Loop) {
        if self.wake.get().is_some() {
            return;
        }
        let until = self.breaker.borrow().opens_until;
        let delay = Duration::from_nanos(until.saturating_sub(lp.now_ns()))
            .max(phaseloop_core::MIN_TIMER_DELAY);
        let me = Rc::downgrade(self);
        let timer = lp.set_timeout(delay, move |lp| {
            if let Some(me) = me.upgrade() {
                me.wake.set(None);
                me.pump(lp);
            }
        });
        self.wake.set(Some(timer));
    }

    /// Sends order `id`'s webhook.
    fn send(self: &Rc<Self>, lp: &Loop, id: u64) {
        let Some(orders) = self.orders.borrow().upgrade() else {
            return;
        };
        if !orders.begin_delivery(id) {
            // Delivered or failed already (a duplicate id in the queue),
            // or unknown: nothing to send; its breaker slot is given back.
            self.breaker.borrow_mut().probe_out = false;
            self.since.borrow_mut().remove(&id);
            return;
        }
        self.in_flight.set(self.in_flight.get() + 1);
        let me = self.clone();
        orders.read_order(lp, id, move |lp, record| {
            let body = match record {
                Ok(body) => body,
                Err(e) => {
                    // The store could not be read now (a busy pool): try later.
                    return me.after_attempt(lp, id, Err(ClientError::Io(e)), None);
                }
            };
            let Some(url) = me.url() else {
                let error = ClientError::Io("the server is not listening yet".into());
                return me.after_attempt(lp, id, Err(error), None);
            };
            let req = ClientRequest::post(&url)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", id.to_string())
                .body(body)
                .timeout(DELIVERY_TIMEOUT);
            let me2 = me.clone();
            me.client.send(lp, req, move |lp, result| {
                let retry_after = result.as_ref().ok().and_then(retry_after);
                me2.after_attempt(lp, id, result.map(|r| r.status), retry_after);
            });
        });
    }

    /// An attempt of order `id` ended with `result` (a status, or why it
    /// got none).
    fn after_attempt(
        self: &Rc<Self>,
        lp: &Loop,
        id: u64,
        result: Result<u16, ClientError>,
        retry_after: Option<Duration>,
    ) {
        self.in_flight.set(self.in_flight.get() - 1);
        let Some(orders) = self.orders.borrow().upgrade() else {
            return;
        };
        let now = lp.now_ns();
        match classify(result.map_err(|e| e.to_string())) {
            Attempt::Delivered => {
                self.breaker.borrow_mut().success();
                self.delivered.set(self.delivered.get() + 1);
                if let Some(since) = self.since.borrow_mut().remove(&id) {
                    let ms = crate::now_ms().saturating_sub(since).max(1);
                    let _ = self.latency_ms.borrow_mut().record(ms);
                }
                orders.delivered(lp, id);
            }
            Attempt::Refused(why) => {
                self.breaker.borrow_mut().success();
                self.failed.set(self.failed.get() + 1);
                self.since.borrow_mut().remove(&id);
                orders.delivery_failed(lp, id, &why);
            }
            Attempt::Retry(error) => {
                if self.breaker.borrow_mut().failure(now) {
                    self.breaker_opened.set(self.breaker_opened.get() + 1);
                }
                self.retries.set(self.retries.get() + 1);
                let attempts = orders.attempt_failed(lp, id, &error);
                self.retry_later(lp, id, attempts, retry_after);
            }
        }
        self.pump(lp);
    }

    /// Schedules order `id`'s next attempt: full jitter over an
    /// exponential ceiling, or the server's `Retry-After` if longer.
    fn retry_later(
        self: &Rc<Self>,
        lp: &Loop,
        id: u64,
        attempts: u32,
        retry_after: Option<Duration>,
    ) {
        let ceiling = BACKOFF_BASE
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
            .min(BACKOFF_MAX);
        let jittered = Duration::from_nanos(self.random() % nanos(ceiling).max(1));
        let delay = retry_after.map_or(jittered, |r| r.max(jittered).min(BACKOFF_MAX * 5));
        let me = Rc::downgrade(self);
        let timer = lp.set_timeout(delay, move |lp| {
            if let Some(me) = me.upgrade() {
                me.retrying.borrow_mut().remove(&id);
                me.enqueue(lp, id);
            }
        });
        self.retrying.borrow_mut().insert(id, timer);
    }

    /// xorshift64*: jitter needs spread, not secrecy.
    fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What a delivery attempt's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx: the restaurant has it.
    Delivered,
    /// A 4xx other than 408/429: understood and refused; trying again
    /// would get the same (the endpoint itself is up). Why, for the record.
    Refused(String),
    /// Anything else (5xx, 408, 429, no answer): try again later. Why.
    Retry(String),
}

/// Classifies an attempt's status, or why it got none (both outboxes,
/// the file journal's and PostgreSQL's, decide the same way).
pub fn classify(result: Result<u16, String>) -> Attempt {
    match result {
        Ok(status) if (200..300).contains(&status) => Attempt::Delivered,
        Ok(status) if (400..500).contains(&status) && status != 408 && status != 429 => {
            Attempt::Refused(format!("refused with {status}"))
        }
        Ok(status) => Attempt::Retry(format!("status {status}")),
        Err(e) => Attempt::Retry(e),
    }
}

/// A `Retry-After` of seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(response: &ClientResponse) -> Option<Duration> {
    let value = response.header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = phaseloop::http::parse_imf_fixdate(value.as_bytes())?;
    let now = crate::now_ms() / 1000;
    Some(Duration::from_secs(at.saturating_sub(now)))
}
