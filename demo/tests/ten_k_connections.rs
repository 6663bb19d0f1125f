//! 10,000 concurrent connections on one loop: every one gets a correct
//! response, and all are open at once.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use demo::Demo;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use util::{body_of, temp_dir};

const CONNECTIONS: usize = 10_000;
const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
const RESPONSE_TAIL: &[u8] =
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, World!";
const RESPONSE_LEN: usize = 17 + 37 + RESPONSE_TAIL.len();

/// Raises this process's soft descriptor limit to its hard limit.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

struct Conn {
    stream: TcpStream,
    sent: bool,
    got: Vec<u8>,
}

#[test]
fn ten_thousand_connections_each_get_a_correct_response() {
    let limit = raise_fd_limit();
    assert!(
        limit as usize > CONNECTIONS + 100,
        "this test needs more than {} file descriptors; the hard limit is {limit}",
        CONNECTIONS + 100
    );
    let dir = temp_dir("tenk");
    let demo = Demo::start_with(
        &dir,
        &["--keep-alive", "300"],
        &format!("ulimit -n {limit}"),
    );

    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4096);
    let mut conns: Vec<Conn> = Vec::with_capacity(CONNECTIONS);
    let mut done = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    // Connect in waves so the listen backlog is never the bottleneck.
    while conns.len() < CONNECTIONS || done < CONNECTIONS {
        assert!(
            Instant::now() < deadline,
            "only {done} of {CONNECTIONS} answered in time"
        );
        if conns.len() < CONNECTIONS && conns.len() < done + 1000 {
            for _ in 0..500.min(CONNECTIONS - conns.len()) {
                let mut stream = TcpStream::connect(demo.addr).unwrap();
                let token = Token(conns.len());
                poll.registry()
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .unwrap();
                conns.push(Conn {
                    stream,
                    sent: false,
                    got: Vec::new(),
                });
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_writable() && !c.sent {
                match c.stream.write(REQUEST) {
                    Ok(n) => {
                        assert_eq!(n, REQUEST.len());
                        c.sent = true;
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::NotConnected => {}
                    Err(e) => panic!("connection {} failed to send: {e}", ev.token().0),
                }
            }
            if ev.is_readable() {
                let mut buf = [0u8; 512];
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => panic!("connection {} closed by the server", ev.token().0),
                        Ok(n) => {
                            let was_done = c.got.len() >= RESPONSE_LEN;
                            c.got.extend_from_slice(&buf[..n]);
                            if !was_done && c.got.len() >= RESPONSE_LEN {
                                done += 1;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("connection {} read error: {e}", ev.token().0),
                    }
                }
            }
        }
    }
    for (i, c) in conns.iter().enumerate() {
        assert_eq!(c.got.len(), RESPONSE_LEN, "connection {i}");
        assert!(
            c.got.starts_with(b"HTTP/1.1 200 OK\r\nDate: "),
            "connection {i}"
        );
        assert!(
            c.got.ends_with(RESPONSE_TAIL),
            "connection {i}: {:?}",
            String::from_utf8_lossy(&c.got)
        );
    }
    // All 10,000 are still open (keep-alive), plus the one asking.
    let m = demo.get("/metrics");
    assert!(
        body_of(&m).contains(&format!("phaseloop_connections_open {}\n", CONNECTIONS + 1)),
        "{}",
        body_of(&m)
            .lines()
            .filter(|l| l.contains("connections"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(conns);
    std::fs::remove_dir_all(&dir).ok();
}
