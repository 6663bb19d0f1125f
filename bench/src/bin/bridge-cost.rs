//! The cost of one call through the tokio bridge against one native pool
//! job, each awaited from a future on the loop: N calls one after another
//! (the round trip), then N with 64 in flight (the throughput).
//!
//! Run: `cargo run --release -p phaseloop-bench --features tokio --bin bridge-cost [N] [RUNS]`
//! (N = 20000, RUNS = 5). Prints each run's nanoseconds per call, then the
//! medians and the bridge's cost over the pool job's.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use phaseloop_core::tokio_bridge::on_tokio;
use phaseloop_core::{Job, Lane, Loop, RunMode};

/// In flight at once in the throughput case.
const WIDTH: usize = 64;

#[derive(Clone, Copy)]
enum Kind {
    Bridge,
    Pool,
}

async fn one(kind: Kind, n: u64) -> u64 {
    match kind {
        Kind::Bridge => on_tokio(async move { n + 1 }).await.unwrap_or(0),
        Kind::Pool => Job::new(Lane::Cpu, move || n + 1).await.unwrap_or(0),
    }
}

/// Nanoseconds per call: `calls` calls, `width` at a time.
fn measure(kind: Kind, calls: usize, width: usize) -> f64 {
    let lp = Loop::new().expect("a loop");
    let done = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    // Spawned on the entered loop: each first poll then holds it.
    lp.enter(|lp| {
        for lane in 0..width {
            let done = done.clone();
            lp.spawn(async move {
                let mut sum = 0;
                for i in (lane..calls).step_by(width) {
                    sum += one(kind, i as u64).await;
                }
                done.set(done.get() + sum);
            });
        }
    });
    lp.run(RunMode::Default);
    let ns = start.elapsed().as_nanos() as f64 / calls as f64;
    assert!(done.get() > 0);
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    // Warm both up: threads started, allocations made.
    measure(Kind::Bridge, 1000, WIDTH);
    measure(Kind::Pool, 1000, WIDTH);
    for (label, width) in [("one at a time", 1), ("64 in flight", WIDTH)] {
        let (mut bridge, mut pool) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // Alternated, so drift on a shared machine hits both alike.
            bridge.push(measure(Kind::Bridge, calls, width));
            pool.push(measure(Kind::Pool, calls, width));
            println!(
                "{label}, run {}: bridge {:.0} ns/call, pool job {:.0} ns/call",
                run + 1,
                bridge[run],
                pool[run]
            );
        }
        let (b, p) = (median(bridge), median(pool));
        println!(
            "{label}: median bridge {b:.0} ns/call, pool job {p:.0} ns/call, bridge/pool {:.2}",
            b / p
        );
    }
}
