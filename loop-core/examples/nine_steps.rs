//! The seed article's execution-order puzzle on phaseloop. Prints, always:
//! 1, 9, 4, 3, 2, 5, 7, 8, 6.
//!
//! Run: `cargo run --release -p phaseloop-core --example nine_steps`

use std::time::Duration;

use phaseloop_core::{fs, Loop};

fn main() -> std::io::Result<()> {
    let lp = Loop::new()?;
    lp.run_main(|lp| {
        println!("1. Start");
        lp.set_timeout(Duration::ZERO, |_| println!("2. Timeout"));
        lp.queue_microtask(|_| println!("3. Promise"));
        lp.next_tick(|_| println!("4. nextTick"));
        fs::read_file(file!())
            .submit(lp, |lp, _contents| {
                println!("5. I/O Callback");
                lp.set_immediate(|_| println!("6. Immediate from I/O"));
                lp.next_tick(|_| println!("7. nextTick from I/O"));
                lp.queue_microtask(|_| println!("8. Promise from I/O"));
            })
            .expect("the pool accepts the read");
        println!("9. End");
        // A real script's start-up takes longer than the timer's 1 ms.
        std::thread::sleep(Duration::from_millis(2));
    });
    Ok(())
}
