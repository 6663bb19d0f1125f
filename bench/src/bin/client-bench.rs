//! client-bench: phaseloop's HTTP client (`phaseloop::client`) as a load
//! source, to set beside Node's `http.Agent({ keepAlive: true })` doing
//! the same (`bench/node/client_bench.js`): `--concurrency` requests in
//! flight over a keep-alive pool of as many sockets, GET URL again and
//! again for `--seconds`; prints requests, the process's CPU time
//! (user + system, getrusage) and requests per CPU-second as one JSON
//! line.
//!
//! ```text
//! client-bench --url http://127.0.0.1:3000/plaintext --concurrency 64 --seconds 5
//! client-bench --url http://127.0.0.1:3000/plaintext --idle 10000   # bytes per idle pooled connection
//! client-bench --url https://localhost:3443/plaintext --ca ca.pem     # over TLS, trusting ca.pem
//! ```
//!
//! `--idle N` measures memory instead: N requests at once open N pooled
//! connections, which then sit idle in the pool; it prints the process's
//! RSS before and after, per connection.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use phaseloop::client::{Client, ClientConfig, ClientRequest, ClientTls};
use phaseloop_core::{Loop, RunMode};

#[derive(Debug, Parser)]
#[command(name = "client-bench", about)]
struct Flags {
    /// The URL to GET.
    #[arg(long)]
    url: String,
    /// Requests in flight (and sockets in the pool).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Measure the RSS of this many idle pooled connections instead.
    #[arg(long)]
    idle: Option<usize>,
    /// PEM CA certificates an https URL is checked against (default:
    /// Mozilla's roots).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

/// The client's TLS trust: `--ca`, else the default.
fn trust(ca: Option<&std::path::Path>) -> Option<ClientTls> {
    ca.map(|path| ClientTls::from_root_pem_file(path).unwrap_or_else(|e| panic!("--ca: {e}")))
}

/// The process's resident memory, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `--idle n`: opens `n` pooled connections and leaves them idle.
fn idle(url: &str, n: usize, tls: Option<ClientTls>) {
    // SAFETY: setrlimit with a filled struct; raising the soft limit to the hard one.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    let lp = Loop::new().expect("a loop");
    let client = Client::new(ClientConfig {
        max_sockets_per_origin: n,
        max_waiting_per_origin: n,
        idle_timeout: Duration::from_secs(600),
        retries: 0,
        tls,
        ..ClientConfig::default()
    });
    // Warm-up: one connection, so what is made once exists already.
    let answered = Rc::new(Cell::new(0u64));
    let a = answered.clone();
    client.send(&lp, ClientRequest::get(url), move |_, r| {
        a.set(a.get() + u64::from(r.is_ok()))
    });
    lp.run(RunMode::Default);
    let before = rss_kib();
    for _ in 0..n {
        let a = answered.clone();
        client.send(&lp, ClientRequest::get(url), move |_, r| {
            a.set(a.get() + u64::from(r.is_ok()))
        });
    }
    lp.run(RunMode::Default);
    let after = rss_kib();
    // What the burst's requests and answers left free in the heap (the
    // requests were all in flight at once) goes back to the system: the
    // connections' own memory is what remains.
    // SAFETY: malloc_trim only releases free memory.
    unsafe { libc::malloc_trim(0) };
    let trimmed = rss_kib();
    let open = client.idle_connections();
    println!(
        "{{\"client\":\"phaseloop\",\"answered\":{},\"idle_connections\":{open},\"rss_kib_before\":{before},\"rss_kib_after\":{after},\"rss_kib_after_trim\":{trimmed},\"bytes_per_idle_connection\":{:.0},\"after_trim\":{:.0}}}",
        answered.get() - 1,
        (after.saturating_sub(before) * 1024) as f64 / open.max(1) as f64,
        (trimmed.saturating_sub(before) * 1024) as f64 / open.max(1) as f64
    );
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

struct Run {
    client: Client,
    url: String,
    until: Instant,
    done: Cell<u64>,
    errors: Cell<u64>,
}

/// Sends one request; its answer sends the next, until the time is up.
fn next(lp: &Loop, run: Rc<Run>) {
    if Instant::now() >= run.until {
        return;
    }
    let again = run.clone();
    run.client
        .send(lp, ClientRequest::get(&run.url), move |lp, result| {
            match result {
                Ok(r) if r.status == 200 => again.done.set(again.done.get() + 1),
                _ => again.errors.set(again.errors.get() + 1),
            }
            next(lp, again);
        });
}

fn main() {
    let f = Flags::parse();
    if let Some(n) = f.idle {
        return idle(&f.url, n, trust(f.ca.as_deref()));
    }
    let lp = Loop::new().expect("a loop");
    let run = Rc::new(Run {
        client: Client::new(ClientConfig {
            max_sockets_per_origin: f.concurrency,
            retries: 0,
            tls: trust(f.ca.as_deref()),
            ..ClientConfig::default()
        }),
        url: f.url,
        until: Instant::now() + Duration::from_secs(f.seconds),
        done: Cell::new(0),
        errors: Cell::new(0),
    });
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    for _ in 0..f.concurrency {
        next(&lp, run.clone());
    }
    lp.run(RunMode::Default);
    let cpu = cpu_seconds() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "{{\"client\":\"phaseloop\",\"requests\":{},\"errors\":{},\"wall_s\":{wall:.3},\"cpu_s\":{cpu:.3},\"req_per_cpu_s\":{:.0}}}",
        run.done.get(),
        run.errors.get(),
        run.done.get() as f64 / cpu.max(1e-9)
    );
}
