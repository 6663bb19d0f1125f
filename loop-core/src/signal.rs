//! Signals as loop callbacks (libuv's `uv_signal_t`).
//!
//! A process-wide handler writes the signal number to a self-pipe (writing
//! to a pipe is one of the few things a signal handler may safely do); the
//! loop watches the pipe's read end like any socket and runs the callbacks
//! in its poll phase. Signal watchers do not keep the loop alive.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use mio::unix::SourceFd;
use mio::Interest;

use crate::event_loop::Loop;
use crate::io::IoOutcome;

/// Write end of the process's signal pipe (-1 until first use).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// Signals with our handler installed.
static INSTALLED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

extern "C" fn on_signal(signum: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signum as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        // A full pipe drops the byte: the signal is already pending there.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// A signal a loop can watch, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGINT: Ctrl-C.
    Int,
    /// SIGTERM: asked to stop (by a service manager, `kill`).
    Term,
    /// SIGHUP: the terminal went away; by convention, reload.
    Hup,
    /// SIGQUIT.
    Quit,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// SIGCHLD: a child process changed state.
    Child,
    /// SIGWINCH: the terminal was resized.
    WindowChange,
}

impl Signal {
    /// Every signal named here.
    const ALL: [Signal; 8] = [
        Signal::Int,
        Signal::Term,
        Signal::Hup,
        Signal::Quit,
        Signal::Usr1,
        Signal::Usr2,
        Signal::Child,
        Signal::WindowChange,
    ];

    /// The signal's number on this system.
    pub fn raw(self) -> i32 {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Hup => libc::SIGHUP,
            Signal::Quit => libc::SIGQUIT,
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
            Signal::Child => libc::SIGCHLD,
            Signal::WindowChange => libc::SIGWINCH,
        }
    }

    /// The named signal with number `raw`, if it is one.
    pub fn from_raw(raw: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.raw() == raw)
    }

    /// Its conventional name (`"SIGTERM"`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
            Signal::Quit => "SIGQUIT",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
            Signal::Child => "SIGCHLD",
            Signal::WindowChange => "SIGWINCH",
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

type SignalCallback = Rc<RefCell<dyn FnMut(&Loop, Signal)>>;

/// The loop thread's watchers: one pipe read end per process, owned by the
/// first loop that asked for signals.
struct Watchers {
    callbacks: HashMap<i32, Vec<SignalCallback>>,
}

thread_local! {
    static WATCHERS: RefCell<Option<Watchers>> = const { RefCell::new(None) };
}

fn make_pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

fn install(signum: i32) -> io::Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if installed.contains(&signum) {
        return Ok(());
    }
    // SAFETY: a zeroed sigaction is a valid starting point; we set the
    // handler to an `extern "C"` function that only calls write(2).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signum, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    installed.push(signum);
    Ok(())
}

impl Loop {
    /// Runs `callback` on this loop (poll phase) whenever the process gets
    /// `signal` (`Signal::Term`). One loop per process receives signals:
    /// the first that calls this.
    pub fn on_signal(
        &self,
        signal: Signal,
        callback: impl FnMut(&Loop, Signal) + 'static,
    ) -> io::Result<()> {
        let signum = signal.raw();
        let needs_pipe = WATCHERS.with(|w| w.borrow().is_none());
        if needs_pipe {
            if PIPE_WRITE.load(Ordering::Acquire) >= 0 {
                return Err(io::Error::other(
                    "signals are already delivered to another loop",
                ));
            }
            let (read_fd, write_fd) = make_pipe()?;
            PIPE_WRITE.store(write_fd, Ordering::Release);
            let token =
                self.register_io(&mut SourceFd(&read_fd), Interest::READABLE, move |lp, _| {
                    dispatch_signals(lp, read_fd)
                })?;
            self.unref_io(token);
            WATCHERS.with(|w| {
                *w.borrow_mut() = Some(Watchers {
                    callbacks: HashMap::new(),
                })
            });
        }
        install(signum)?;
        WATCHERS.with(|w| {
            let mut w = w.borrow_mut();
            let watchers = w.as_mut().expect("created above");
            watchers
                .callbacks
                .entry(signum)
                .or_default()
                .push(Rc::new(RefCell::new(callback)));
        });
        Ok(())
    }
}

fn dispatch_signals(lp: &Loop, read_fd: RawFd) -> IoOutcome {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reading into a local buffer of the given length.
        let n = unsafe { libc::read(read_fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return IoOutcome::Drained;
        }
        for &sig in &buf[..n as usize] {
            let callbacks: Vec<SignalCallback> = WATCHERS.with(|w| {
                w.borrow()
                    .as_ref()
                    .and_then(|w| w.callbacks.get(&i32::from(sig)).cloned())
                    .unwrap_or_default()
            });
            let Some(signal) = Signal::from_raw(i32::from(sig)) else {
                continue;
            };
            for cb in callbacks {
                (cb.borrow_mut())(lp, signal);
            }
        }
    }
}
