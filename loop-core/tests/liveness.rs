//! run() returns when nothing alive remains; unref'd work does not keep the
//! loop alive; run modes, stop, hold and cross-thread posts behave as libuv's.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use phaseloop_core::{HookKind, Loop, PostError, RunMode};
use util::{quiet_loop, Log, CLOCK_SLACK, MS};

#[test]
fn run_returns_when_work_is_done() {
    let lp = quiet_loop();
    assert!(!lp.run(RunMode::Default), "an empty loop returns at once");
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l = l.clone();
        lp.set_timeout(2 * MS, move |lp| {
            l.push("timer");
            let l = l.clone();
            lp.set_immediate(move |_| l.push("immediate"));
        });
    });
    assert_eq!(log.take(), ["timer", "immediate"]);
    assert!(!lp.is_alive());
}

#[test]
fn unrefed_timer_does_not_keep_loop_alive() {
    let lp = quiet_loop();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let start = Instant::now();
    lp.run_main(move |lp| {
        let id = lp.set_timeout(Duration::from_secs(10), move |_| r.set(true));
        assert!(lp.unref_timer(id));
    });
    assert!(!ran.get());
    assert!(start.elapsed() < Duration::from_secs(5));

    // But an unref'd timer still fires while something else keeps the loop up.
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let lu = l.clone();
        let id = lp.set_timeout(2 * MS, move |_| lu.push("unrefed"));
        lp.unref_timer(id);
        let lr = l.clone();
        lp.set_timeout(20 * MS, move |_| lr.push("refed"));
    });
    assert_eq!(log.take(), ["unrefed", "refed"]);
}

#[test]
fn unrefed_immediate_and_hook_do_not_keep_loop_alive() {
    let lp = quiet_loop();
    lp.run_main(|lp| {
        let id = lp.set_immediate(|_| {});
        lp.unref_immediate(id);
    });
    // The immediate runs in the first tick only if the loop ticks at all; an
    // unref'd one alone does not make it tick.
    let hook_runs = Rc::new(Cell::new(0));
    let h = hook_runs.clone();
    let lp = quiet_loop();
    lp.run_main(move |lp| {
        let id = lp.add_hook(HookKind::Check, move |_| h.set(h.get() + 1));
        lp.unref_hook(id);
        lp.set_timeout(5 * MS, |_| {});
    });
    assert!(
        hook_runs.get() >= 1,
        "the check hook ran while the timer kept the loop"
    );
}

#[test]
fn hooks_run_every_tick_in_their_phase() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let (li, lpr, lc) = (l.clone(), l.clone(), l.clone());
        let idle = lp.add_hook(HookKind::Idle, move |_| li.push("idle"));
        let prep = lp.add_hook(HookKind::Prepare, move |_| lpr.push("prepare"));
        let check = lp.add_hook(HookKind::Check, move |_| lc.push("check"));
        let lt = l.clone();
        lp.set_immediate(move |_| lt.push("immediate"));
        let ids = (idle, prep, check);
        let lt = l.clone();
        lp.set_timeout(MS, move |lp| {
            lt.push("timer");
            lp.remove_hook(ids.0);
            lp.remove_hook(ids.1);
            lp.remove_hook(ids.2);
        });
        std::thread::sleep(2 * MS);
    });
    assert_eq!(
        log.take(),
        ["timer", "immediate"],
        "the timer was due on the first tick and removed the hooks"
    );

    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let (li, lpr, lc) = (l.clone(), l.clone(), l.clone());
        let idle = lp.add_hook(HookKind::Idle, move |_| li.push("idle"));
        let prep = lp.add_hook(HookKind::Prepare, move |_| lpr.push("prepare"));
        let check = lp.add_hook(HookKind::Check, move |_| lc.push("check"));
        let lt = l.clone();
        lp.set_immediate(move |lp| {
            lt.push("immediate");
            lp.remove_hook(idle);
            lp.remove_hook(prep);
            lp.remove_hook(check);
        });
    });
    // The check hook was removed by the immediate that ran before it.
    assert_eq!(log.take(), ["idle", "prepare", "immediate"]);
}

