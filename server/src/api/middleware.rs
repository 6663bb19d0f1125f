//! Ready-made middleware.

pub use crate::api::compression::{negotiate, Coding, Compression};

use std::rc::Rc;
use std::time::{Duration, Instant};

use phaseloop_core::Loop;

use crate::api::handler::{Middleware, Next};
use crate::api::responder::Responder;
use crate::http::request::Request;

/// Logs one line per request to stderr when the response is sent:
/// method, path, status, time from dispatch to response.
pub fn logger() -> impl Middleware {
    |lp: &Loop, req: Request, mut res: Responder, next: Next| {
        let start = Instant::now();
        let line = format!("{} {}", req.method_str(), req.path());
        res.on_send(move |response| {
            phaseloop_core::report!(
                info,
                {},
                "{line} {} {:.3} ms",
                response.status(),
                start.elapsed().as_secs_f64() * 1e3
            );
        });
        next.run(lp, req, res)
    }
}

/// Adds `X-Request-Id` to every response: the client's own if it sent a
/// valid one (1 to 128 visible characters), else a new id unique across
/// the process's loops and across processes (a random per-process prefix
/// and a process-wide counter: `5f0c3a9e17d2b4c1-2a`).
pub fn request_id() -> impl Middleware {
    |lp: &Loop, req: Request, mut res: Responder, next: Next| {
        let id = match req.header("x-request-id") {
            Some(v)
                if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                v.to_string()
            }
            _ => new_request_id(),
        };
        // On the request's span, when there is one (see the engine's drive).
        tracing::Span::current().record("request_id", id.as_str());
        res.on_send(move |response| response.set_header("X-Request-Id", id));
        next.run(lp, req, res)
    }
}

/// A new request id: this process's random prefix, then a counter.
pub fn new_request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // std's hasher keys are random per process: no crate needed for a
    // prefix two processes will not share.
    let prefix = *PREFIX.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    format!("{prefix:016x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Rate limiting by token bucket, per client: `rate` requests a second
/// on average, bursts of up to `burst`. A client over its rate gets
/// `429 Too Many Requests` with `Retry-After` (whole seconds) through the
/// error renderer. Clients are told apart by address, or by a key of your
/// own ([`RateLimit::key`]); at most `max_clients` are remembered (the
/// least recently seen are forgotten first), so memory stays bounded
/// whatever the number of addresses. Each loop keeps its own buckets: on
/// N loops a client may get up to N times the rate.
#[derive(Clone)]
#[must_use]
pub struct RateLimit {
    inner: Rc<std::cell::RefCell<Buckets>>,
    key: Option<KeyFn>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.inner.borrow();
        f.debug_struct("RateLimit")
            .field("rate", &b.rate)
            .field("burst", &b.burst)
            .field("clients", &b.map.len())
            .finish()
    }
}

/// How a [`RateLimit`] tells clients apart.
type KeyFn = Rc<dyn Fn(&Request) -> Option<String>>;

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Loop time of the last refill, ns.
    at: u64,
    /// Bumped on each use; the eviction queue's entry is current only if
    /// it carries the same number.
    touched: u64,
}

#[derive(Debug)]
struct Buckets {
    rate: f64,
    burst: f64,
    max_clients: usize,
    map: std::collections::HashMap<String, Bucket>,
    /// Keys in the order last seen (with the `touched` they had then):
    /// the front is evicted first, unless seen since (then it goes back).
    order: std::collections::VecDeque<(String, u64)>,
    uses: u64,
}

impl RateLimit {
    /// `rate` requests a second per client, bursts of `burst`, 100,000
    /// clients remembered.
    pub fn new(rate: f64, burst: u32) -> RateLimit {
        RateLimit {
            inner: Rc::new(std::cell::RefCell::new(Buckets {
                rate: rate.max(f64::MIN_POSITIVE),
                burst: f64::from(burst.max(1)),
                max_clients: 100_000,
                map: std::collections::HashMap::new(),
                order: std::collections::VecDeque::new(),
                uses: 0,
            })),
            key: None,
        }
    }

