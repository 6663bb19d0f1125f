//! The floor: the least a one-thread HTTP server can do. Bare mio, no
//! parsing beyond counting `\r\n\r\n`, one fixed response per request, all
//! responses of a read written at once, and no `read` after a short one
//! (the socket is empty; edge-triggered readiness reports what comes next).
//! No real server can beat it on one core; phaseloop is measured as a
//! fraction of it.
//!
//! Run: `target/release/floor [port]` (default 8080), on 127.0.0.1.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// Same size and shape as phaseloop's /plaintext answer (Date included).
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nDate: Mon, 23 Nov 2026 18:00:00 GMT\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, World!";

struct Conn {
    stream: TcpStream,
    carry: usize,
    out: Vec<u8>,
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let mut listener = TcpListener::bind(format!("127.0.0.1:{port}").parse().unwrap())?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)?;
    println!(
        "floor listening on 127.0.0.1:{}",
        listener.local_addr()?.port()
    );
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next = 1usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A signal (or a debugger's request) interrupting the wait is an
        // empty poll, not an error.
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => other?,
        }
        for ev in events.iter() {
            if ev.token() == Token(0) {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            poll.registry().register(
                                &mut stream,
                                Token(next),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns.insert(
                                next,
                                Conn {
                                    stream,
                                    carry: 0,
                                    out: Vec::new(),
                                },
                            );
                            next += 1;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(&key) else {
                continue;
            };
            let mut closed = false;
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        // Count request ends, remembering a partial "\r\n\r" across reads.
                        let mut state = c.carry;
                        for &b in &buf[..n] {
                            state = match (state, b) {
                                (0, b'\r') | (2, b'\r') => state + 1,
                                (1, b'\n') => 2,
                                (3, b'\n') => {
                                    c.out.extend_from_slice(RESPONSE);
                                    0
                                }
                                (_, b'\r') => 1,
                                _ => 0,
                            };
                        }
                        c.carry = state;
                        // A short read emptied the socket; the next arrival
                        // raises a new edge. (Unless this event carried the
                        // peer's FIN: then read on to end of stream.)
                        if n < buf.len() && !ev.is_read_closed() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            while !c.out.is_empty() && !closed {
                match c.stream.write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => closed = true,
                }
            }
            if closed {
                conns.remove(&key);
            }
        }
    }
}
