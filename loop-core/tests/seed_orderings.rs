//! The orderings the seed articles promise are exactly what the loop does.

mod util;

use std::time::Duration;

use phaseloop_core::{fs, Loop};
use util::{quiet_loop, Log, MS};

/// The seed's nine-step example, with a real file read through the pool:
/// 1, 9, 4, 3, 2, 5, 7, 8, 6.
#[test]
fn nine_step_example_runs_in_node_order() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        l.push("1. Start");
        let l2 = l.clone();
        lp.set_timeout(Duration::ZERO, move |_| l2.push("2. Timeout"));
        let l3 = l.clone();
        lp.queue_microtask(move |_| l3.push("3. Promise"));
        let l4 = l.clone();
        lp.next_tick(move |_| l4.push("4. nextTick"));
        let l5 = l.clone();
        fs::read_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/seed_orderings.rs"
        ))
        .submit(lp, move |lp, result| {
            let bytes = result
                .expect("pool job")
                .expect("reading this test's source");
            assert!(bytes.starts_with(b"//! The orderings"));
            l5.push("5. I/O Callback");
            let l6 = l5.clone();
            lp.set_immediate(move |_| l6.push("6. Immediate from I/O"));
            let l7 = l5.clone();
            lp.next_tick(move |_| l7.push("7. nextTick from I/O"));
            let l8 = l5.clone();
            lp.queue_microtask(move |_| l8.push("8. Promise from I/O"));
        })
        .expect("submitting the read");
        l.push("9. End");
        // The rest of a real script's start-up: Node reaches its first tick
        // more than 1 ms after a `setTimeout(f, 0)` at the top of the script,
        // which is what makes "2. Timeout" come before the file's callback.
        std::thread::sleep(2 * MS);
    });
    assert_eq!(
        log.take(),
        [
            "1. Start",
            "9. End",
            "4. nextTick",
            "3. Promise",
            "2. Timeout",
            "5. I/O Callback",
            "7. nextTick from I/O",
            "8. Promise from I/O",
            "6. Immediate from I/O",
        ]
    );
}

/// Inside an I/O callback, an immediate always beats a 0 ms timer: check
/// comes right after poll, timers only on the next tick.
#[test]
fn immediate_beats_zero_timer_from_io_callback() {
    for _ in 0..20 {
        let lp = quiet_loop();
        let log = Log::new();
        let l = log.clone();
        lp.run_main(move |lp| {
            let l = l.clone();
            fs::stat(env!("CARGO_MANIFEST_DIR"))
                .submit(lp, move |lp, _| {
                    let lt = l.clone();
                    lp.set_timeout(Duration::ZERO, move |_| lt.push("timeout"));
                    let li = l.clone();
                    lp.set_immediate(move |_| li.push("immediate"));
                })
                .unwrap();
        });
        assert_eq!(log.take(), ["immediate", "timeout"]);
    }
}

/// Microtasks queued by a timer callback run before the next timer of the
/// same phase (Node >= 11).
#[test]
fn microtasks_run_between_timers_of_one_phase() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        for name in ["a", "b"] {
            let l = l.clone();
            lp.set_timeout(MS, move |lp| {
                l.push(format!("timer {name}"));
                let lt = l.clone();
                lp.next_tick(move |_| lt.push(format!("tick {name}")));
                let lp2 = l.clone();
                lp.queue_microtask(move |_| lp2.push(format!("promise {name}")));
            });
        }
        // Make sure both are due in the same timers phase.
        std::thread::sleep(3 * MS);
    });
    assert_eq!(
        log.take(),
        [
            "timer a",
            "tick a",
            "promise a",
            "timer b",
            "tick b",
            "promise b"
        ]
    );
}

/// A next-tick queued by a promise job runs after the promise queue drains,
/// before the next macrotask (Node's processTicksAndRejections).
#[test]
fn next_tick_from_promise_job_runs_after_promise_queue() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let (l1, l2) = (l.clone(), l.clone());
        lp.queue_microtask(move |lp| {
            l1.push("p1");
            let lt = l1.clone();
            lp.next_tick(move |_| lt.push("tick from p1"));
        });
        lp.queue_microtask(move |_| l2.push("p2"));
        let li = l.clone();
        lp.set_immediate(move |_| li.push("immediate"));
    });
    assert_eq!(log.take(), ["p1", "p2", "tick from p1", "immediate"]);
}

