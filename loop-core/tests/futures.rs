//! Futures are promise jobs: `.await` continuations run where Node runs the
//! continuation of an `await`, and wakes from other threads reach the loop.

mod util;

use std::time::{Duration, Instant};

use phaseloop_core::{crypto, fs, sleep, yield_now, Loop, PoolError};
use util::{quiet_loop, Log, CLOCK_SLACK, MS};

/// Spawning is calling an async function: its body runs at once, up to
/// the first `.await` that must wait. Node 20:
/// `(async () => log("async body"))(); process.nextTick(() => log("next
/// tick")); queueMicrotask(() => log("promise job")); log("main")`.
#[test]
fn spawned_future_runs_its_body_at_once() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let la = l.clone();
        lp.spawn(async move { la.push("async body") });
        let lt = l.clone();
        lp.next_tick(move |_| lt.push("next tick"));
        let lp2 = l.clone();
        lp.queue_microtask(move |_| lp2.push("promise job queued after spawn"));
        l.push("main");
    });
    assert_eq!(
        log.take(),
        [
            "async body",
            "main",
            "next tick",
            "promise job queued after spawn"
        ]
    );
}

/// JS's `.then(a).then(b).then(c)` on a settled promise: each step queued
/// as a promise job when the one before it ran.
fn then_chain(lp: &Loop, log: &Log, steps: &'static [&'static str]) {
    let Some((first, rest)) = steps.split_first() else {
        return;
    };
    let log = log.clone();
    lp.queue_microtask(move |lp| {
        log.push(*first);
        then_chain(lp, &log, rest);
    });
}

/// Node 20: `log(1); (async () => { log(2); await null; log(4) })();
/// log(3)` prints 1, 2, 3, 4.
#[test]
fn calling_an_async_fn_runs_it_up_to_its_first_await() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        l.push("1");
        let la = l.clone();
        lp.spawn(async move {
            la.push("2");
            yield_now().await;
            la.push("4");
        });
        l.push("3");
    });
    assert_eq!(log.take(), ["1", "2", "3", "4"]);
}

/// Nested async calls, each awaited as a promise. Node 20 prints this
/// order for:
/// ```js
/// async function inner() { log("inner start"); await null; log("inner end"); return 7; }
/// async function outer() { log("outer start"); const v = await inner(); log("outer got " + v); }
/// log("main start"); outer();
/// Promise.resolve().then(() => log("then 1")).then(() => log("then 2")).then(() => log("then 3"));
/// process.nextTick(() => log("tick")); log("main end");
/// ```
#[test]
fn nested_async_calls_order_as_in_node() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        l.push("main start");
        let lo = l.clone();
        lp.spawn(async move {
            lo.push("outer start");
            let li = lo.clone();
            let inner = Loop::with_current(|lp| {
                lp.spawn_task(async move {
                    li.push("inner start");
                    yield_now().await;
                    li.push("inner end");
                    7
                })
            })
            .unwrap();
            let v = inner.await.unwrap();
            lo.push(format!("outer got {v}"));
        });
        then_chain(lp, &l, &["then 1", "then 2", "then 3"]);
        let lt = l.clone();
        lp.next_tick(move |_| lt.push("tick"));
        l.push("main end");
    });
    assert_eq!(
        log.take(),
        [
            "main start",
            "outer start",
            "inner start",
            "main end",
            "tick",
            "inner end",
            "then 1",
            "outer got 7",
            "then 2",
            "then 3"
        ]
    );
}

/// Awaiting a settled promise takes one microtask turn; `await null` too.
/// Node 20 prints this order for:
/// ```js
/// const resolved = Promise.resolve("r");
/// async function f() { log("f start"); const v = await resolved; log("f after await " + v);
///                      await null; log("f after await null"); }
/// log("main start"); f();
/// Promise.resolve().then(() => log("then 1")).then(() => log("then 2")).then(() => log("then 3"));
/// log("main end");
/// ```
#[test]
fn awaiting_a_settled_task_takes_one_turn_as_in_node() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let resolved = lp.spawn_task(async { "r" });
        l.push("main start");
        let lf = l.clone();
        lp.spawn(async move {
            lf.push("f start");
            let v = resolved.await.unwrap();
            lf.push(format!("f after await {v}"));
            yield_now().await;
            lf.push("f after await null");
        });
        then_chain(lp, &l, &["then 1", "then 2", "then 3"]);
        l.push("main end");
    });
    assert_eq!(
        log.take(),
        [
            "main start",
            "f start",
            "main end",
            "f after await r",
            "then 1",
            "f after await null",
            "then 2",
            "then 3"
        ]
    );
}

