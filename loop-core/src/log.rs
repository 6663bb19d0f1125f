//! What the loop and the server report: as `tracing` events (with
//! fields) once the program has installed a subscriber, else as lines on
//! stderr, so a program that sets nothing up still sees its warnings.
//!
//! Lines for stderr that never panic. `eprintln!` panics when its write
//! fails (stderr redirected to a file on a full disk, or past a file-size
//! limit, or closed): a log line must never turn into a crash, or into a
//! 500 for the request that logged it.

/// Writes one line to stderr, ignoring a failed write.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// True once the program has set a global `tracing` subscriber: events
/// then go there instead of stderr. One relaxed load.
#[inline]
pub fn tracing_on() -> bool {
    tracing::dispatcher::has_been_set()
}

/// Reports an event: to `tracing` at `$level` with the given fields (target
/// `phaseloop`) when a subscriber is set, else the message as a line on
/// stderr. `report!(warn, { phase = ?p, held_ms = ms }, "held for {ms} ms")`.
#[macro_export]
macro_rules! report {
    ($level:ident, {}, $($arg:tt)+) => {{
        if $crate::log::tracing_on() {
            $crate::tracing::$level!(target: "phaseloop", $($arg)+);
        } else {
            $crate::log::write_line(format_args!($($arg)+));
        }
    }};
    ($level:ident, { $($field:tt)+ }, $($arg:tt)+) => {{
        if $crate::log::tracing_on() {
            $crate::tracing::$level!(target: "phaseloop", $($field)+, $($arg)+);
        } else {
            $crate::log::write_line(format_args!($($arg)+));
        }
    }};
}

/// `eprintln!` that never panics: the line is dropped if stderr cannot
/// take it.
#[macro_export]
macro_rules! log_line {
    ($($arg:tt)*) => {
        $crate::log::write_line(format_args!($($arg)*))
    };
}
