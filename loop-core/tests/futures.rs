//! Futures are promise jobs: `.await` continuations run where Node runs the
//! continuation of an `await`, and wakes from other threads reach the loop.

mod util;

use std::time::{Duration, Instant};

use phaseloop_core::{crypto, fs, sleep, Loop, PoolError};
use util::{quiet_loop, Log, MS};

#[test]
fn spawned_future_runs_as_promise_job() {
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
            "main",
            "next tick",
            "async body",
            "promise job queued after spawn"
        ]
    );
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
    assert!(start.elapsed() >= 14 * MS);
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
