//! Command-line flags, each with an environment variable to fall back on
//! (clap, derive).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// demo-api: a food-delivery API that shows the phaseloop event loop at
/// work (users with a cache, durable orders whose restaurant is notified
/// from the check phase, hashing on the thread pool, files, CPU work on a
/// worker thread, metrics).
#[derive(Debug, Parser)]
#[command(name = "demo-api", version, about, long_about = None)]
struct Flags {
    /// Address to listen on.
    #[arg(long, env = "PHASELOOP_ADDR", default_value = "127.0.0.1")]
    addr: IpAddr,
    /// Port (0: any free port).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Users, orders and public files.
    #[arg(long, env = "PHASELOOP_DATA", default_value = "data")]
    data_dir: PathBuf,
    /// Thread-pool threads.
    #[arg(long, env = "PHASELOOP_THREADPOOL_SIZE", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pool_size: u16,
    /// Jobs that may wait in the pool (a full pool answers 503).
    #[arg(long, env = "PHASELOOP_POOL_QUEUE",
          default_value_t = phaseloop_core::pool::DEFAULT_QUEUE_CAPACITY)]
    pool_queue: usize,
    /// Users cache TTL, seconds.
    #[arg(long, env = "PHASELOOP_CACHE_TTL", default_value_t = 3600)]
    cache_ttl: u64,
    /// Idle keep-alive timeout, seconds (at least 1).
    #[arg(long, env = "PHASELOOP_KEEP_ALIVE", default_value_t = 5)]
    keep_alive: u64,
    /// Answer 503 for a request whose handler has not answered in this
    /// many milliseconds (0: off).
    #[arg(long, env = "PHASELOOP_HANDLER_TIMEOUT", default_value_t = 0)]
    handler_timeout: u64,
    /// Event loops, one thread each, sharing the port (cluster mode).
    #[arg(long, env = "PHASELOOP_LOOPS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    loops: u16,
    /// Worker processes under a supervisor that restarts them (process
    /// mode; each runs one loop; 0: off).
    #[arg(long, env = "PHASELOOP_WORKERS", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=256))]
    workers: u16,
    /// Inside a worker: its journal slot, SLOT/SLOTS (set by the
    /// supervisor, not by hand).
    #[arg(long, hide = true, value_parser = parse_slot)]
    worker_slot: Option<(usize, usize)>,
    /// The restaurant system notifications go to: a webhook, POST
    /// {URL}/orders with the order as JSON and an Idempotency-Key; by
    /// default this server's own embedded restaurant (/restaurant).
    #[arg(long, env = "PHASELOOP_NOTIFY_URL")]
    notify_url: Option<String>,
    /// PEM CA certificates an https --notify-url is checked against (a
    /// private CA); by default Mozilla's root certificates.
    #[arg(long, env = "PHASELOOP_NOTIFY_CA", requires = "notify_url")]
    notify_ca: Option<PathBuf>,
    /// How long the notification circuit breaker stays open before it
    /// lets a probe through, milliseconds.
    #[arg(long, env = "PHASELOOP_BREAKER_COOL_DOWN_MS", default_value_t = 5000)]
    breaker_cool_down_ms: u64,
    /// On SIGTERM, how long idle keep-alive connections stay open (a
    /// request on one is still answered, with Connection: close),
    /// milliseconds; behind nginx, above its upstream keepalive_timeout.
    #[arg(long, env = "PHASELOOP_DRAIN_GRACE_MS", default_value_t = 0)]
    drain_grace_ms: u64,
    /// PostgreSQL for users, orders and the notification outbox
    /// (postgres://user:password@host:port/database); without it the
    /// embedded file store is used. Migrations run at start-up.
    #[arg(long, env = "DATABASE_URL")]
    database: Option<String>,
    /// Connections per loop to PostgreSQL at most (the seed's 20).
    #[arg(long, env = "PHASELOOP_DB_POOL_MAX", default_value_t = 20)]
    db_pool_max: usize,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "PHASELOOP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "PHASELOOP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With TLS: also listen for plain HTTP on this port and redirect
    /// every request to HTTPS (308).
    #[arg(long, env = "PHASELOOP_REDIRECT_PORT", requires = "tls_cert")]
    redirect_port: Option<u16>,
    /// What to log to stderr (RUST_LOG, when set, takes its place: any
    /// tracing-subscriber filter); debug adds a line per request.
    #[arg(long, env = "PHASELOOP_LOG", default_value = "info",
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: String,
}

