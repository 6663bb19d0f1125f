//! I/O sources run their callbacks in the poll phase, and a busy source that
//! returns `Again` yields to the others instead of starving them.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::mio::net::{TcpListener, TcpStream};
use phaseloop_core::mio::unix::SourceFd;
use phaseloop_core::mio::Interest;
use phaseloop_core::{IoOutcome, Loop, Phase};
use std::os::fd::AsRawFd;
use util::{quiet_loop, Log};

/// Reads up to `budget` chunks of 1 KiB; says whether the source is drained.
fn read_some(stream: &mut TcpStream, budget: usize, total: &mut usize) -> (IoOutcome, bool) {
    let mut buf = [0u8; 1024];
    for _ in 0..budget {
        match stream.read(&mut buf) {
            Ok(0) => return (IoOutcome::Drained, true),
            Ok(n) => *total += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return (IoOutcome::Drained, false)
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    (IoOutcome::Again, false)
}

#[test]
fn busy_source_yields_to_others_with_again() {
    let lp = quiet_loop();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(std_listener);
    let listener_fd = listener.as_raw_fd();

    // The busy client sends 4 MiB; the quiet one sends one line, afterwards.
    let mut busy = std::net::TcpStream::connect(addr).unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..64 {
            busy.write_all(&chunk).unwrap();
        }
    });
    let log = Log::new();
    let l = log.clone();
    let quiet_addr = addr;
    lp.run_main(move |lp| {
        let l = l.clone();
        let accepted = Rc::new(RefCell::new(0));
        let listener_token = Rc::new(RefCell::new(None));
        let lt = listener_token.clone();
        let token = lp
            .register_io(
                &mut SourceFd(&listener_fd),
                Interest::READABLE,
                move |lp, _ev| {
                    assert_eq!(lp.phase(), Phase::Poll);
                    loop {
                        match listener.accept() {
                            Ok((mut stream, _)) => {
                                let n = {
                                    let mut a = accepted.borrow_mut();
                                    *a += 1;
                                    *a
                                };
                                let name = if n == 1 { "busy" } else { "quiet" };
                                let l = l.clone();
                                let mut total = 0usize;
                                let stream_token = Rc::new(RefCell::new(None));
                                let st = stream_token.clone();
                                let mut again_count = 0;
                                let fd = stream.as_raw_fd();
                                let token = lp
                                    .register_io(
                                        &mut SourceFd(&fd),
                                        Interest::READABLE,
                                        move |lp, _| {
                                            let (outcome, eof) =
                                                read_some(&mut stream, 8, &mut total);
                                            if outcome == IoOutcome::Again {
                                                again_count += 1;
                                                if again_count == 1 {
                                                    l.push(format!("{name} yields"));
                                                }
                                            }
                                            if eof || (name == "quiet" && total > 0) {
                                                l.push(format!("{name} done ({total} bytes)"));
                                                let t = st.borrow_mut().take().unwrap();
                                                lp.deregister_io(t, &mut SourceFd(&fd)).unwrap();
                                                return IoOutcome::Drained;
                                            }
                                            outcome
                                        },
                                    )
                                    .unwrap();
                                *stream_token.borrow_mut() = Some(token);
                                if n == 1 {
                                    // Now that the busy one is flowing, connect the quiet one.
                                    std::thread::spawn(move || {
                                        let mut q =
                                            std::net::TcpStream::connect(quiet_addr).unwrap();
                                        q.write_all(b"hello\n").unwrap();
                                        std::thread::sleep(std::time::Duration::from_millis(200));
                                    });
                                }
                                if n == 2 {
                                    let t = lt.borrow_mut().take().unwrap();
                                    lp.unref_io(t);
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                return IoOutcome::Drained
                            }
                            Err(e) => panic!("accept: {e}"),
                        }
                    }
                },
            )
            .unwrap();
        *listener_token.borrow_mut() = Some(token);
    });
    writer.join().unwrap();
    let got = log.take();
    let quiet_done = got
        .iter()
        .position(|s| s.starts_with("quiet done"))
        .expect("quiet finished");
    let busy_done = got
        .iter()
        .position(|s| s.starts_with("busy done"))
        .expect("busy finished");
    assert!(
        got.contains(&"busy yields".to_string()),
        "the busy source used its budget and yielded: {got:?}"
    );
    assert!(
        quiet_done < busy_done,
        "the quiet source was served while the busy one streamed: {got:?}"
    );
    assert_eq!(
        got[busy_done],
        format!("busy done ({} bytes)", 4 * 1024 * 1024)
    );
}

/// A socket a thread writes "ping" into after `delay`, registered on `lp`
/// for one readable event: `on_read` gets the event and what was read, then
/// the source is deregistered. Returns the writer thread.
fn read_once_after(
    lp: &Loop,
    delay: Duration,
    on_read: impl FnOnce(&Loop, phaseloop_core::IoEvent, &[u8]) + 'static,
) -> std::thread::JoinHandle<()> {
    let (std_a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    std_a.set_nonblocking(true).unwrap();
    let mut a = phaseloop_core::mio::net::UnixStream::from_std(std_a);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        b.write_all(b"ping").unwrap();
    });
    let token = Rc::new(RefCell::new(None));
    let tk = token.clone();
    let fd = a.as_raw_fd();
    let mut on_read = Some(on_read);
    *token.borrow_mut() = Some(
        lp.register_io(&mut SourceFd(&fd), Interest::READABLE, move |lp, ev| {
            let mut buf = [0u8; 8];
            let n = a.read(&mut buf).unwrap();
            if let Some(f) = on_read.take() {
                f(lp, ev, &buf[..n]);
            }
            lp.deregister_io(tk.borrow_mut().take().unwrap(), &mut SourceFd(&fd))
                .unwrap();
            IoOutcome::Drained
        })
        .unwrap(),
    );
    writer
}

#[test]
fn loop_with_only_io_blocks_until_readable() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    let t = lp.enter(|lp: &Loop| {
        read_once_after(lp, Duration::from_millis(30), move |_, ev, got| {
            assert!(ev.readable);
            l.push(String::from_utf8_lossy(got).into_owned());
        })
    });
    let start = std::time::Instant::now();
    lp.run(phaseloop_core::RunMode::Default);
    assert!(start.elapsed() >= Duration::from_millis(25));
    assert_eq!(log.take(), ["ping"]);
    t.join().unwrap();
}

/// libuv refreshes the loop time when its poll returns: a callback of the
/// poll phase sees the time it runs at, not the time the tick began, so a
/// deadline it sets after a long wait counts from now.
#[test]
fn io_callbacks_see_the_time_after_the_wait() {
    let lp = quiet_loop();
    let seen: Rc<RefCell<Option<Duration>>> = Rc::default();
    let s = seen.clone();
    let (t, before) = lp.enter(|lp: &Loop| {
        let t = read_once_after(lp, Duration::from_millis(200), move |lp, _, _| {
            *s.borrow_mut() = Some(lp.now());
        });
        (t, lp.now())
    });
    lp.run(phaseloop_core::RunMode::Default);
    t.join().unwrap();
    let at_callback = seen.borrow().expect("the callback ran");
    // The writer slept 200 ms before the socket became readable.
    assert!(
        at_callback >= before + Duration::from_millis(150),
        "the callback saw {at_callback:?}, the loop began at {before:?}"
    );
}
