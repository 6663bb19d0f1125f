//! demo-api: the seed articles' high-traffic API on phaseloop.
//!
//! `cargo run --release -p phaseloop-demo` serves on
//! 127.0.0.1:3000 with an embedded file-backed store in `./data`, created on
//! first run. `--help` lists the flags. Each route shows one thing about the
//! loop; the README has a curl line for each.

mod args;
mod files;
mod journal;
mod metrics;
mod orders;
mod outbox;
mod pg_store;
mod primes;
mod restaurant;
mod users;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phaseloop::{middleware, App, Cluster, ClusterStats, Response, ServeDir, Server, ServerConfig};
use phaseloop_core::{crypto, Loop, Pool, PoolError, RunMode};
use serde_json::{json, Value};

const INDEX: &str = "\
phaseloop demo API

GET  /                      this index
POST /echo                  echoes the body (Content-Length or chunked)
GET  /health                {\"status\":\"healthy\",\"timestamp\":...}; never touches the pool
GET  /fast                  answers at once
GET  /slow                  answers after a 3 s timer; the loop serves others meanwhile
GET  /plaintext             Hello, World! (TechEmpower)
GET  /json                  {\"message\":\"Hello, World!\"} (TechEmpower)
GET  /api/users/:id         validation, TTL cache, store read through the thread pool
POST /api/orders            durable order (fsync) then a webhook to the restaurant (outbox)
GET  /api/orders/:id        an order and its notification status
GET  /api/orders/:id/events the order's steps live (Server-Sent Events)
GET  /ws/orders             the same over a WebSocket: send {subscribe: ID} per order (JSON)
POST /restaurant/orders     the embedded restaurant: takes webhooks, once per key
GET  /restaurant/orders     what the embedded restaurant received
POST /api/hash              pbkdf2-sha512 (100,000 rounds) on the thread pool
GET  /files/:name           static files via the pool, gzip via the pool
GET  /primes?limit=N        CPU work on a worker thread: the loop stays free
GET  /primes-blocking?limit=N  the same work on the loop: watch /health stall
GET  /metrics               Prometheus metrics: loop delay, phases, pool, connections
";

/// Limits of `POST /api/hash` inputs.
const MAX_PASSWORD: usize = 1024;
const MAX_SALT: usize = 256;
const HASH_ITERATIONS: u32 = 100_000;

/// 503 with `Retry-After: 1`: the answer whenever a bounded queue (the
/// thread pool's, a journal's) is full.
pub fn busy(message: &str) -> Response {
    Response::json_error(503, message).header("Retry-After", "1")
}

/// The answer for a pool job that produced no result: 503 when the queue
/// was full (retry), 500 when the job failed.
pub fn pool_error(e: PoolError) -> Response {
    match e {
        PoolError::QueueFull => busy("server busy: the thread pool queue is full"),
        other => Response::json_error(500, &other.to_string()),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The body as JSON, whatever its content type (the seed's clients, wrk
/// scripts and oha among them, do not all send one), or a ready 400.
pub fn json_body(req: &phaseloop::Request) -> Result<Value, phaseloop::Response> {
    if req.body().is_empty() {
        return Err(phaseloop::Response::json_error(
            400,
            "request body is empty; JSON expected",
        ));
    }
    serde_json::from_slice(req.body())
        .map_err(|e| phaseloop::Response::json_error(400, &format!("invalid JSON: {e}")))
}

fn hash(lp: &Loop, req: phaseloop::Request, res: phaseloop::Responder) {
    let body: Value = match json_body(&req) {
        Ok(v) => v,
        Err(bad) => return res.send(bad),
    };
    let password = match body.get("password").and_then(Value::as_str) {
        Some(p) if !p.is_empty() && p.len() <= MAX_PASSWORD => p.to_string(),
        _ => {
            return res.json_error(
                400,
                &format!(
                    "invalid field password: a string of 1 to {MAX_PASSWORD} bytes is required"
                ),
            )
        }
    };
    let salt = match body.get("salt").and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.len() <= MAX_SALT => s.to_string(),
        _ => {
            return res.json_error(
                400,
                &format!("invalid field salt: a string of 1 to {MAX_SALT} bytes is required"),
            )
        }
    };
    crypto::pbkdf2_sha512(password, salt, HASH_ITERATIONS, 64).run(lp, move |_, result| match result {
        Ok(key) => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            res.json(200, &json!({ "algorithm": "pbkdf2-sha512", "iterations": HASH_ITERATIONS, "hash": hex }))
        }
        Err(e) => res.send(pool_error(e)),
    });
}

/// Events to stderr through tracing-subscriber: RUST_LOG's filter when
/// set, else `--log-level`'s. At debug, each request's span is printed as
/// it closes (method, route, status, latency, request id).
fn init_tracing(args: &args::Args) {
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(&args.log_level),
    };
    let spans = if args.debug {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(spans)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Its own write errors it would report with `eprintln!`, which
        // panics when stderr cannot take the line (a full disk): a log
        // line must never become a crash.
        .log_internal_errors(false)
        .try_init();
}

fn main() {
    let args = match args::parse() {
        Ok(a) => a,
        Err(e) => {
            phaseloop_core::log_line!("demo-api: {e} (see --help)");
            std::process::exit(2);
        }
    };
    init_tracing(&args);
    if let Err(e) = run(args) {
        phaseloop_core::log_line!("demo-api: {e}");
        std::process::exit(1);
    }
}

/// What one loop serves, and the parts of it main needs afterwards.
struct LoopParts {
    app: App,
    orders: Rc<orders::Orders>,
    unnotified: Vec<u64>,
    primes: Rc<primes::Primes>,
    server_slot: Rc<RefCell<Option<Server>>>,
    /// Where this loop's embedded restaurant listens for the outbox when
    /// the server itself speaks TLS (the HTTP client speaks plain HTTP).
    restaurant_slot: Rc<RefCell<Option<Server>>>,
    restaurant: restaurant::SharedReceiver,
}

/// The TechEmpower JSON test's message.
#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

/// Builds one loop's app: its own users cache, its own order journals
/// (`slot` of `slots`, ids unique across them), its own primes worker.
fn build_loop(
    lp: &Loop,
    args: &args::Args,
    slot: usize,
    slots: usize,
    index: orders::SharedIndex,
    restaurant: restaurant::SharedReceiver,
    cluster: Option<ClusterStats>,
) -> std::io::Result<LoopParts> {
    let users_dir = args.data_dir.join("users");
    let public_dir = Rc::new(args.data_dir.join("public"));
    let sharing = if args.worker_slot.is_some() {
        orders::Sharing::Processes
    } else {
        orders::Sharing::Loops
    };
    let server_slot: Rc<RefCell<Option<Server>>> = Rc::default();
    let restaurant_slot: Rc<RefCell<Option<Server>>> = Rc::default();
    // Notifications go to --notify-url, else to this server's own
    // restaurant (its address is known once it listens).
    let target = || -> outbox::Target {
        match &args.notify_url {
            Some(url) => outbox::Target::Fixed(url.clone(), args.notify_tls.clone()),
            None => {
                let (slot, plain) = (server_slot.clone(), restaurant_slot.clone());
                outbox::Target::ThisServer(Box::new(move || {
                    plain
                        .borrow()
                        .clone()
                        .or_else(|| slot.borrow().clone())
                        .or_else(Cluster::server_on_this_thread)
                        .map(|s| format!("http://{}/restaurant", s.local_addr()))
                }))
            }
        }
    };
    // With --database, users, orders and their notifications live in
    // PostgreSQL (pg_store.rs); the file journals stay unused.
    let pg = match &args.database {
        Some(url) => Some(
            pg_store::PgDemo::new(url, args.db_pool_max, target(), slot)
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let outbox = outbox::Outbox::new(target(), args.breaker_cool_down);
    let (orders, unnotified) =
        orders::Orders::open(&args.data_dir, slot, slots, index, sharing, outbox.clone())?;
    outbox.attach(&orders);
    let users = Rc::new(users::Users::new(users_dir, args.cache_ttl, pg.clone()));
    let primes = Rc::new(primes::Primes::start(lp)?);

    let mut app = App::new();
    if args.debug {
        // The request id rides on each request's span (printed at debug).
        app = app.wrap(middleware::request_id());
    }
    let app = restaurant::routes(app, restaurant.clone(), orders::ORDER_BODY_LIMIT * 2);
    let app = {
        let (u, o1, o2, o3) = (
            users.clone(),
            orders.clone(),
            orders.clone(),
            orders.clone(),
        );
        let (p, dir) = (primes.clone(), public_dir.clone());
        let public = ServeDir::new(public_dir.to_path_buf()).stream_above(files::WHOLE_MAX_LEN);
        let (m_users, m_orders, m_server) = (users.clone(), orders.clone(), server_slot.clone());
        let m_outbox = outbox.clone();
        let m_cluster = cluster.clone();
        let (pg_create, pg_get, pg_health, pg_events, pg_ws) =
            (pg.clone(), pg.clone(), pg.clone(), pg.clone(), pg.clone());
        let o4 = orders.clone();
        let m_pg = pg.clone();
        app.dashboard("/_loop", phaseloop::DashboardAccess::Loopback)
            .get_with("/", |_, _, res| res.text(200, INDEX))
            .post_with("/echo", |_, mut req, res| {
                let body = req.take_body();
                res.send(
                    Response::new(200)
                        .header("Content-Type", "application/octet-stream")
                        .body(body),
                )
            })
            .get_with("/health", move |_, _, res| match &pg_health {
                // Answered from the last query's outcome: no query, at once.
                Some(pg) => res.json(
                    200,
                    &json!({
                        "status": if pg.is_up() { "healthy" } else { "degraded" },
                        "timestamp": now_ms(),
                        "checks": pg.health(),
                    }),
                ),
                None => res.json(200, &json!({ "status": "healthy", "timestamp": now_ms() })),
            })
            .get_with("/fast", |_, _, res| res.text(200, "Fast response"))
            .get_with("/slow", |lp, _, res| {
                lp.set_timeout(Duration::from_secs(3), move |_| {
                    res.text(200, "Slow response")
                });
            })
            .get_with("/plaintext", |_, _, res| res.text(200, "Hello, World!"))
            .get_with("/json", |_, _, res| {
                // A struct, not `json!`: a `Value` would allocate its map
                // and strings per request; this serialises into a recycled
                // buffer.
                res.json(
                    200,
                    &Message {
                        message: "Hello, World!",
                    },
                )
            })
            .get_with("/api/users/:id", move |lp, req, res| u.get(lp, req, res))
            .post_with("/api/orders", move |lp, req, res| match &pg_create {
                Some(pg) => pg.create(lp, req, res),
                None => o1.create(lp, req, res),
            })
            .body_limit(orders::ORDER_BODY_LIMIT)
            .get_with("/api/orders/:id", move |lp, req, res| match &pg_get {
                Some(pg) => pg.get(lp, req, res),
                None => o2.get(lp, req, res),
            })
            .get_with("/ws/orders", move |_, req, res| match &pg_ws {
                Some(pg) => pg.ws_orders(req, res),
                None => o4.ws_orders(req, res),
            })
            .get_with(
                "/api/orders/:id/events",
                move |lp, req, res| match &pg_events {
                    Some(pg) => pg.events(lp, req, res),
                    None => o3.events(lp, req, res),
                },
            )
            .post_with("/api/hash", hash)
            .body_limit(4 * 1024)
            .get_with("/files/:name", move |lp, req, res| {
                files::serve(&dir, &public, lp, req, res)
            })
            .get_with("/primes", move |_, req, res| p.on_worker(req, res))
            .get_with("/primes-blocking", |_, req, res| primes::blocking(req, res))
            .get_with("/metrics", move |lp, _, res| {
                let Some(server) = m_server
                    .borrow()
                    .clone()
                    .or_else(Cluster::server_on_this_thread)
                else {
                    return res.json_error(503, "starting up");
                };
                let mut outbox = m_outbox.figures();
                let mut notifications = m_orders.notified.get();
                if let Some(pg) = &m_pg {
                    // In PostgreSQL mode the deliverer is pg_store's.
                    let (delivered, retries, failed) = pg.figures();
                    notifications = delivered;
                    outbox.retries = retries;
                    outbox.failed = failed;
                }
                let demo = metrics::DemoFigures {
                    cache_hits: m_users.hits.get(),
                    cache_misses: m_users.misses.get(),
                    store_reads: m_users.store_reads.get(),
                    orders: m_orders.count(),
                    notifications,
                    replayed: m_orders.replayed.get(),
                    journal_pending: m_orders.journal_pending(),
                    journal_failures: m_orders.journal_failures(),
                    journals_damaged: m_orders.journals_damaged(),
                    outbox,
                    delivery_latency_ms: m_outbox.latency_ms.borrow().clone(),
                    db: m_pg
                        .as_ref()
                        .map(|pg| (pg.pool.stats(), pg.pool.histograms())),
                };
                let text = metrics::render(lp, &server, m_cluster.as_ref(), &demo);
                res.send(
                    Response::new(200)
                        .header("Content-Type", phaseloop::metrics::CONTENT_TYPE)
                        .body(text),
                )
            })
    };

    if let Some(pg) = &pg {
        // Due notifications (this instance's, another's, retries) are
        // looked for from the first tick on.
        let pg = pg.clone();
        lp.set_immediate(move |lp| pg.start(lp));
    }
    Ok(LoopParts {
        app,
        orders,
        unnotified,
        primes,
        server_slot,
        restaurant_slot,
        restaurant,
    })
}

/// `https` when the demo serves TLS.
fn scheme(args: &args::Args) -> &'static str {
    if args.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// The same settings without TLS (the redirect listener's).
fn args_plain(args: &args::Args) -> args::Args {
    args::Args {
        tls: None,
        ..args.clone()
    }
}

fn server_config(args: &args::Args) -> ServerConfig {
    ServerConfig {
        keep_alive_timeout: args.keep_alive,
        drain_idle_grace: args.drain_grace,
        handler_timeout: args.handler_timeout,
        // Workers of process mode share the port.
        reuse_port: args.worker_slot.is_some(),
        tls: args.tls.clone(),
        ..ServerConfig::default()
    }
}

fn run(args: args::Args) -> std::io::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    users::init_store(&args.data_dir)?;
    files::init_public(&args.data_dir)?;
    if let Some(url) = &args.database {
        // Every instance (and every worker) runs them; the advisory lock
        // makes them take turns, and what is applied is applied once.
        let applied =
            pg_store::migrate(url, Duration::from_secs(30)).map_err(std::io::Error::other)?;
        if !args.quiet {
            println!("demo-api: database ready ({applied} migrations applied)");
        }
    }
    if args.workers > 0 {
        return run_supervisor(args);
    }
    if args.loops > 1 {
        return run_cluster(args);
    }
    if args.worker_slot.is_some() {
        // A worker ends with its supervisor, however that one ends.
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number, no pointers.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    }
    let (slot, slots) = args.worker_slot.unwrap_or((0, 1));
    let pool = Pool::builder()
        .threads(args.pool_size)
        .queue_capacity(args.pool_queue)
        .build();
    let lp = Loop::builder().pool(pool).build()?;
    let parts = build_loop(
        &lp,
        &args,
        slot,
        slots,
        orders::SharedIndex::default(),
        restaurant::SharedReceiver::default(),
        None,
    )?;
    let LoopParts {
        app,
        orders,
        unnotified,
        primes,
        server_slot,
        restaurant_slot,
        restaurant,
    } = parts;
    release_replay_memory();
    let server = Server::bind(&lp, args.addr, app, server_config(&args))?;
    // Over TLS, the embedded restaurant also listens in plain HTTP on a
    // loopback port of its own: the outbox's HTTP client speaks plain
    // HTTP (an outside --notify-url needs none).
    if args.tls.is_some() && args.notify_url.is_none() {
        let app = restaurant::routes(App::new(), restaurant, orders::ORDER_BODY_LIMIT * 2);
        let addr = std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), 0);
        let plain = Server::bind(&lp, addr, app, server_config(&args_plain(&args)))?;
        *restaurant_slot.borrow_mut() = Some(plain);
    }
    *server_slot.borrow_mut() = Some(server.clone());
    // A worker (--workers): every worker's figures on each one's dashboard.
    phaseloop::supervisor::share_worker_figures(&lp, &server);
    // Plain HTTP beside HTTPS, sending everything to HTTPS.
    let redirect = match args.redirect_port {
        Some(port) => {
            let addr = std::net::SocketAddr::new(args.addr.ip(), port);
            let https_port = server.local_addr().port();
            let redirect = Server::bind(
                &lp,
                addr,
                phaseloop::https_redirect(https_port),
                server_config(&args_plain(&args)),
            )?;
            println!(
                "demo-api redirecting http://{} to https",
                redirect.local_addr()
            );
            Some(redirect)
        }
        None => None,
    };
    println!(
        "demo-api listening on {}://{} (data: {}, pool: {} threads, cache TTL: {} s, loops: 1)",
        scheme(&args),
        server.local_addr(),
        args.data_dir.display(),
        args.pool_size,
        args.cache_ttl.as_secs(),
    );
    if !unnotified.is_empty() && !args.quiet {
        println!(
            "demo-api: replaying {} undelivered order notifications",
            unnotified.len()
        );
    }
    server.drain_on_signals(&lp, Duration::from_secs(10), move |lp| {
        primes.stop();
        let plain = restaurant_slot.borrow_mut().take();
        for server in redirect.into_iter().chain(plain) {
            server.shutdown(lp, Duration::from_secs(1), |_| {});
        }
    })?;
    lp.enter(|lp| orders.replay(lp, unnotified));
    lp.run(RunMode::Default);
    println!("demo-api stopped");
    Ok(())
}

/// Gives the allocator's free memory back to the system once the journals
/// are replayed: the replay holds every record at once for a moment
/// (hundreds of MB after a load test), and glibc keeps what was freed.
fn release_replay_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `--loops N`: N loops on N threads, one SO_REUSEPORT listener each; the
/// main thread only waits for SIGINT/SIGTERM to drain them all.
fn run_cluster(args: args::Args) -> std::io::Result<()> {
    let index = orders::SharedIndex::default();
    let receiver = restaurant::SharedReceiver::default();
    let loops = args.loops;
    let factory_args = args.clone();
    let cluster = Cluster::start(args.addr, loops, server_config(&args), move |lp, info| {
        let parts = build_loop(
            lp,
            &factory_args,
            info.index,
            info.loops,
            index.clone(),
            receiver.clone(),
            Some(info.stats.clone()),
        )
        .unwrap_or_else(|e| panic!("demo-api: loop {} failed to start: {e}", info.index));
        release_replay_memory();
        let (orders, unnotified) = (parts.orders.clone(), parts.unnotified);
        if !unnotified.is_empty() {
            println!(
                "demo-api: loop {} replays {} undelivered order notifications",
                info.index,
                unnotified.len()
            );
        }
        lp.set_immediate(move |lp| orders.replay(lp, unnotified));
        // Each loop's primes worker ends with the process.
        std::mem::forget(parts.primes);
        parts.app
    })?;
    println!(
        "demo-api listening on {}://{} (data: {}, pool: {} threads, cache TTL: {} s, loops: {})",
        scheme(&args),
        cluster.local_addr(),
        args.data_dir.display(),
        args.pool_size,
        args.cache_ttl.as_secs(),
        cluster.loops()
    );
    cluster.run_until_signal(Duration::from_secs(10))?;
    println!("demo-api stopped");
    Ok(())
}

/// `--workers N`: a supervisor process starts N workers of this binary, each
/// a single-loop server on the shared port (SO_REUSEPORT) with its own
/// journal slot, restarts any that dies, and drains them all on SIGTERM.
fn run_supervisor(args: args::Args) -> std::io::Result<()> {
    // Reserve the port: bound with SO_REUSEPORT but never listening, so the
    // kernel gives it no connections while the workers share it.
    let reserve = socket2::Socket::new(
        socket2::Domain::for_address(args.addr),
        socket2::Type::STREAM,
        None,
    )?;
    reserve.set_reuse_address(true)?;
    reserve.set_reuse_port(true)?;
    reserve.bind(&args.addr.into())?;
    let addr = reserve
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("no socket address"))?;
    let exe = std::env::current_exe()?;
    // The worker's flags: ours, less --workers, with the port fixed.
    let mut passed = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--workers" | "--port" | "--worker-slot" => {
                it.next();
            }
            _ if ["--workers=", "--port=", "--worker-slot="]
                .iter()
                .any(|p| a.starts_with(p)) => {}
            _ => passed.push(a),
        }
    }
    let workers = args.workers;
    let command = move |index: usize| {
        let mut c = std::process::Command::new(&exe);
        c.args(&passed)
            .args([
                "--port",
                &addr.port().to_string(),
                "--worker-slot",
                &format!("{index}/{workers}"),
            ])
            .env_remove("PHASELOOP_WORKERS")
            .stdout(std::process::Stdio::null());
        c
    };
    let quiet = args.quiet;
    let announce_addr = addr;
    std::thread::spawn(move || {
        // Announce once a worker answers.
        for _ in 0..200 {
            if std::net::TcpStream::connect(announce_addr).is_ok() {
                println!("demo-api listening on {}://{announce_addr} (supervisor, {workers} worker processes)", scheme(&args));
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        phaseloop_core::report!(
            error,
            {},
            "demo-api: no worker is listening on {announce_addr}"
        );
    });
    let report = phaseloop::supervisor::supervise(workers, command, move |event| {
        if !quiet {
            println!("demo-api supervisor: {event}");
        }
    })?;
    drop(reserve);
    println!("demo-api stopped (worker restarts: {:?})", report.restarts);
    Ok(())
}
