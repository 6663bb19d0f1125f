//! Micro-benchmarks of phaseloop-core against Node.js, in the same run.
//!
//! Each case runs `--runs` times (default 5) on both sides, alternating, and
//! the medians are compared. Run it pinned to one core, the machine quiet:
//!
//! ```sh
//! cargo build --release -p phaseloop-bench
//! taskset -c 0 target/release/loop-micro
//! ```

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use phaseloop_core::{crypto, Loop, Pool};

struct Case {
    name: &'static str,
    what: &'static str,
    n: u64,
    run: fn(u64) -> Duration,
}

fn quiet_loop() -> Loop {
    loop_with(None)
}

/// A loop with the delay monitor and the guard off (they would only add
/// their own work to what is measured), optionally with its own pool.
fn loop_with(pool: Option<Pool>) -> Loop {
    let mut b = Loop::builder().delay_resolution(None).block_threshold(None);
    if let Some(pool) = pool {
        b = b.pool(pool);
    }
    b.build().expect("loop")
}

/// What one counted callback needs: the count left, where to note the end,
/// and when the run started.
#[derive(Clone)]
struct Countdown {
    left: Rc<Cell<u64>>,
    done: Rc<Cell<Duration>>,
    start: Instant,
}

impl Countdown {
    fn tick(&self) {
        self.left.set(self.left.get() - 1);
        if self.left.get() == 0 {
            self.done.set(self.start.elapsed());
        }
    }
}

/// Runs `n` callbacks, each scheduled by `schedule` from the main function
/// (which builds the callback itself: one closure per callback, as user
/// code would), and returns the time until the last one ran.
fn countdown(n: u64, schedule: impl Fn(&Loop, Countdown)) -> Duration {
    countdown_on(&quiet_loop(), n, schedule)
}

/// [`countdown`] on a given loop.
fn countdown_on(lp: &Loop, n: u64, schedule: impl Fn(&Loop, Countdown)) -> Duration {
    let c = Countdown {
        left: Rc::new(Cell::new(n)),
        done: Rc::new(Cell::new(Duration::ZERO)),
        start: Instant::now(),
    };
    lp.run_main(|lp| {
        for _ in 0..n {
            schedule(lp, c.clone());
        }
    });
    c.done.get()
}

fn immediates(n: u64) -> Duration {
    countdown(n, |lp, c| {
        lp.set_immediate(move |_| c.tick());
    })
}

fn next_ticks(n: u64) -> Duration {
    countdown(n, |lp, c| lp.next_tick(move |_| c.tick()))
}

/// Pending once, waking itself: the `await undefined` of a Node async fn.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn futures(n: u64) -> Duration {
    countdown(n, |lp, c| {
        lp.spawn(async move {
            YieldOnce(false).await;
            c.tick();
        })
    })
}

fn timers_insert_cancel(n: u64) -> Duration {
    let lp = quiet_loop();
    let mut elapsed = Duration::ZERO;
    lp.enter(|lp| {
        let start = Instant::now();
        let ids: Vec<_> = (0..n)
            .map(|i| lp.set_timeout(Duration::from_millis(1000 + i), |_| panic!("ran")))
            .collect();
        for id in ids {
            lp.clear_timer(id);
        }
        elapsed = start.elapsed();
    });
    elapsed
}

fn pool_round_trip(n: u64) -> Duration {
    let lp = loop_with(Some(Pool::new(4)));
    let start = Instant::now();
    let done = Rc::new(Cell::new(Duration::ZERO));
    fn next(lp: &Loop, left: u64, start: Instant, done: Rc<Cell<Duration>>) {
        crypto::random_bytes(1)
            .submit(lp, move |lp, r| {
                r.expect("job").expect("getrandom");
                if left == 1 {
                    done.set(start.elapsed());
                } else {
                    next(lp, left - 1, start, done);
                }
            })
            .expect("submit");
    }
    let d = done.clone();
    lp.run_main(move |lp| next(lp, n, start, d));
    done.get()
}

fn pool_batch(n: u64) -> Duration {
    let pool = Pool::builder()
        .threads(4)
        .queue_capacity(n as usize)
        .build();
    countdown_on(&loop_with(Some(pool)), n, |lp, c| {
        crypto::random_bytes(1)
            .submit(lp, move |_, r| {
                r.expect("job").expect("getrandom");
                c.tick();
            })
            .expect("submit");
    })
}

fn node_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/loop_micro.js")
}

fn run_node(case: &str, n: u64) -> Option<Duration> {
    let out = Command::new("node")
        .arg(node_script())
        .arg(case)
        .arg(n.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "node {case} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let ns: u64 = text
        .split("\"ns\":")
        .nth(1)?
        .trim()
        .trim_end_matches('}')
        .parse()
        .ok()?;
    Some(Duration::from_nanos(ns))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut runs = 5usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(5).max(1),
            "--case" => only = args.next(),
            "--help" | "-h" => {
                println!("loop-micro [--runs N] [--case NAME]\nCompares phaseloop-core with Node.js; prints medians and ratios.");
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let cases = [
        Case {
            name: "immediates",
            what: "schedule + run 1M set_immediate",
            n: 1_000_000,
            run: immediates,
        },
        Case {
            name: "next_ticks",
            what: "schedule + run 1M next_tick",
            n: 1_000_000,
            run: next_ticks,
        },
        Case {
            name: "futures",
            what: "1M spawned futures, each woken once",
            n: 1_000_000,
            run: futures,
        },
        Case {
            name: "timers_insert_cancel",
            what: "insert + cancel 100k timers",
            n: 100_000,
            run: timers_insert_cancel,
        },
        Case {
            name: "pool_round_trip",
            what: "10k sequential pool round trips (1-byte random)",
            n: 10_000,
            run: pool_round_trip,
        },
        Case {
            name: "pool_batch",
            what: "10k pool jobs in flight at once (1-byte random)",
            n: 10_000,
            run: pool_batch,
        },
    ];
    let node_version = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "not found".into());
    println!("loop-micro: medians of {runs} runs; Node {node_version}");
    println!("| case | what | phaseloop | node | node/phaseloop |");
    println!("|---|---|---|---|---|");
    for case in cases
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| o == c.name))
    {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..runs {
            ours.push((case.run)(case.n));
            if let Some(d) = run_node(case.name, case.n) {
                theirs.push(d);
            }
        }
        let ours = median(ours);
        let (node, ratio) = if theirs.is_empty() {
            ("n/a".to_string(), "n/a".to_string())
        } else {
            let t = median(theirs);
            (
                format!("{:.2} ms", t.as_secs_f64() * 1e3),
                format!("{:.1}x", t.as_secs_f64() / ours.as_secs_f64()),
            )
        };
        println!(
            "| {} | {} | {:.2} ms | {} | {} |",
            case.name,
            case.what,
            ours.as_secs_f64() * 1e3,
            node,
            ratio
        );
    }
}
