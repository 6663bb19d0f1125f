//! pool-waves: how many of N equal pbkdf2 jobs submitted at once to a pool
//! of N sleeping threads run at the same time (Node runs 8 on 8 threads in
//! one wave). Per run: the peak concurrency, and how far apart the jobs
//! started (first to last start, ms). Usage: `pool-waves [--runs 20]
//! [--jobs 8] [--iterations 100000]`; run it on an otherwise idle machine
//! (`taskset` it to the cores you mean to measure).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phaseloop_core::{Job, Lane, Loop, Pool};

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

/// What one wave showed.
struct Wave {
    peak: usize,
    /// First to last start.
    spread: Duration,
    /// When the first and the last callback ran, from the submits: what a
    /// Node script can see of the same wave (`bench/node/pool_waves.js`).
    first_done: Duration,
    last_done: Duration,
}

/// One wave of `jobs` jobs on as many threads.
fn wave(jobs: usize, iterations: u32) -> Wave {
    let pool = Pool::new(jobs);
    let lp = Loop::builder()
        .pool(pool)
        .delay_resolution(None)
        .block_threshold(None)
        .build()
        .expect("a loop");
    // Let every pool thread reach its sleep first, as between two bursts
    // of a server's requests.
    std::thread::sleep(Duration::from_millis(50));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let starts = Arc::new(Mutex::new(Vec::with_capacity(jobs)));
    let origin = Instant::now();
    let first_done = Arc::new(AtomicU64::new(0));
    let done = Rc::new(Cell::new(0));
    let finishes = Rc::new(std::cell::RefCell::new(Vec::with_capacity(jobs)));
    lp.run_main(|lp| {
        for _ in 0..jobs {
            let (running, peak, starts) = (running.clone(), peak.clone(), starts.clone());
            let first_done = first_done.clone();
            let done = done.clone();
            let finishes = finishes.clone();
            Job::new(Lane::Crypto, move || {
                starts.lock().unwrap().push(origin.elapsed());
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"password", b"salt", iterations, &mut out);
                running.fetch_sub(1, Ordering::SeqCst);
                let _ = first_done.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
                out
            })
            .submit(lp, move |_, r| {
                assert!(r.is_ok());
                finishes.borrow_mut().push(origin.elapsed());
                done.set(done.get() + 1);
            })
            .expect("the queue has room");
        }
    });
    assert_eq!(done.get(), jobs);
    let starts = starts.lock().unwrap();
    if std::env::var_os("POOL_WAVES_STARTS").is_some() {
        let mut sorted: Vec<f64> = starts.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        sorted.sort_by(f64::total_cmp);
        println!("starts (ms): {sorted:.2?}");
    }
    let first = starts.iter().min().copied().unwrap_or_default();
    let last = starts.iter().max().copied().unwrap_or_default();
    let finishes = finishes.borrow();
    Wave {
        peak: peak.load(Ordering::SeqCst),
        spread: last - first,
        first_done: finishes.iter().min().copied().unwrap_or_default(),
        last_done: finishes.iter().max().copied().unwrap_or_default(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("pool-waves [--runs 20] [--jobs 8] [--iterations 100000]");
        return;
    }
    let runs = flag(&args, "--runs", 20) as usize;
    let jobs = flag(&args, "--jobs", 8) as usize;
    let iterations = flag(&args, "--iterations", 100_000) as u32;
    let mut full = 0;
    let mut spreads = Vec::new();
    for run in 1..=runs {
        let w = wave(jobs, iterations);
        if w.peak == jobs {
            full += 1;
        }
        spreads.push(w.spread);
        println!(
            "run {run:2}: peak {}/{jobs}, starts spread over {:.2} ms, first done {:.1} ms, last {:.1} ms",
            w.peak,
            w.spread.as_secs_f64() * 1e3,
            w.first_done.as_secs_f64() * 1e3,
            w.last_done.as_secs_f64() * 1e3,
        );
    }
    spreads.sort();
    println!(
        "{full} of {runs} runs reached {jobs} at once; start spread median {:.2} ms, max {:.2} ms",
        spreads[spreads.len() / 2].as_secs_f64() * 1e3,
        spreads[spreads.len() - 1].as_secs_f64() * 1e3
    );
}
