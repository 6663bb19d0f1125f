//! Clock reads as plain nanosecond counts.
//!
//! The loop reads its clock a few times per tick (the tick's time, the poll
//! wait, phase timings) and the starvation guard once per callback; all
//! they do with the readings is subtract. `Instant` normalises seconds and
//! nanoseconds on every subtraction, about forty instructions each time,
//! several times a tick: a `u64` of nanoseconds subtracts in one.

/// Nanoseconds on `clock` (`CLOCK_MONOTONIC` or `CLOCK_MONOTONIC_COARSE`),
/// from an unspecified origin that never moves back.
pub(crate) fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill; both clocks
    // exist on every Linux since 2.6.32, so the call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds on the monotonic clock (the one `Instant` reads).
pub(crate) fn monotonic_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn counts_as_instant_does() {
        let (a, at) = (monotonic_ns(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (b, bt) = (monotonic_ns(), Instant::now());
        let ours = Duration::from_nanos(b - a);
        let theirs = bt - at;
        assert!(ours >= Duration::from_millis(20), "{ours:?}");
        let apart = ours.abs_diff(theirs);
        assert!(apart < Duration::from_millis(5), "{ours:?} vs {theirs:?}");
    }
}
