//! Recursive next_tick starves timers as in Node, and the starvation guard
//! reports it; a blocking callback shows in the guard and the delay histogram.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use phaseloop_core::{BlockKind, Loop, Phase};
use util::{Log, MS};

fn guarded_loop(threshold: Duration) -> Loop {
    Loop::builder()
        .block_threshold(Some(threshold))
        .block_warnings(false)
        .build()
        .unwrap()
}

/// A next-tick that re-queues itself keeps a due timer from running until it
/// stops; the guard reports a microtask-drain block meanwhile.
#[test]
fn recursive_next_tick_starves_timer_and_is_reported() {
    let lp = guarded_loop(Duration::from_millis(30));
    let log = Log::new();
    let reports = Rc::new(Cell::new(0u32));
    let r = reports.clone();
    lp.on_block(move |report| {
        assert_eq!(report.kind, BlockKind::MicrotaskDrain);
        assert_eq!(report.phase, Phase::Timers);
        r.set(r.get() + 1);
    });

    fn starve(lp: &Loop, count: Rc<Cell<u64>>, log: Log, deadline: Instant) {
        count.set(count.get() + 1);
        // The test's bound: stop once the guard has spoken (or after 5 s).
        if lp.metrics().block_reports > 0 || Instant::now() > deadline {
            log.push(format!(
                "starvation ended, timer_ran={}",
                log.contains("timer")
            ));
            return;
        }
        lp.next_tick(move |lp| starve(lp, count, log, deadline));
    }

    let l = log.clone();
    let l2 = log.clone();
    lp.run_main(move |lp| {
        lp.set_timeout(MS, move |_| l.push("timer"));
        lp.set_timeout(MS, move |lp| {
            let deadline = Instant::now() + Duration::from_secs(5);
            starve(lp, Rc::new(Cell::new(0)), l2.clone(), deadline);
        });
        std::thread::sleep(2 * MS);
    });
    assert_eq!(reports.get(), 1, "exactly one report per starving drain");
    assert_eq!(log.take(), ["timer", "starvation ended, timer_ran=true"]);

    // The same starvation from the main function, before any timer ran:
    let lp = guarded_loop(Duration::from_millis(30));
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let lt = l.clone();
        lp.set_timeout(Duration::ZERO, move |_| lt.push("timer"));
        let deadline = Instant::now() + Duration::from_secs(5);
        starve(lp, Rc::new(Cell::new(0)), l.clone(), deadline);
    });
    assert_eq!(log.take(), ["starvation ended, timer_ran=false", "timer"]);
    let m = lp.metrics();
    assert_eq!(m.block_reports, 1);
    assert_eq!(m.recent_blocks[0].kind, BlockKind::MicrotaskDrain);
    assert_eq!(m.recent_blocks[0].phase, Phase::Main);
}

/// A 200 ms blocking callback delays a 50 ms timer; the guard names the
/// phase and label, and the loop-delay histogram shows the stall.
#[test]
fn blocking_callback_delays_timer_and_shows_in_metrics() {
    let lp = Loop::builder()
        .block_threshold(Some(Duration::from_millis(100)))
        .block_warnings(false)
        .delay_resolution(Some(Duration::from_millis(5)))
        .build()
        .unwrap();
    let fired_after = Rc::new(Cell::new(Duration::ZERO));
    let f = fired_after.clone();
    let start = Instant::now();
    lp.run_main(move |lp| {
        lp.set_timeout(Duration::from_millis(50), move |_| f.set(start.elapsed()));
        lp.set_timeout(Duration::from_millis(10), |lp| {
            lp.set_label(Some("GET /primes-blocking".into()));
            std::thread::sleep(Duration::from_millis(200));
            lp.set_label(None);
        });
    });
    assert!(
        // The 10 ms timer's callback (a timer may run up to 1 ms before
        // its delay: whole milliseconds, as Node) plus its 200 ms sleep.
        fired_after.get() >= Duration::from_millis(209),
        "the 50 ms timer waited for the blocking callback: fired after {:?}",
        fired_after.get()
    );
    let m = lp.metrics();
    let max_delay = Duration::from_nanos(m.loop_delay.max());
    assert!(
        max_delay >= Duration::from_millis(150),
        "loop delay histogram max {max_delay:?} shows the 200 ms stall"
    );
    let block = m
        .recent_blocks
        .iter()
        .find(|b| b.kind == BlockKind::Callback)
        .expect("the guard reported the blocking callback");
    assert_eq!(block.phase, Phase::Timers);
    // The guard times callbacks on the coarse clock when its resolution is
    // at most a tenth of the threshold (10 ms here: 4 ms at HZ=250), so a
    // 200 ms sleep can read up to one resolution short.
    assert!(
        block.held >= Duration::from_millis(190),
        "held {:?} for a 200 ms sleep",
        block.held
    );
    assert_eq!(block.label.as_deref(), Some("GET /primes-blocking"));
    assert!(block
        .to_string()
        .contains("timers phase (GET /primes-blocking)"));
}

/// Quick callbacks never trip the guard.
#[test]
fn quick_callbacks_are_not_reported() {
    let lp = guarded_loop(Duration::from_millis(50));
    lp.run_main(|lp| {
        for i in 0..1000u64 {
            lp.set_immediate(move |lp| {
                lp.next_tick(move |_| {
                    std::hint::black_box(i);
                });
            });
        }
    });
    assert_eq!(lp.metrics().block_reports, 0);
    assert!(lp.metrics().callbacks >= 1000);
}
