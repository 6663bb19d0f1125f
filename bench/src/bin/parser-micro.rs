//! Micro-benchmarks of the HTTP/1.1 codec: our request-head parser (our
//! request line, our scan of plain field lines with httparse for any
//! others, the RFC 9112 checks and framing decisions) against httparse's
//! whole-request parse alone,
//! the chunked decoder, and response encoding. Medians of `--runs` runs.
//!
//! ```sh
//! cargo build --release -p phaseloop-bench
//! taskset -c 0 target/release/parser-micro
//! # instructions per parse of one case:
//! valgrind --tool=callgrind target/release/parser-micro --runs 1 --only "parse_head, small"
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use phaseloop::http::{
    encode_head, parse_head, ChunkedDecoder, DateCache, HeadLimits, ResponseFraming, ResponseHead,
};

const SMALL: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n";
const BROWSER: &[u8] = b"GET /api/users/42?fields=name,email HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: session=0123456789abcdef; theme=dark\r\nCache-Control: max-age=0\r\n\r\n";

fn limits() -> HeadLimits {
    HeadLimits {
        max_request_line: 8192,
        max_head_bytes: 16384,
        max_headers: 64,
    }
}

fn time(n: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // `--only TEXT`: the cases whose name contains TEXT (to count one
    // case's instructions under callgrind).
    let only = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .unwrap_or_default();
    let n = 1_000_000u64;
    let lim = limits();
    let chunked_body = {
        let mut b = Vec::new();
        for _ in 0..16 {
            b.extend_from_slice(b"100\r\n");
            b.extend_from_slice(&[b'x'; 256]);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"0\r\n\r\n");
        b
    };
    let date = DateCache::new();
    type Case<'a> = (&'a str, Box<dyn FnMut() + 'a>);
    let mut cases: Vec<Case> = vec![
        (
            "httparse alone, small request",
            Box::new(|| {
                let mut h = [httparse::EMPTY_HEADER; 16];
                let mut r = httparse::Request::new(&mut h);
                black_box(r.parse(black_box(SMALL)).unwrap());
            }),
        ),
        (
            "parse_head, small request",
            Box::new(|| {
                black_box(parse_head(black_box(SMALL), &lim).unwrap());
            }),
        ),
        (
            "httparse alone, browser request (9 fields)",
            Box::new(|| {
                let mut h = [httparse::EMPTY_HEADER; 16];
                let mut r = httparse::Request::new(&mut h);
                black_box(r.parse(black_box(BROWSER)).unwrap());
            }),
        ),
        (
            "parse_head, browser request (9 fields)",
            Box::new(|| {
                black_box(parse_head(black_box(BROWSER), &lim).unwrap());
            }),
        ),
        (
            "chunked decode, 16 x 256 B",
            Box::new(|| {
                let mut d = ChunkedDecoder::new();
                let mut out = Vec::with_capacity(4096);
                black_box(
                    d.decode(black_box(&chunked_body), &mut out, 1 << 20)
                        .unwrap(),
                );
            }),
        ),
        (
            "encode response head",
            Box::new(|| {
                let mut out = Vec::with_capacity(256);
                let head = ResponseHead {
                    status: 200,
                    framing: ResponseFraming::Length(13),
                    close: false,
                    http10_keep_alive: false,
                };
                encode_head(
                    &mut out,
                    &head,
                    [("Content-Type", &b"text/plain; charset=utf-8"[..])],
                    date.value(),
                );
                black_box(out);
            }),
        ),
    ];
    println!("parser-micro: {n} iterations per run, medians of {runs} runs\n");
    println!("| case | ns per op |");
    println!("|---|---|");
    for (name, f) in cases.iter_mut().filter(|(name, _)| name.contains(&*only)) {
        let per = median((0..runs).map(|_| time(n, &mut *f)).collect());
        println!("| {name} | {:.1} |", per.as_nanos() as f64 / n as f64);
    }
}
