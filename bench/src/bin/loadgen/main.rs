//! phaseloop-load: an HTTP/1.1 load generator on mio, one thread, up to
//! tens of thousands of connections.
//!
//! Two modes. Closed loop (default): every connection keeps `--pipeline`
//! requests in flight and sends the next as soon as an answer arrives, like
//! wrk. Constant rate (`--rate R`): request `i` is due at `start + i/R`
//! whether or not the server kept up, and its latency is counted from that
//! intended time, so a stalled server shows its stall in every request that
//! waited (coordinated omission corrected, like wrk2).
//!
//! Every response is checked (framing, status, optionally body); errors are
//! counted by kind and a run with errors says so loudly.

mod args;
mod report;
mod response;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use report::{Errors, Outcome};
use response::Parse;

struct Conn {
    stream: Option<TcpStream>,
    connected: bool,
    /// Send (or intended send) time of each request in flight, in order.
    in_flight: VecDeque<Instant>,
    out: Vec<u8>,
    out_pos: usize,
    input: Vec<u8>,
    /// The server said it will close after the current response.
    closing: bool,
}

struct Run {
    args: args::Args,
    /// The request bytes, one per path (`--paths`), used in turn.
    requests: Vec<Vec<u8>>,
    next_request: usize,
    head_request: bool,
    poll: Poll,
    conns: Vec<Conn>,
    hist: Histogram<u64>,
    errors: Errors,
    issued: u64,
    completed: u64,
    bytes_read: u64,
    start: Instant,
    /// Constant-rate mode: intended times of requests due but not yet sent
    /// (no connection had room). Bounded by the run's request count.
    backlog: VecDeque<Instant>,
    next_due: u64,
    cursor: usize,
}

/// Largest latency the histogram tracks (one hour, in microseconds).
const MAX_LATENCY_US: u64 = 3_600_000_000;

fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    if lim.rlim_cur < want {
        eprintln!(
            "phaseloop-load: warning: only {} file descriptors allowed (hard limit {}); {} connections need {}",
            lim.rlim_cur,
            lim.rlim_max,
            want.saturating_sub(64),
            want
        );
    }
}

impl Run {
    fn new(args: args::Args) -> std::io::Result<Run> {
        let paths = if args.paths.is_empty() {
            vec![args.path.clone()]
        } else {
            args.paths.clone()
        };
        let requests = paths
            .iter()
            .map(|path| {
                let mut request = format!(
                    "{} {} HTTP/1.1\r\nHost: {}\r\n",
                    args.method, path, args.host
                )
                .into_bytes();
                for h in &args.headers {
                    request.extend_from_slice(h.as_bytes());
                    request.extend_from_slice(b"\r\n");
                }
                if !args.body.is_empty() || matches!(args.method.as_str(), "POST" | "PUT" | "PATCH")
                {
                    request.extend_from_slice(
                        format!("Content-Length: {}\r\n", args.body.len()).as_bytes(),
                    );
                }
                request.extend_from_slice(b"\r\n");
                request.extend_from_slice(&args.body);
                request
            })
            .collect();
        let conns = (0..args.connections)
            .map(|_| Conn {
                stream: None,
                connected: false,
                in_flight: VecDeque::new(),
                out: Vec::new(),
                out_pos: 0,
                input: Vec::new(),
                closing: false,
            })
            .collect();
        Ok(Run {
            head_request: args.method.eq_ignore_ascii_case("HEAD"),
            requests,
            next_request: 0,
            poll: Poll::new()?,
            conns,
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds"),
            errors: Errors::default(),
            issued: 0,
            completed: 0,
            bytes_read: 0,
            start: Instant::now(),
            backlog: VecDeque::new(),
            next_due: 0,
            cursor: 0,
            args,
        })
    }

    fn connect(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.stream = None;
        c.connected = false;
        c.in_flight.clear();
        c.out.clear();
        c.out_pos = 0;
        c.input.clear();
        c.closing = false;
        match TcpStream::connect(self.args.addr) {
            Ok(mut s) => {
                if self
                    .poll
                    .registry()
                    .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                    .is_ok()
                {
                    let _ = s.set_nodelay(true);
                    c.stream = Some(s);
                } else {
                    self.errors.connect += 1;
                }
            }
            Err(_) => self.errors.connect += 1,
        }
    }

