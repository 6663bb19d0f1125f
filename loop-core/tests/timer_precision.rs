//! Timers run no earlier than Node's whole-millisecond clock allows (their
//! delay less at most 1 ms), with bounded lateness on an idle machine, and
//! 100,000 live timers do not slow a tick down.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use util::{quiet_loop, CLOCK_SLACK, MS};

/// Bound on lateness for an idle loop. Generous: CI machines are shared and
/// noisy; what matters is that lateness is bounded, not sub-millisecond.
const LATENESS_BOUND: Duration = Duration::from_millis(40);

#[test]
fn timers_are_not_early_past_the_millisecond_and_lateness_is_bounded() {
    let lp = quiet_loop();
    let results: Rc<RefCell<Vec<(Duration, Duration)>>> = Rc::default();
    let r = results.clone();
    lp.run_main(move |lp| {
        for i in 0..200u64 {
            let delay = Duration::from_micros(500 + (i * 137) % 25_000);
            let set_at = Instant::now();
            let r = r.clone();
            lp.set_timeout(delay, move |_| {
                r.borrow_mut().push((delay, set_at.elapsed()))
            });
        }
    });
    let results = results.borrow();
    assert_eq!(results.len(), 200);
    for &(delay, waited) in results.iter() {
        let effective = delay.max(MS);
        assert!(
            waited >= effective - CLOCK_SLACK,
            "fired early: {waited:?} for {effective:?}"
        );
        assert!(
            waited.saturating_sub(effective) < LATENESS_BOUND,
            "too late: {waited:?} for {effective:?}"
        );
    }
}

#[test]
fn intervals_are_not_early_past_the_millisecond() {
    let lp = quiet_loop();
    let gaps: Rc<RefCell<Vec<Duration>>> = Rc::default();
    let g = gaps.clone();
    lp.run_main(move |lp| {
        let last = std::cell::Cell::new(Instant::now());
        let id = Rc::new(std::cell::Cell::new(None));
        let id2 = id.clone();
        id.set(Some(lp.set_interval(3 * MS, move |lp| {
            let now = Instant::now();
            g.borrow_mut().push(now - last.replace(now));
            if g.borrow().len() == 20 {
                lp.clear_timer(id2.get().unwrap());
            }
        })));
    });
    for gap in gaps.borrow().iter() {
        assert!(
            *gap >= 3 * MS - CLOCK_SLACK,
            "interval fired early: {gap:?}"
        );
    }
}

/// 100,000 pending far-away timers plus churn (insert and cancel) leave the
/// loop's work per tick small: a near timer still fires on time, and the
/// heap does not keep the cancelled entries.
#[test]
fn hundred_thousand_timers_stay_cheap() {
    let lp = quiet_loop();
    let fired = Rc::new(std::cell::Cell::new(None));
    let f = fired.clone();
    lp.run_main(move |lp| {
        let mut ids = Vec::new();
        for i in 0..100_000u64 {
            ids.push(lp.set_timeout(Duration::from_secs(3600 + i), |_| panic!("far timer ran")));
        }
        for _ in 0..3 {
            for id in ids.drain(..) {
                assert!(lp.clear_timer(id));
            }
            for i in 0..100_000u64 {
                ids.push(
                    lp.set_timeout(Duration::from_secs(3600 + i), |_| panic!("far timer ran")),
                );
            }
        }
        assert_eq!(lp.timer_count(), 100_000);
        let start = Instant::now();
        lp.set_timeout(5 * MS, move |lp| {
            f.set(Some(start.elapsed()));
            for id in ids.drain(..) {
                lp.clear_timer(id);
            }
        });
    });
    let waited = fired.get().expect("near timer fired");
    assert!(
        waited >= 5 * MS - CLOCK_SLACK && waited < 5 * MS + LATENESS_BOUND,
        "{waited:?}"
    );
    assert_eq!(lp.timer_count(), 0);
}

/// `refresh_timer` pushes a timeout back (the HTTP idle-timeout pattern).
#[test]
fn refreshed_timer_fires_after_last_refresh() {
    let lp = quiet_loop();
    let fired = Rc::new(std::cell::Cell::new(None));
    let f = fired.clone();
    let start = Instant::now();
    lp.run_main(move |lp| {
        let idle = lp.set_timeout(20 * MS, move |_| f.set(Some(start.elapsed())));
        let refreshes = Rc::new(std::cell::Cell::new(0));
        let id = Rc::new(std::cell::Cell::new(None));
        let id2 = id.clone();
        id.set(Some(lp.set_interval(5 * MS, move |lp| {
            refreshes.set(refreshes.get() + 1);
            assert!(lp.refresh_timer(idle));
            if refreshes.get() == 6 {
                lp.clear_timer(id2.get().unwrap());
            }
        })));
    });
    let at = fired.get().expect("idle timer fired once");
    // Six refreshes 5 ms apart, then 20 ms more: 50 ms, less the
    // millisecond each of the seven timings may round away.
    assert!(at >= 50 * MS - 7 * CLOCK_SLACK, "fired at {at:?}");
}