#[test]
fn pending_and_close_phases_run_in_order() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l = l.clone();
        lp.set_timeout(MS, move |lp| {
            l.push("timer");
            let lc = l.clone();
            lp.on_close(move |_| lc.push("close (same tick)"));
            let lpd = l.clone();
            // Pending comes right after timers: this tick's pending phase.
            lp.defer(move |_| lpd.push("pending (same tick)"));
            let li = l.clone();
            lp.set_immediate(move |lp| {
                li.push("immediate");
                let lpd = li.clone();
                // Deferred from check: the next tick's pending phase.
                lp.defer(move |lp| {
                    lpd.push("pending (next tick)");
                    let lc = lpd.clone();
                    lp.on_close(move |_| lc.push("close (next tick)"));
                });
            });
        });
    });
    assert_eq!(
        log.take(),
        [
            "timer",
            "pending (same tick)",
            "immediate",
            "close (same tick)",
            "pending (next tick)",
            "close (next tick)"
        ]
    );
}

#[test]
fn run_modes_once_and_nowait() {
    const TIMER: Duration = Duration::from_millis(400);
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.enter(|lp| {
        let l = l.clone();
        lp.set_timeout(TIMER, move |_| l.push("timer"));
    });
    let start = Instant::now();
    assert!(
        lp.run(RunMode::NoWait),
        "nowait returns at once, still alive"
    );
    // Not blocked until the timer: a bound far below it, so a busy machine
    // that deschedules the test for a while cannot fail it.
    assert!(start.elapsed() < TIMER / 2);
    assert!(log.take().is_empty());
    // Once blocks in poll until the timer is due, but runs it only on the
    // next tick's timers phase (as libuv's UV_RUN_ONCE without the trailing
    // timer pass): at most two calls.
    let mut calls = 0;
    while log.len() == 0 {
        lp.run(RunMode::Once);
        calls += 1;
        assert!(calls <= 2);
    }
    assert!(start.elapsed() >= TIMER - CLOCK_SLACK);
    assert!(!lp.run(RunMode::Once));
}

#[test]
fn stop_from_another_thread_and_posts() {
    let lp = quiet_loop();
    let handle = lp.handle();
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let posted = Rc::new(Cell::new(0u32));
    lp.enter(|lp| {
        lp.set_interval(MS, move |_| t.set(t.get() + 1));
    });
    let h2 = handle.clone();
    let poster = std::thread::spawn(move || {
        for i in 0..100u32 {
            h2.post(move |lp| {
                // Runs on the loop thread, in the poll phase.
                assert_eq!(lp.phase(), phaseloop_core::Phase::Poll);
                Loop::with_current(|_| ()).expect("posted callback runs on a loop");
                std::hint::black_box(i);
            })
            .unwrap();
        }
        std::thread::sleep(20 * MS);
        h2.stop();
    });
    let p = posted.clone();
    lp.enter(|lp| {
        let handle = lp.handle();
        let _ = handle;
        p.set(1);
    });
    assert!(
        lp.run(RunMode::Default),
        "stopped while the interval is alive"
    );
    poster.join().unwrap();
    assert!(ticks.get() >= 1);
    // After a stop the loop can run again.
    lp.stop();
    assert!(lp.run(RunMode::Default));
}

#[test]
fn post_is_bounded_and_hold_keeps_loop_alive() {
    let lp = Loop::builder()
        .post_capacity(4)
        .delay_resolution(None)
        .build()
        .unwrap();
    let handle = lp.handle();
    for _ in 0..4 {
        handle.post(|_| {}).unwrap();
    }
    assert_eq!(handle.post(|_| {}), Err(PostError::Full));

    // hold() keeps run() waiting for a post from another thread.
    let got = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    lp.hold();
    let g = got.clone();
    let h = handle.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(20 * MS);
        h.post(move |lp| {
            g.store(true, std::sync::atomic::Ordering::SeqCst);
            lp.release();
        })
        .unwrap_or_else(|e| panic!("post after drain: {e}"));
    });
    // The first run drains the 4 queued posts; the hold keeps it waiting.
    lp.run(RunMode::Default);
    t.join().unwrap();
    assert!(got.load(std::sync::atomic::Ordering::SeqCst));
    drop(lp);
    assert_eq!(handle.post(|_| {}), Err(PostError::Closed));
}