    /// How many clients' buckets are kept at most.
    pub fn max_clients(self, n: usize) -> RateLimit {
        self.inner.borrow_mut().max_clients = n.max(1);
        self
    }

    /// Tells clients apart by `key` (an API key header, say) instead of
    /// their address; `None` falls back to the address.
    pub fn key(mut self, key: impl Fn(&Request) -> Option<String> + 'static) -> RateLimit {
        self.key = Some(Rc::new(key));
        self
    }

    /// Clients whose buckets are kept now.
    pub fn tracked_clients(&self) -> usize {
        self.inner.borrow().map.len()
    }

    /// Takes a token for `key` at loop time `now` (ns): `Ok`, or how long
    /// until one is there.
    fn take(&self, key: String, now: u64) -> Result<(), Duration> {
        let mut b = self.inner.borrow_mut();
        let (rate, burst) = (b.rate, b.burst);
        b.uses += 1;
        let uses = b.uses;
        let fresh = !b.map.contains_key(&key);
        if fresh {
            b.evict_for_one();
            b.order.push_back((key.clone(), uses));
        }
        let bucket = b.map.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
            touched: uses,
        });
        let elapsed = now.saturating_sub(bucket.at) as f64 / 1e9;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        bucket.touched = uses;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

impl Buckets {
    /// Makes room for one more client: forgets the least recently seen
    /// (an entry seen since it was queued goes back with its new mark).
    fn evict_for_one(&mut self) {
        while self.map.len() >= self.max_clients {
            let Some((key, mark)) = self.order.pop_front() else {
                return;
            };
            match self.map.get(&key) {
                Some(b) if b.touched != mark => {
                    let touched = b.touched;
                    self.order.push_back((key, touched));
                }
                _ => {
                    self.map.remove(&key);
                }
            }
        }
    }
}

impl Middleware for RateLimit {
    fn call(&self, lp: &Loop, req: Request, res: Responder, next: Next) {
        let key = self
            .key
            .as_ref()
            .and_then(|k| k(&req))
            .or_else(|| req.peer_addr().map(|a| a.ip().to_string()))
            .unwrap_or_default();
        match self.take(key, lp.now_ns()) {
            Ok(()) => next.run(lp, req, res),
            Err(wait) => {
                let retry = wait.as_secs_f64().ceil().max(1.0) as u64;
                let error = crate::http::Error::new(429, "too many requests; slow down");
                let mut response = res.render_error(&req, error);
                response.set_header("Retry-After", retry);
                res.send(response);
            }
        }
    }
}

