//! Command-line flags and environment variables.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
demo-api: the seed articles' high-traffic API on phaseloop

USAGE: demo-api [FLAGS]

FLAGS (each also read from the environment variable in brackets):
  --addr <ip>          address to listen on           [PHASELOOP_ADDR]  default 127.0.0.1
  --port <n>           port (0 = any free port)       [PORT]            default 3000
  --data-dir <path>    users, orders and public files [PHASELOOP_DATA]  default ./data
  --pool-size <n>      thread-pool threads            [PHASELOOP_THREADPOOL_SIZE] default 4
  --pool-queue <n>     jobs that may wait in the pool [PHASELOOP_POOL_QUEUE] default 1024
  --cache-ttl <secs>   users cache TTL                [PHASELOOP_CACHE_TTL] default 3600
  --keep-alive <secs>  idle keep-alive timeout        [PHASELOOP_KEEP_ALIVE] default 5
  --handler-timeout <ms>  answer 503 for a request whose handler has not
                       answered in this time [PHASELOOP_HANDLER_TIMEOUT] default 0 (off)
  --loops <n>          event loops (cluster mode)     [PHASELOOP_LOOPS] default 1
  --workers <n>        worker processes under a supervisor that restarts
                       them (process mode; each runs one loop) [PHASELOOP_WORKERS] default 0 (off)
  --log-level <lvl>    error | info | debug           [PHASELOOP_LOG]   default info
  -h, --help           this text
";

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
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn parse() -> Result<Option<Args>, String> {
    let mut ip: IpAddr = env("PHASELOOP_ADDR")
        .unwrap_or_else(|| "127.0.0.1".into())
        .parse()
        .map_err(|e| format!("PHASELOOP_ADDR: {e}"))?;
    let mut port: u16 = env("PORT")
        .map(|p| p.parse().map_err(|e| format!("PORT: {e}")))
        .transpose()?
        .unwrap_or(3000);
    let mut data_dir = PathBuf::from(env("PHASELOOP_DATA").unwrap_or_else(|| "data".into()));
    let mut pool_size: usize = env("PHASELOOP_THREADPOOL_SIZE")
        .map(|p| {
            p.parse()
                .map_err(|e| format!("PHASELOOP_THREADPOOL_SIZE: {e}"))
        })
        .transpose()?
        .unwrap_or(4);
    let mut pool_queue: usize = env("PHASELOOP_POOL_QUEUE")
        .map(|p| p.parse().map_err(|e| format!("PHASELOOP_POOL_QUEUE: {e}")))
        .transpose()?
        .unwrap_or(phaseloop_core::pool::DEFAULT_QUEUE_CAPACITY);
    let mut ttl: u64 = env("PHASELOOP_CACHE_TTL")
        .map(|p| p.parse().map_err(|e| format!("PHASELOOP_CACHE_TTL: {e}")))
        .transpose()?
        .unwrap_or(3600);
    let mut loops: usize = env("PHASELOOP_LOOPS")
        .map(|p| p.parse().map_err(|e| format!("PHASELOOP_LOOPS: {e}")))
        .transpose()?
        .unwrap_or(1);
    let mut workers: usize = env("PHASELOOP_WORKERS")
        .map(|p| p.parse().map_err(|e| format!("PHASELOOP_WORKERS: {e}")))
        .transpose()?
        .unwrap_or(0);
    let mut worker_slot = None;
    let mut keep_alive: u64 = env("PHASELOOP_KEEP_ALIVE")
        .map(|p| p.parse().map_err(|e| format!("PHASELOOP_KEEP_ALIVE: {e}")))
        .transpose()?
        .unwrap_or(5);
    let mut handler_timeout_ms: u64 = env("PHASELOOP_HANDLER_TIMEOUT")
        .map(|p| {
            p.parse()
                .map_err(|e| format!("PHASELOOP_HANDLER_TIMEOUT: {e}"))
        })
        .transpose()?
        .unwrap_or(0);
    let mut level = env("PHASELOOP_LOG").unwrap_or_else(|| "info".into());

    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => {
                ip = value("--addr")?
                    .parse()
                    .map_err(|e| format!("--addr: {e}"))?
            }
            "--port" => {
                port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--data-dir" => data_dir = value("--data-dir")?.into(),
            "--pool-size" => {
                pool_size = value("--pool-size")?
                    .parse()
                    .map_err(|e| format!("--pool-size: {e}"))?
            }
            "--pool-queue" => {
                pool_queue = value("--pool-queue")?
                    .parse()
                    .map_err(|e| format!("--pool-queue: {e}"))?
            }
            "--cache-ttl" => {
                ttl = value("--cache-ttl")?
                    .parse()
                    .map_err(|e| format!("--cache-ttl: {e}"))?
            }
            "--keep-alive" => {
                keep_alive = value("--keep-alive")?
                    .parse()
                    .map_err(|e| format!("--keep-alive: {e}"))?
            }
            "--handler-timeout" => {
                handler_timeout_ms = value("--handler-timeout")?
                    .parse()
                    .map_err(|e| format!("--handler-timeout: {e}"))?
            }
            "--workers" => {
                workers = value("--workers")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?
            }
            "--worker-slot" => {
                let v = value("--worker-slot")?;
                let (slot, slots) = v
                    .split_once('/')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .filter(|(a, b): &(usize, usize)| a < b)
                    .ok_or(format!("--worker-slot {v:?}: expected SLOT/SLOTS"))?;
                worker_slot = Some((slot, slots));
            }
            "--loops" => {
                loops = value("--loops")?
                    .parse()
                    .map_err(|e| format!("--loops: {e}"))?
            }
            "--log-level" => level = value("--log-level")?,
            other => return Err(format!("unknown flag {other:?} (see --help)")),
        }
    }
    if !(1..=1024).contains(&pool_size) {
        return Err("--pool-size must be 1..=1024".into());
    }
    if !(1..=256).contains(&loops) {
        return Err("--loops must be 1..=256".into());
    }
    if workers > 256 {
        return Err("--workers must be 0..=256".into());
    }
    if workers > 0 && loops > 1 {
        return Err(
            "--workers and --loops > 1 do not combine yet: choose threads or processes".into(),
        );
    }
    let (debug, quiet) = match level.as_str() {
        "debug" => (true, false),
        "info" => (false, false),
        "error" => (false, true),
        other => return Err(format!("unknown log level {other:?}")),
    };
    Ok(Some(Args {
        addr: SocketAddr::new(ip, port),
        data_dir,
        pool_size,
        pool_queue: pool_queue.max(1),
        cache_ttl: Duration::from_secs(ttl),
        loops,
        workers,
        worker_slot,
        keep_alive: Duration::from_secs(keep_alive.max(1)),
        handler_timeout: (handler_timeout_ms > 0)
            .then(|| Duration::from_millis(handler_timeout_ms)),
        debug,
        quiet,
    }))
}