    fn budget_left(&self) -> bool {
        self.args.requests.is_none_or(|n| self.issued < n)
    }

    /// Queues one request on connection `i`, sent at (or due since) `at`.
    fn send(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        c.out.extend_from_slice(&self.requests[self.next_request]);
        self.next_request = (self.next_request + 1) % self.requests.len();
        c.in_flight.push_back(at);
        self.issued += 1;
    }

    fn flush(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return false;
        };
        while c.out_pos < c.out.len() {
            match stream.write(&c.out[c.out_pos..]) {
                Ok(n) => c.out_pos += n,
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected =>
                {
                    return true
                }
                Err(_) => {
                    self.errors.write += 1;
                    return false;
                }
            }
        }
        c.out.clear();
        c.out_pos = 0;
        true
    }

    /// Closed loop: fill a connection's pipeline.
    fn top_up(&mut self, i: usize) {
        if self.args.rate.is_some() || self.conns[i].closing {
            return;
        }
        let now = Instant::now();
        while self.conns[i].in_flight.len() < self.args.pipeline && self.budget_left() {
            self.send(i, now);
        }
    }

    /// Constant rate: hand out every request due by now.
    fn dispatch_due(&mut self, now: Instant) {
        let Some(rate) = self.args.rate else { return };
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let due_total = (elapsed * rate) as u64;
        while self.next_due < due_total && self.args.requests.is_none_or(|n| self.next_due < n) {
            let at = self.start + Duration::from_secs_f64(self.next_due as f64 / rate);
            self.backlog.push_back(at);
            self.next_due += 1;
        }
        let n = self.conns.len();
        let mut scanned = 0;
        while let Some(&at) = self.backlog.front() {
            if scanned == n {
                break; // every connection is full: these requests wait, and their wait counts
            }
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % n;
            let c = &self.conns[i];
            if c.connected && !c.closing && c.in_flight.len() < self.args.pipeline {
                self.backlog.pop_front();
                self.send(i, at);
                self.flush(i);
                scanned = 0;
            } else {
                scanned += 1;
            }
        }
    }

    fn next_rate_wakeup(&self, now: Instant) -> Option<Duration> {
        let rate = self.args.rate?;
        let at = self.start + Duration::from_secs_f64(self.next_due as f64 / rate);
        Some(at.saturating_duration_since(now))
    }

    fn on_readable(&mut self, i: usize) {
        let mut buf = [0u8; 64 * 1024];
        let mut eof = false;
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            match stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    if !self.conns[i].in_flight.is_empty() {
                        self.errors.read += 1;
                    }
                    break;
                }
            }
        }
        self.consume_responses(i, eof);
        if eof {
            let c = &self.conns[i];
            if !c.in_flight.is_empty() && !c.closing {
                self.errors.read += c.in_flight.len() as u64;
            }
            // Requests lost with the connection are sent again on a new one
            // only in closed-loop mode (a rate run keeps its schedule).
            if let Some(mut s) = self.conns[i].stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
            if self.running() {
                self.connect(i);
            }
        }
    }

    fn consume_responses(&mut self, i: usize, eof: bool) {
        let now = Instant::now();
        loop {
            let c = &mut self.conns[i];
            if c.input.is_empty() {
                break;
            }
            let parsed = response::parse(
                &c.input,
                self.head_request,
                self.args.expect_body.as_deref(),
                eof,
            );
            match parsed {
                Parse::Incomplete => break,
                Parse::Invalid(_) => {
                    self.errors.framing += 1;
                    c.input.clear();
                    c.in_flight.clear();
                    c.closing = true;
                    break;
                }
                Parse::Done(r) => {
                    c.input.drain(..r.len);
                    if r.interim {
                        continue;
                    }
                    let Some(sent) = c.in_flight.pop_front() else {
                        self.errors.framing += 1; // an answer nobody asked for
                        continue;
                    };
                    if r.close {
                        c.closing = true;
                    }
                    let us = now
                        .duration_since(sent)
                        .as_micros()
                        .clamp(1, u128::from(MAX_LATENCY_US)) as u64;
                    let _ = self.hist.record(us);
                    self.completed += 1;
                    let status_ok = match &self.args.expect_status {
                        Some(want) => want.contains(&r.status),
                        None => (200..300).contains(&r.status),
                    };
                    if !status_ok {
                        self.errors.status += 1;
                        *self.errors.statuses.entry(r.status).or_default() += 1;
                    } else if !r.body_ok {
                        self.errors.body += 1;
                    }
                }
            }
        }
        self.top_up(i);
    }

    fn check_timeouts(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let late = self.conns[i].in_flight.front().is_some_and(|sent| {
                now.duration_since(*sent) > self.args.timeout && self.conns[i].connected
            });
            if late {
                self.errors.timeout += self.conns[i].in_flight.len() as u64;
                if let Some(mut s) = self.conns[i].stream.take() {
                    let _ = self.poll.registry().deregister(&mut s);
                }
                self.connect(i);
            }
        }
    }

    fn running(&self) -> bool {
        let in_time = self.start.elapsed() < self.args.duration;
        let budget = self.args.requests.is_none_or(|n| self.completed < n);
        in_time && budget
    }

    fn go(&mut self) -> std::io::Result<Outcome> {
        raise_fd_limit(self.args.connections as u64 + 64);
        let mut events = Events::with_capacity(4096);
        self.start = Instant::now();
        for i in 0..self.conns.len() {
            self.connect(i);
        }
        let progress = report::Progress::new();
        let mut last_check = Instant::now();
        while self.running() {
            let now = Instant::now();
            let wait = self
                .next_rate_wakeup(now)
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            self.poll.poll(&mut events, Some(wait))?;
            for ev in events.iter() {
                let i = ev.token().0;
                if self.conns[i].stream.is_none() {
                    continue;
                }
                if ev.is_writable() && !self.conns[i].connected {
                    let ok = self.conns[i].stream.as_ref().is_some_and(|s| {
                        s.take_error().ok().flatten().is_none() && s.peer_addr().is_ok()
                    });
                    if ok {
                        self.conns[i].connected = true;
                        self.top_up(i);
                    } else if ev.is_error() || ev.is_write_closed() {
                        self.errors.connect += 1;
                        self.conns[i].stream = None;
                        continue;
                    }
                }
                if ev.is_readable() || ev.is_read_closed() {
                    self.on_readable(i);
                }
                if self.conns[i].stream.is_some() && !self.flush(i) {
                    if let Some(mut s) = self.conns[i].stream.take() {
                        let _ = self.poll.registry().deregister(&mut s);
                    }
                    if self.running() {
                        self.connect(i);
                    }
                }
            }
            let now = Instant::now();
            self.dispatch_due(now);
            if now.duration_since(last_check) >= Duration::from_millis(100) {
                self.check_timeouts(now);
                last_check = now;
            }
            progress.tick(self.start, self.completed, &self.errors);
        }
        progress.done();
        let elapsed = self.start.elapsed();
        Ok(Outcome {
            elapsed,
            completed: self.completed,
            bytes_read: self.bytes_read,
            hist: self.hist.clone(),
            errors: self.errors.clone(),
            connections: self.args.connections,
            pipeline: self.args.pipeline,
            rate: self.args.rate,
            url: format!("http://{}{}", self.args.host, self.args.path),
        })
    }
}

fn main() {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(args::ArgsError::Clap(e)) => e.exit(),
        Err(args::ArgsError::Invalid(e)) => {
            eprintln!("phaseloop-load: {e} (see --help)");
            std::process::exit(2);
        }
    };
    let (json, hdr, svg) = (args.json.clone(), args.hdr.clone(), args.svg.clone());
    let outcome = match Run::new(args).and_then(|mut r| r.go()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("phaseloop-load: {e}");
            std::process::exit(1);
        }
    };
    print!("{}", outcome.summary());
    let write = |path: &Option<String>, text: String| {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text) {
                eprintln!("phaseloop-load: writing {p}: {e}");
            }
        }
    };
    write(&json, outcome.json());
    write(&hdr, outcome.percentile_distribution());
    write(&svg, outcome.svg());
    if outcome.errors.total() > 0 {
        std::process::exit(3);
    }
}