/// An immediate queued by an immediate runs on the next tick, after that
/// tick's timers.
#[test]
fn immediate_from_immediate_waits_for_next_tick() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l = l.clone();
        lp.set_immediate(move |lp| {
            l.push("first immediate");
            let lt = l.clone();
            lp.set_timeout(Duration::ZERO, move |_| lt.push("timer"));
            let li = l.clone();
            lp.set_immediate(move |_| li.push("second immediate"));
            let l3 = l.clone();
            lp.set_immediate(move |_| l3.push("third immediate"));
            // Let the timer be due by the next tick's timers phase.
            std::thread::sleep(2 * MS);
        });
    });
    assert_eq!(
        log.take(),
        [
            "first immediate",
            "timer",
            "second immediate",
            "third immediate"
        ]
    );
}

/// Equal delays fire in insertion order; shorter delays first.
#[test]
fn equal_delay_timers_fire_in_insertion_order() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        for i in 0..50 {
            let l = l.clone();
            lp.set_timeout(5 * MS, move |_| l.push(format!("5ms #{i}")));
        }
        let l2 = l.clone();
        lp.set_timeout(2 * MS, move |_| l2.push("2ms"));
    });
    let got = log.take();
    let mut want = vec!["2ms".to_string()];
    want.extend((0..50).map(|i| format!("5ms #{i}")));
    assert_eq!(got, want);
}

/// Intervals repeat until cleared, including from their own callback.
#[test]
fn interval_repeats_and_stops_when_cleared() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let count = std::rc::Rc::new(std::cell::Cell::new(0));
        let id = std::rc::Rc::new(std::cell::Cell::new(None));
        let id2 = id.clone();
        let timer = lp.set_interval(MS, move |lp| {
            count.set(count.get() + 1);
            l.push(format!("tick {}", count.get()));
            if count.get() == 5 {
                assert!(lp.clear_timer(id2.get().unwrap()));
            }
        });
        id.set(Some(timer));
    });
    assert_eq!(
        log.take(),
        ["tick 1", "tick 2", "tick 3", "tick 4", "tick 5"]
    );
    assert_eq!(lp.timer_count(), 0);
}

/// Cleared timers and immediates never run, even when cleared by a callback
/// of the same phase they were due in.
#[test]
fn cleared_timers_and_immediates_never_run() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l0 = l.clone();
        lp.set_timeout(MS, move |_| l0.push("kept timer ran"));
        let l1 = l.clone();
        let early = lp.set_timeout(MS, move |_| l1.push("never"));
        assert!(lp.clear_timer(early));
        assert!(!lp.clear_timer(early), "second clear is a no-op");

        let li = l.clone();
        let imm = lp.set_immediate(move |_| li.push("cleared immediate ran"));
        let l2 = l.clone();
        let victim2 = std::rc::Rc::new(std::cell::Cell::new(None));
        let v2 = victim2.clone();
        lp.set_immediate(move |lp| {
            l2.push("first immediate");
            assert!(lp.clear_immediate(v2.get().unwrap()));
        });
        let l3 = l.clone();
        victim2.set(Some(lp.set_immediate(move |_| {
            l3.push("immediate cleared by sibling ran")
        })));
        assert!(lp.clear_immediate(imm));

        let l4 = l.clone();
        let in_phase = std::rc::Rc::new(std::cell::Cell::new(None));
        let ip = in_phase.clone();
        lp.set_timeout(2 * MS, move |lp| {
            l4.push("timer clears sibling");
            assert!(lp.clear_timer(ip.get().unwrap()));
        });
        let l5 = l.clone();
        in_phase.set(Some(
            lp.set_timeout(2 * MS, move |_| l5.push("sibling timer ran")),
        ));
        // All timers are due by the first tick, so they run before the
        // immediates.
        std::thread::sleep(3 * MS);
    });
    let got = log.take();
    assert_eq!(
        got,
        ["kept timer ran", "timer clears sibling", "first immediate"]
    );
}

/// `Loop::enter` is a macrotask of its own: its microtasks drain at its end.
#[test]
fn enter_drains_microtasks() {
    let lp = Loop::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    lp.enter(|lp| {
        let l2 = l.clone();
        lp.queue_microtask(move |_| l2.push("promise"));
        let l3 = l.clone();
        lp.next_tick(move |_| l3.push("tick"));
        l.push("main");
    });
    assert_eq!(log.take(), ["main", "tick", "promise"]);
}