fn parse_slot(v: &str) -> Result<(usize, usize), String> {
    v.split_once('/')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .filter(|(a, b): &(usize, usize)| a < b)
        .ok_or(format!("{v:?}: expected SLOT/SLOTS"))
}

#[derive(Debug, Clone)]
pub struct Args {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub pool_size: usize,
    pub pool_queue: usize,
    pub cache_ttl: Duration,
    pub loops: usize,
    pub workers: usize,
    /// Process mode, inside a worker: this worker's journal slot and the
    /// number of slots (set by the supervisor, not by hand).
    pub worker_slot: Option<(usize, usize)>,
    pub keep_alive: Duration,
    pub handler_timeout: Option<Duration>,
    pub debug: bool,
    pub quiet: bool,
    pub log_level: String,
    pub notify_url: Option<String>,
    /// Whom an https --notify-url is trusted by (`None`: Mozilla's roots).
    pub notify_tls: Option<phaseloop::client::ClientTls>,
    pub breaker_cool_down: Duration,
    pub database: Option<String>,
    pub db_pool_max: usize,
    pub drain_grace: Duration,
    pub tls: Option<phaseloop::tls::TlsConfig>,
    pub redirect_port: Option<u16>,
}

/// The flags, or exits: with the help or version text (status 0), or with
/// what is wrong and the usage (status 2).
pub fn parse() -> Result<Args, String> {
    let f = Flags::parse();
    if f.workers > 0 && f.loops > 1 {
        return Err(
            "--workers and --loops > 1 do not combine yet: choose threads or processes".into(),
        );
    }
    if let Some(url) = &f.notify_url {
        phaseloop::client::Client::check_url(url).map_err(|e| format!("--notify-url: {e}"))?;
    }
    if f.tls_cert.is_some() && f.notify_url.is_none() && (f.workers > 0 || f.loops > 1) {
        return Err(
            "with --tls-cert, --workers and --loops need --notify-url (the embedded restaurant is plain HTTP beside one loop)".into(),
        );
    }
    if f.redirect_port.is_some() && (f.workers > 0 || f.loops > 1) {
        return Err("--redirect-port runs beside one loop: drop --workers and --loops".into());
    }
    let notify_tls = match &f.notify_ca {
        Some(path) => Some(
            phaseloop::client::ClientTls::from_root_pem_file(path)
                .map_err(|e| format!("--notify-ca: {e}"))?,
        ),
        None => None,
    };
    let tls = match (&f.tls_cert, &f.tls_key) {
        (Some(cert), Some(key)) => Some(
            phaseloop::tls::TlsConfig::from_pem_files(cert, key)
                .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?,
        ),
        _ => None,
    };
    Ok(Args {
        addr: SocketAddr::new(f.addr, f.port),
        data_dir: f.data_dir,
        pool_size: usize::from(f.pool_size),
        pool_queue: f.pool_queue.max(1),
        cache_ttl: Duration::from_secs(f.cache_ttl),
        loops: usize::from(f.loops),
        workers: usize::from(f.workers),
        worker_slot: f.worker_slot,
        keep_alive: Duration::from_secs(f.keep_alive.max(1)),
        handler_timeout: (f.handler_timeout > 0).then(|| Duration::from_millis(f.handler_timeout)),
        debug: matches!(f.log_level.as_str(), "debug" | "trace"),
        quiet: matches!(f.log_level.as_str(), "error" | "warn"),
        log_level: f.log_level,
        notify_url: f.notify_url,
        notify_tls,
        breaker_cool_down: Duration::from_millis(f.breaker_cool_down_ms.max(1)),
        database: f.database.filter(|d| !d.is_empty()),
        db_pool_max: f.db_pool_max.max(1),
        drain_grace: Duration::from_millis(f.drain_grace_ms),
        tls,
        redirect_port: f.redirect_port,
    })
}
