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
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use phaseloop::client::{Client, ClientConfig, ClientRequest};
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
    let lp = Loop::new().expect("a loop");
    let run = Rc::new(Run {
        client: Client::new(ClientConfig {
            max_sockets_per_origin: f.concurrency,
            retries: 0,
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
