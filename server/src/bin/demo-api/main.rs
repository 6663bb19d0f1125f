//! demo-api: the seed articles' high-traffic API on phaseloop.
//!
//! `cargo run --release -p phaseloop --bin demo-api` serves on
//! 127.0.0.1:3000 with an embedded file-backed store in `./data`, created on
//! first run. `--help` lists the flags. Each route shows one thing about the
//! loop; the README has a curl line for each.

mod args;
mod files;
mod journal;
mod metrics;
mod orders;
mod primes;
mod users;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phaseloop::{middleware, App, Response, Server, ServerConfig};
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
POST /api/orders            durable order (fsync) then a set_immediate notification
GET  /api/orders/:id        an order and its notification status
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn hash(lp: &Loop, req: phaseloop::Request, res: phaseloop::Responder) {
    let body: Value = match req.json() {
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
    let slot = Rc::new(RefCell::new(Some(res)));
    let on_done = slot.clone();
    let submitted = crypto::pbkdf2_sha512(password, salt, HASH_ITERATIONS, 64).submit(lp, move |_, result| {
        let Some(res) = on_done.borrow_mut().take() else { return };
        match result {
            Ok(key) => {
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                res.json(200, &json!({ "algorithm": "pbkdf2-sha512", "iterations": HASH_ITERATIONS, "hash": hex }))
            }
            Err(e) => res.json_error(500, &e.to_string()),
        }
    });
    if let Err(e) = submitted {
        if let Some(res) = slot.borrow_mut().take() {
            let msg = match e {
                PoolError::QueueFull => "server busy: the thread pool queue is full".to_string(),
                other => other.to_string(),
            };
            res.send(Response::json_error(503, &msg).header("Retry-After", "1"));
        }
    }
}

fn main() {
    let args = match args::parse() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", args::HELP);
            return;
        }
        Err(e) => {
            eprintln!("demo-api: {e}\n\n{}", args::HELP);
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("demo-api: {e}");
        std::process::exit(1);
    }
}

fn run(args: args::Args) -> std::io::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let users_dir = users::init_store(&args.data_dir)?;
    let public_dir = Rc::new(files::init_public(&args.data_dir)?);
    let (orders, unnotified) = orders::Orders::open(&args.data_dir)?;

    let pool = Pool::builder()
        .threads(args.pool_size)
        .queue_capacity(args.pool_queue)
        .build();
    let lp = Loop::builder().pool(pool).build()?;
    let users = Rc::new(users::Users::new(users_dir, args.cache_ttl));
    let primes = Rc::new(primes::Primes::start(&lp)?);
    let server_slot: Rc<RefCell<Option<Server>>> = Rc::default();

    let mut app = App::new();
    if args.debug {
        app = app.wrap(middleware::logger());
    }
    let app = {
        let (u, o1, o2) = (users.clone(), orders.clone(), orders.clone());
        let (p, dir) = (primes.clone(), public_dir.clone());
        let (m_users, m_orders, m_server) = (users.clone(), orders.clone(), server_slot.clone());
        app.get("/", |_, _, res| res.text(200, INDEX))
            .post("/echo", |_, mut req, res| {
                let body = req.take_body();
                res.send(
                    Response::new(200)
                        .header("Content-Type", "application/octet-stream")
                        .body(body),
                )
            })
            .get("/health", |_, _, res| {
                res.json(200, &json!({ "status": "healthy", "timestamp": now_ms() }))
            })
            .get("/fast", |_, _, res| res.text(200, "Fast response"))
            .get("/slow", |lp, _, res| {
                lp.set_timeout(Duration::from_secs(3), move |_| {
                    res.text(200, "Slow response")
                });
            })
            .get("/plaintext", |_, _, res| res.text(200, "Hello, World!"))
            .get("/json", |_, _, res| {
                res.json(200, &json!({ "message": "Hello, World!" }))
            })
            .get("/api/users/:id", move |lp, req, res| u.get(lp, req, res))
            .post("/api/orders", move |lp, req, res| o1.create(lp, req, res))
            .body_limit(orders::ORDER_BODY_LIMIT)
            .get("/api/orders/:id", move |lp, req, res| o2.get(lp, req, res))
            .post("/api/hash", hash)
            .body_limit(4 * 1024)
            .get("/files/:name", move |lp, req, res| {
                files::serve(&dir, lp, req, res)
            })
            .get("/primes", move |_, req, res| p.on_worker(req, res))
            .get("/primes-blocking", |_, req, res| primes::blocking(req, res))
            .get("/metrics", move |lp, _, res| {
                let Some(server) = m_server.borrow().clone() else {
                    return res.json_error(503, "starting up");
                };
                let demo = metrics::DemoFigures {
                    cache_hits: m_users.hits.get(),
                    cache_misses: m_users.misses.get(),
                    store_reads: m_users.store_reads.get(),
                    orders: m_orders.count(),
                    notifications: m_orders.notified.get(),
                    replayed: m_orders.replayed.get(),
                    journal_pending: m_orders.journal_pending(),
                };
                let text = metrics::render(lp, &server, &demo);
                res.send(
                    Response::new(200)
                        .header("Content-Type", "text/plain; version=0.0.4")
                        .body(text),
                )
            })
    };

    let cfg = ServerConfig {
        keep_alive_timeout: args.keep_alive,
        ..ServerConfig::default()
    };
    let server = Server::bind(&lp, args.addr, app, cfg)?;
    *server_slot.borrow_mut() = Some(server.clone());
    println!(
        "demo-api listening on http://{} (data: {}, pool: {} threads, cache TTL: {} s, loops: {})",
        server.local_addr(),
        args.data_dir.display(),
        args.pool_size,
        args.cache_ttl.as_secs(),
        args.loops
    );
    if !unnotified.is_empty() && !args.quiet {
        println!(
            "demo-api: replaying {} undelivered order notifications",
            unnotified.len()
        );
    }

    for signum in [libc::SIGINT, libc::SIGTERM] {
        let server = server.clone();
        let primes = primes.clone();
        lp.on_signal(signum, move |lp, sig| {
            println!("demo-api: signal {sig}: finishing in-flight requests, then exiting");
            let primes = primes.clone();
            server.shutdown(lp, Duration::from_secs(10), move |_| primes.stop());
        })?;
    }
    lp.enter(|lp| orders.replay(lp, unnotified));
    lp.run(RunMode::Default);
    println!("demo-api stopped");
    Ok(())
}