/// An async call in a timer callback awaiting a later timer. Node 20:
/// `setTimeout(() => { f(); log("timer cb end"); Promise.resolve().then(()
/// => log("then")); setImmediate(() => log("immediate")) }, 0)` with
/// `async function f() { log("f start"); await new Promise(r =>
/// setTimeout(r, 1)); log("f resumed") }`.
#[test]
fn async_call_from_a_callback_orders_as_in_node() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        lp.set_timeout(Duration::ZERO, move |lp| {
            let lf = l.clone();
            lp.spawn(async move {
                lf.push("f start");
                sleep(MS).await;
                lf.push("f resumed");
            });
            l.push("timer cb end");
            let lt = l.clone();
            lp.queue_microtask(move |_| lt.push("then"));
            let li = l.clone();
            lp.set_immediate(move |_| li.push("immediate"));
        });
    });
    assert_eq!(
        log.take(),
        ["f start", "timer cb end", "then", "immediate", "f resumed"]
    );
}

/// A panic in the first poll is a panic in a promise job: with panics
/// caught, it ends the future alone, is counted, and the caller goes on
/// (JS: a throw before the first `await` rejects the call's promise).
#[test]
fn a_panic_in_the_first_poll_ends_only_the_future() {
    let lp = quiet_loop();
    lp.set_catch_panics(true);
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        l.push("before");
        let task = lp.spawn_task(async {
            if true {
                panic!("boom before the first await");
            }
            1
        });
        l.push("after");
        let lw = l.clone();
        lp.spawn(async move { lw.push(format!("awaited: {:?}", task.await)) });
    });
    assert_eq!(log.take(), ["before", "after", "awaited: None"]);
    assert_eq!(lp.metrics().callback_panics, 1);
    assert_eq!(lp.task_count(), 0);
}

#[test]
fn await_on_pool_job_resumes_in_poll_phase_before_immediates() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l = l.clone();
        lp.spawn(async move {
            l.push("before await");
            let key = crypto::pbkdf2_sha512("pw", "salt", 10, 32).await.unwrap();
            assert_eq!(key.len(), 32);
            let phase = Loop::with_current(|lp| lp.phase()).unwrap();
            l.push(format!("after await in {phase}"));
            let li = l.clone();
            Loop::with_current(|lp| lp.set_immediate(move |_| li.push("immediate")));
            let lt = l.clone();
            Loop::with_current(|lp| lp.next_tick(move |_| lt.push("tick after continuation")));
            let bytes = fs::read_file(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .await
                .unwrap()
                .unwrap();
            assert!(bytes.starts_with(b"[package]"));
            l.push("second await");
        });
    });
    assert_eq!(
        log.take(),
        [
            "before await",
            "after await in poll",
            "tick after continuation",
            "immediate",
            "second await"
        ]
    );
}

#[test]
fn sleep_future_and_many_tasks() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    let start = Instant::now();
    lp.run_main(move |lp| {
        for i in (0..5u64).rev() {
            let l = l.clone();
            lp.spawn(async move {
                sleep(Duration::from_millis(2 + 3 * i)).await;
                l.push(format!("slept {i}"));
            });
        }
    });
    assert_eq!(
        log.take(),
        ["slept 0", "slept 1", "slept 2", "slept 3", "slept 4"]
    );
    assert!(start.elapsed() >= 14 * MS - CLOCK_SLACK);
    assert_eq!(lp.task_count(), 0);
}

#[test]
fn dropped_sleep_cancels_its_timer() {
    let lp = quiet_loop();
    let start = Instant::now();
    lp.run_main(|lp| {
        lp.spawn(async {
            let long = sleep(Duration::from_secs(30));
            let short = sleep(2 * MS);
            let mut long = Box::pin(long);
            // Poll the long sleep once so its timer exists, then drop it.
            std::future::poll_fn(|cx| {
                let _ = long.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
            drop(long);
            short.await;
        });
    });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the 30 s timer was cleared"
    );
    assert_eq!(lp.timer_count(), 0);
}

#[test]
fn wake_from_another_thread_reaches_the_loop() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        lp.hold(); // the foreign thread is work the loop does not know about
        let l = l.clone();
        lp.spawn(async move {
            let (tx, rx) = std::sync::mpsc::channel::<u32>();
            let mut rx = Some(rx);
            let mut spawned = false;
            let value = std::future::poll_fn(|cx| {
                if let Some(v) = rx.as_ref().and_then(|r| r.try_recv().ok()) {
                    rx = None;
                    return std::task::Poll::Ready(v);
                }
                if !spawned {
                    spawned = true;
                    let waker = cx.waker().clone();
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(10));
                        tx.send(42).unwrap();
                        waker.wake();
                    });
                }
                std::task::Poll::Pending
            })
            .await;
            l.push(format!("got {value}"));
            Loop::with_current(|lp| lp.release());
        });
    });
    assert_eq!(log.take(), ["got 42"]);
}

#[test]
fn job_future_outside_a_loop_is_an_error() {
    let fut = std::pin::pin!(std::future::IntoFuture::into_future(crypto::random_bytes(
        4
    )));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.poll(&mut cx) {
        std::task::Poll::Ready(Err(PoolError::NoLoop)) => {}
        other => panic!("expected NoLoop, got {other:?}"),
    }
}

use std::future::Future;
