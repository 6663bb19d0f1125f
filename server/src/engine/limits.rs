//! The process's open-files limit: raised to its hard limit when the first
//! engine starts (as Go's runtime does), so a server meant for 10,000
//! connections does not silently stop at the usual soft 1,024; and read
//! for the log when descriptors run out.

use std::sync::OnceLock;

/// The soft and hard `RLIMIT_NOFILE` now.
fn limits() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the rlimit it is given; nothing else is touched.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// The open-files limit in force (the soft one).
pub fn open_files_limit() -> u64 {
    limits().map_or(0, |(soft, _)| soft)
}

/// Raises the soft open-files limit to the hard one, once per process, and
/// says on stderr what it is then. Returns the limit in force.
pub(crate) fn raise_open_files_limit() -> u64 {
    static RAISED: OnceLock<u64> = OnceLock::new();
    *RAISED.get_or_init(|| {
        let Some((soft, hard)) = limits() else {
            return 0;
        };
        if soft >= hard {
            phaseloop_core::report!(info, {}, "phaseloop: open files limit {soft}");
            return soft;
        }
        let lim = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the rlimit it is given; raising the soft
        // limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            phaseloop_core::report!(
                info,
                {},
                "phaseloop: open files limit {hard} (raised from {soft})"
            );
            hard
        } else {
            phaseloop_core::report!(
                info,
                {},
                "phaseloop: open files limit {soft} (raising it to {hard} failed: {})",
                std::io::Error::last_os_error()
            );
            soft
        }
    })
}
