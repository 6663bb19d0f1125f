//! A callback that panics: by default the panic ends the run (an uncaught
//! exception ends a Node program); with `set_catch_panics(true)` it ends
//! only that callback, is counted, and the loop goes on in order.

mod util;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use phaseloop_core::{Job, Lane, Loop, RunMode};
use util::{quiet_loop, Log, MS};

/// Runs `body` as `main` on a loop that catches panics (or not), until the
/// loop has nothing left; returns the log and whether `run` unwound.
fn run(catch: bool, body: impl FnOnce(&Loop, Log) + 'static) -> (Vec<String>, bool, Loop) {
    let lp = quiet_loop();
    lp.set_catch_panics(catch);
    let log = Log::new();
    let l = log.clone();
    lp.enter(move |lp| body(lp, l));
    let unwound = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).is_err();
    (log.take(), unwound, lp)
}

#[test]
fn by_default_a_panic_ends_the_run() {
    let (log, unwound, lp) = run(false, |lp, l| {
        let l2 = l.clone();
        lp.set_immediate(move |_| {
            l2.push("first");
            panic!("callback bug");
        });
        lp.set_immediate(move |_| l.push("second"));
    });
    assert!(unwound, "the panic came out of run");
    assert_eq!(log, ["first"]);
    assert_eq!(lp.metrics().callback_panics, 0);
}

#[test]
fn a_caught_panic_ends_only_its_callback_in_every_phase() {
    let (log, unwound, lp) = run(true, |lp, l| {
        let l1 = l.clone();
        lp.set_timeout(MS, move |lp| {
            l1.push("timer");
            let l = l1.clone();
            lp.set_immediate(move |_| l.push("immediate after the timer"));
            panic!("timer bug");
        });
        let l2 = l.clone();
        lp.set_immediate(move |_| {
            l2.push("immediate");
            panic!("immediate bug");
        });
        let l3 = l.clone();
        lp.defer(move |_| {
            l3.push("pending");
            panic!("pending bug");
        });
        let l4 = l.clone();
        lp.on_close(move |_| {
            l4.push("close");
            panic!("close bug");
        });
        let l5 = l.clone();
        Job::new(Lane::Cpu, || 7)
            .submit(lp, move |_, result| {
                l5.push(format!("job {}", result.expect("the job ran")));
                panic!("job callback bug");
            })
            .expect("an empty pool takes the job");
    });
    assert!(!unwound);
    // Each callback ran up to its panic, and every later one still ran.
    for entry in [
        "timer",
        "immediate after the timer",
        "immediate",
        "pending",
        "close",
        "job 7",
    ] {
        assert!(log.iter().any(|e| e == entry), "{entry} missing: {log:?}");
    }
    assert_eq!(lp.metrics().callback_panics, 5);
}

#[test]
fn an_interval_that_panics_keeps_its_schedule() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let (_, unwound, lp) = run(true, move |lp, _| {
        lp.set_interval(MS, move |lp| {
            r.set(r.get() + 1);
            if r.get() == 3 {
                lp.stop();
            }
            if r.get() == 1 {
                panic!("first run bug");
            }
        });
    });
    assert!(!unwound);
    assert_eq!(runs.get(), 3, "the interval ran on after its panic");
    assert_eq!(lp.metrics().callback_panics, 1);
}

#[test]
fn microtasks_after_a_panicking_one_still_run_before_the_next_callback() {
    let (log, unwound, lp) = run(true, |lp, l| {
        let l = l.clone();
        lp.set_immediate(move |lp| {
            let (a, b, c) = (l.clone(), l.clone(), l.clone());
            lp.next_tick(move |_| {
                a.push("tick 1");
                panic!("tick bug");
            });
            lp.next_tick(move |_| b.push("tick 2"));
            lp.queue_microtask(move |_| c.push("promise job"));
            let l = l.clone();
            lp.set_immediate(move |_| l.push("next immediate"));
        });
    });
    assert!(!unwound);
    assert_eq!(
        log,
        ["tick 1", "tick 2", "promise job", "next immediate"],
        "the order is Node's, the panic only skipped the rest of tick 1"
    );
    assert_eq!(lp.metrics().callback_panics, 1);
}

#[test]
fn a_future_that_panics_is_dropped_and_its_slot_freed() {
    struct Drops(Log);
    impl Drop for Drops {
        fn drop(&mut self) {
            self.0.push("future dropped");
        }
    }
    let (log, unwound, lp) = run(true, |lp, l| {
        let held = Drops(l.clone());
        lp.spawn(async move {
            let _held = held;
            phaseloop_core::sleep(MS).await;
            panic!("async bug");
        });
        let l = l.clone();
        lp.spawn(async move {
            phaseloop_core::sleep(5 * MS).await;
            l.push("other task finished");
        });
    });
    assert!(!unwound);
    assert_eq!(log, ["future dropped", "other task finished"]);
    assert_eq!(lp.task_count(), 0, "no slot is left behind");
    assert_eq!(lp.metrics().callback_panics, 1);
}