/// The methods a CORS preflight is told about by default.
const CORS_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Cross-origin resource sharing (the Fetch standard's CORS protocol),
/// configured, as middleware: `.wrap(Cors::new().allow_origins(["https://app.example"]))`.
///
/// A request from an allowed origin gets `Access-Control-Allow-Origin` on
/// its response, whatever answers it (the server's own refusals too, so a
/// browser sees a 413 as a 413), and `Vary: Origin`. A preflight
/// (`OPTIONS` with `Access-Control-Request-Method`) is answered `204` here:
/// with the allowed methods and headers when the method asked for is
/// allowed, without them (the browser then refuses) when not. Other
/// origins get no CORS fields.
#[derive(Debug, Clone)]
#[must_use]
pub struct Cors {
    /// Lower-cased; empty with `any_origin`.
    origins: Vec<String>,
    any_origin: bool,
    methods: Vec<String>,
    /// `None`: whatever a preflight asks for.
    headers: Option<Vec<String>>,
    expose: Vec<String>,
    credentials: bool,
    max_age: Duration,
}

impl Default for Cors {
    fn default() -> Self {
        Cors::new()
    }
}

impl Cors {
    /// No origin allowed yet; the usual methods; any request header;
    /// preflights cached 10 minutes.
    pub fn new() -> Cors {
        Cors {
            origins: Vec::new(),
            any_origin: false,
            methods: CORS_METHODS.split(", ").map(String::from).collect(),
            headers: None,
            expose: Vec::new(),
            credentials: false,
            max_age: Duration::from_secs(600),
        }
    }

    /// Origins allowed (`"https://app.example"`; `"*"`: any).
    pub fn allow_origins<'a>(mut self, origins: impl IntoIterator<Item = &'a str>) -> Cors {
        for origin in origins {
            if origin == "*" {
                self.any_origin = true;
            } else {
                self.origins.push(origin.to_ascii_lowercase());
            }
        }
        self
    }

    /// The methods allowed (replacing the default list).
    pub fn allow_methods<'a>(mut self, methods: impl IntoIterator<Item = &'a str>) -> Cors {
        self.methods = methods
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        self
    }

    /// The request headers allowed (default: any a preflight asks for).
    pub fn allow_headers<'a>(mut self, headers: impl IntoIterator<Item = &'a str>) -> Cors {
        self.headers = Some(
            headers
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// Response headers scripts may read (`Access-Control-Expose-Headers`).
    pub fn expose_headers<'a>(mut self, headers: impl IntoIterator<Item = &'a str>) -> Cors {
        self.expose = headers.into_iter().map(String::from).collect();
        self
    }

    /// Allows credentials (cookies): the origin is then echoed, never `*`.
    pub fn allow_credentials(mut self, allow: bool) -> Cors {
        self.credentials = allow;
        self
    }

    /// How long a browser may cache a preflight's answer.
    pub fn max_age(mut self, age: Duration) -> Cors {
        self.max_age = age;
        self
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if allowed.
    fn allowed(&self, origin: &str) -> Option<String> {
        let listed = self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin));
        match (
            listed || self.any_origin,
            self.any_origin && !self.credentials && !listed,
        ) {
            (false, _) => None,
            (true, true) => Some("*".to_string()),
            (true, false) => Some(origin.to_string()),
        }
    }

    /// The answer to a preflight from an allowed origin.
    fn preflight(&self, req: &Request, allow: String) -> crate::Response {
        let mut response = crate::Response::new(204);
        response.append_header("Vary", "Origin");
        let method = req.header("access-control-request-method").unwrap_or("");
        if !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return response; // no CORS fields: the browser refuses
        }
        let asked = req.header("access-control-request-headers").unwrap_or("");
        let headers = match &self.headers {
            None => asked.to_string(),
            Some(allowed) => {
                let all_allowed = asked
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .all(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)));
                if !all_allowed {
                    return response;
                }
                allowed.join(", ")
            }
        };
        response.set_header("Access-Control-Allow-Origin", allow);
        response.set_header("Access-Control-Allow-Methods", self.methods.join(", "));
        if !headers.is_empty() {
            response.set_header("Access-Control-Allow-Headers", headers);
        }
        if self.credentials {
            response.set_header("Access-Control-Allow-Credentials", "true");
        }
        response.set_header("Access-Control-Max-Age", self.max_age.as_secs());
        response
    }
}

impl Middleware for Cors {
    fn call(&self, lp: &Loop, req: Request, mut res: Responder, next: Next) {
        let Some(allow) = req.header("origin").and_then(|o| self.allowed(o)) else {
            return next.run(lp, req, res);
        };
        let preflight = req.method() == crate::http::request::Method::Options
            && req.header("access-control-request-method").is_some();
        if preflight {
            let response = self.preflight(&req, allow);
            return res.send(response);
        }
        let credentials = self.credentials;
        let expose = (!self.expose.is_empty()).then(|| self.expose.join(", "));
        res.on_send(move |response| {
            response.set_header("Access-Control-Allow-Origin", allow);
            response.append_header("Vary", "Origin");
            if credentials {
                response.set_header("Access-Control-Allow-Credentials", "true");
            }
            if let Some(expose) = expose {
                response.set_header("Access-Control-Expose-Headers", expose);
            }
        });
        next.run(lp, req, res)
    }
}

/// [`Cors`] for requests from `origins` (`["*"]`: any), with its defaults.
pub fn cors(origins: &[&str]) -> Cors {
    Cors::new().allow_origins(origins.iter().copied())
}
