//! seed-race: the seed's nine-step example run N times as it is written,
//! without the 2 ms pause the ordering test adds to its main function, and
//! how often "2. Timeout" comes before "5. I/O Callback" (the seed's order).
//! Whether the 0 ms timer is due at the first tick depends on whether the
//! loop's millisecond clock ticked over between `set_timeout` and that tick,
//! as in Node; `bench/node/seed_nine_step.js` is the same script for Node
//! (`for i in $(seq 40); do node bench/node/seed_nine_step.js; done | sort | uniq -c`).
//! Usage: `seed-race [--runs 50] [--main-us 0]`: `--main-us` makes the main
//! function take that long after its last step (Node's own start-up, from
//! the script's `setTimeout` to its first tick, takes over a millisecond).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::{fs, Loop};

fn nine_steps(main_us: u64) -> Vec<&'static str> {
    let lp = Loop::builder()
        .delay_resolution(None)
        .block_warnings(false)
        .build()
        .expect("a loop");
    let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let l = log.clone();
    lp.run_main(move |lp| {
        l.borrow_mut().push("1");
        let l2 = l.clone();
        lp.set_timeout(Duration::ZERO, move |_| l2.borrow_mut().push("2"));
        let l3 = l.clone();
        lp.queue_microtask(move |_| l3.borrow_mut().push("3"));
        let l4 = l.clone();
        lp.next_tick(move |_| l4.borrow_mut().push("4"));
        let l5 = l.clone();
        fs::read_file(file!())
            .submit(lp, move |lp, _| {
                l5.borrow_mut().push("5");
                let l6 = l5.clone();
                lp.set_immediate(move |_| l6.borrow_mut().push("6"));
                let l7 = l5.clone();
                lp.next_tick(move |_| l7.borrow_mut().push("7"));
                let l8 = l5.clone();
                lp.queue_microtask(move |_| l8.borrow_mut().push("8"));
            })
            .expect("submitting the read");
        l.borrow_mut().push("9");
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_micros(main_us) {}
    });
    let order = log.borrow().clone();
    order
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .windows(2)
        .find(|w| w[0] == "--runs")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(50usize);
    let main_us = args
        .windows(2)
        .find(|w| w[0] == "--main-us")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(0u64);
    let mut counts: Vec<(String, usize)> = Vec::new();
    for _ in 0..runs {
        let order = nine_steps(main_us).join(", ");
        match counts.iter_mut().find(|(o, _)| *o == order) {
            Some((_, n)) => *n += 1,
            None => counts.push((order, 1)),
        }
        // Runs start at unrelated moments of the millisecond, as separate
        // processes would.
        std::thread::sleep(Duration::from_micros(1_371));
    }
    for (order, n) in &counts {
        let seed = if order == "1, 9, 4, 3, 2, 5, 7, 8, 6" {
            "  (the seed's order)"
        } else {
            ""
        };
        println!("{n:3} of {runs}: {order}{seed}");
    }
}
