//! Lines for stderr that never panic. `eprintln!` panics when its write
//! fails (stderr redirected to a file on a full disk, or past a file-size
//! limit, or closed): a log line must never turn into a crash, or into a
//! 500 for the request that logged it.

/// Writes one line to stderr, ignoring a failed write.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `eprintln!` that never panics: the line is dropped if stderr cannot
/// take it.
#[macro_export]
macro_rules! log_line {
    ($($arg:tt)*) => {
        $crate::log::write_line(format_args!($($arg)*))
    };
}
