//! A structure-aware randomized fuzzer (no coverage-guided fuzzer runs on
//! this machine's stable toolchain: cargo-fuzz and cargo-afl need nightly
//! or a toolchain of their own): heads, chunked bodies and whole
//! connections built from the grammar, then mutated (bytes flipped,
//! inserted, deleted, cut) and split at random points. Properties: no
//! panic, no hang; every head our parser accepts, httparse accepts with the
//! same method, target, version and field count; a chunked body decodes the
//! same whole and byte by byte; every answer on a real socket starts with a
//! valid status line, and the server serves on after each case. WebSocket
//! frames the same way: what the server sends back is a well-formed
//! sequence of server frames ending in at most one close.
//!
//! A fixed-seed run is part of the suite; `load-tests/fuzz.sh MINUTES`
//! runs it for longer with fresh seeds (FUZZ_SEED, FUZZ_CASES).

mod util;
#[path = "util/ws.rs"]
mod ws_client;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use phaseloop::http::{parse_head, ChunkedDecoder, HeadLimits, Version};
use phaseloop::App;
use util::{text_response, TestServer};

/// A xorshift generator: repeatable from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1206)
}

fn cases(default: usize) -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(default, |f| (default as f64 * f) as usize)
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "M-SEARCH", "get", "G@T", "",
];
const TARGETS: &[&str] = &[
    "/",
    "/plaintext",
    "/a/b?c=d&e",
    "/%41%zz",
    "*",
    "http://h:80/p?q",
    "http://",
    "/caf\u{e9}",
    "/a b",
    "/a#f",
    "/{x}",
    "//",
    "/?",
    "/\\",
    "/a\t",
];
const VERSIONS: &[&str] = &[
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2.0",
    "HTTP/1.",
    "http/1.1",
    "HTTP/1.1 ",
    "",
];
const NAMES: &[&str] = &[
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Expect",
    "X-A",
    "host",
    "Cookie",
    "Bad Name",
    "",
    "X-\u{e9}",
    "Content-Length ",
];
const VALUES: &[&str] = &[
    "x",
    "127.0.0.1:3000",
    "5",
    "0",
    "-1",
    "5, 5",
    "5, 6",
    "chunked",
    "gzip, chunked",
    "chunked, gzip",
    "close",
    "keep-alive",
    "100-continue",
    "a\tb",
    " padded ",
    "",
    "h:p/path",
    "a, b",
    "\u{e9}",
    "99999999999999999999",
];
const LINE_ENDS: &[&str] = &["\r\n", "\r\n", "\r\n", "\r\n", "\n", "\r", " \r\n"];

/// A request head from the grammar, mostly valid.
fn head(rng: &mut Rng) -> Vec<u8> {
    let valid = rng.chance(2);
    let mut s = String::new();
    let (m, t, v) = if valid {
        (
            *rng.pick(&METHODS[..7]),
            *rng.pick(&TARGETS[..3]),
            *rng.pick(&VERSIONS[..2]),
        )
    } else {
        (*rng.pick(METHODS), *rng.pick(TARGETS), *rng.pick(VERSIONS))
    };
    s.push_str(&format!("{m} {t} {v}"));
    let end = *rng.pick(LINE_ENDS);
    s.push_str(if valid { "\r\n" } else { end });
    if valid || rng.chance(2) {
        s.push_str("Host: x\r\n");
    }
    for _ in 0..rng.below(6) {
        let (n, val) = if valid {
            (*rng.pick(&NAMES[3..8]), *rng.pick(&VALUES[..1]))
        } else {
            (*rng.pick(NAMES), *rng.pick(VALUES))
        };
        s.push_str(&format!(
            "{n}:{}{val}",
            if rng.chance(4) { "" } else { " " }
        ));
        let end = *rng.pick(LINE_ENDS);
        s.push_str(if valid { "\r\n" } else { end });
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Flips, inserts, deletes or cuts a few bytes.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => bytes[at] = rng.next() as u8,
            1 => bytes.insert(at, *rng.pick(b"\r\n :\t\0\x7f\xff;=\"/?#%")),
            2 => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            _ => {
                let dup: Vec<u8> = bytes[at..].iter().take(8).copied().collect();
                bytes.splice(at..at, dup);
            }
        }
    }
}

const LIMITS: HeadLimits = HeadLimits {
    max_request_line: 8192,
    max_head_bytes: 16384,
    max_headers: 64,
};

/// Every head ours accepts, httparse accepts with the same parts. Where we
/// are stricter on purpose (we refuse, httparse takes), nothing is
/// compared: a bare LF, obs-fold, a Host not `uri-host [":" port]`, target
/// bytes RFC 3986 has no place for, conflicting or invalid Content-Length,
/// Transfer-Encoding rules, missing or repeated Host.
#[test]
fn heads_we_accept_httparse_accepts_alike() {
    let mut rng = Rng::new(seed());
    let (mut accepted, mut refused, mut incomplete) = (0, 0, 0);
    for _ in 0..cases(30_000) {
        let mut bytes = head(&mut rng);
        if rng.chance(2) {
            mutate(&mut rng, &mut bytes);
        }
        match parse_head(&bytes, &LIMITS) {
            Ok(Some(ours)) => {
                accepted += 1;
                let mut fields = [httparse::EMPTY_HEADER; 64];
                let mut theirs = httparse::Request::new(&mut fields);
                let status = theirs.parse(&bytes[..ours.len]);
                assert!(
                    matches!(status, Ok(httparse::Status::Complete(n)) if n == ours.len),
                    "httparse refuses what we took: {:?} ({status:?})",
                    String::from_utf8_lossy(&bytes)
                );
                let span = |s: (u32, u32)| &bytes[s.0 as usize..s.1 as usize];
                assert_eq!(theirs.method.unwrap().as_bytes(), span(ours.method));
                assert_eq!(theirs.path.unwrap().as_bytes(), span(ours.target));
                let version = match ours.version {
                    Version::Http10 => 0,
                    Version::Http11 => 1,
                };
                assert_eq!(theirs.version, Some(version));
                assert_eq!(
                    theirs.headers.len(),
                    ours.header_count,
                    "{:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            Ok(None) => incomplete += 1,
            Err(e) => {
                refused += 1;
                assert!((400..=505).contains(&e.status), "{e:?}");
            }
        }
    }
    eprintln!("heads: {accepted} accepted (each matched by httparse), {refused} refused, {incomplete} incomplete");
    assert!(
        accepted > 1000 && refused > 1000,
        "the cases reach both ways"
    );
}

/// A chunked body, mostly valid.
fn chunked(rng: &mut Rng) -> Vec<u8> {
    let mut s = Vec::new();
    for _ in 0..rng.below(4) {
        let len = rng.below(20);
        s.extend_from_slice(format!("{len:x}").as_bytes());
        if rng.chance(3) {
            let exts: [&[u8]; 6] = [b";a", b";a=b", b" ;a=\"q\"", b";", b" ", b";a=\"\0\""];
            let ext = *rng.pick(&exts);
            s.extend_from_slice(ext);
        }
        s.extend_from_slice(b"\r\n");
        s.extend((0..len).map(|i| b'a' + (i % 26) as u8));
        s.extend_from_slice(b"\r\n");
    }
    s.extend_from_slice(b"0\r\n");
    if rng.chance(3) {
        let trailers: [&[u8]; 3] = [b"X-T: v\r\n", b"bad\r\n", b": v\r\n"];
        let trailer = *rng.pick(&trailers);
        s.extend_from_slice(trailer);
    }
    s.extend_from_slice(b"\r\n");
    s
}

/// Whole or a byte at a time, the decoder reaches the same end.
#[test]
fn chunked_bodies_decode_the_same_whole_and_byte_by_byte() {
    let mut rng = Rng::new(seed() ^ 0xC4);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..cases(20_000) {
        let mut body = chunked(&mut rng);
        if rng.chance(2) {
            mutate(&mut rng, &mut body);
        }
        let whole = {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let r = d.decode(&body, &mut out, 1 << 20);
            (r.map(|n| (n, d.is_done())).map_err(|e| e.status), out)
        };
        let split = {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let mut used = 0;
            let mut result = Ok((0, false));
            for i in 0..body.len() {
                if d.is_done() {
                    break;
                }
                match d.decode(&body[i..i + 1], &mut out, 1 << 20) {
                    Ok(n) => used += n,
                    Err(e) => {
                        result = Err(e.status);
                        break;
                    }
                }
            }
            if result.is_ok() {
                result = Ok((used, d.is_done()));
            }
            (result, out)
        };
        assert_eq!(whole, split, "{:?}", String::from_utf8_lossy(&body));
        match whole.0 {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!("chunked: {ok} decoded alike, {refused} refused alike");
    assert!(ok > 1000 && refused > 1000);
}

fn app() -> App {
    App::new()
        .get_with("/ws", |_, req, res| {
            let cfg = phaseloop::ws::WsConfig {
                max_message: 4096,
                ..phaseloop::ws::WsConfig::default()
            };
            res.websocket(&req, cfg, |_, ws| {
                ws.on_message(|_, ws, msg| {
                    let _ = ws.send(&msg);
                });
            })
        })
        .get_with("/", |_, _, res| res.text(200, "ok"))
        .get_with("/plaintext", |_, _, res| res.text(200, "Hello, World!"))
        .post_with("/echo", |_, mut req, res| {
            let body = req.take_body();
            res.send(phaseloop::Response::new(200).body(body))
        })
}

/// Writes `bytes` in pieces of 1 to `most` bytes (stopping if the peer
/// closed).
fn write_in_pieces(c: &mut std::net::TcpStream, bytes: &[u8], rng: &mut Rng, most: usize) {
    let mut at = 0;
    while at < bytes.len() {
        let n = (1 + rng.below(most)).min(bytes.len() - at);
        if c.write_all(&bytes[at..at + n]).is_err() {
            break;
        }
        at += n;
    }
}

/// After case `case`, a clean request on a fresh connection is answered.
fn serves_on(server: &TestServer, case: usize) {
    let mut probe = server.connect();
    probe.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        probe.response(),
        text_response("200 OK", "ok", ""),
        "case {case}"
    );
}

/// Whole connections: pipelined heads and bodies, mutated, written in
/// random pieces; every answer starts with a valid status line and the
/// server answers a clean request after each case.
#[test]
fn connections_fed_random_pieces_answer_valid_status_lines() {
    let server = TestServer::start(app);
    let mut rng = Rng::new(seed() ^ 0xC0);
    let mut answers = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    for case in 0..cases(400) {
        assert!(Instant::now() < deadline, "too slow: case {case}");
        let mut bytes = Vec::new();
        for _ in 0..1 + rng.below(4) {
            if rng.chance(3) {
                let body = chunked(&mut rng);
                bytes.extend_from_slice(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                bytes.extend_from_slice(&body);
            } else {
                bytes.extend_from_slice(&head(&mut rng));
            }
        }
        if rng.chance(2) {
            mutate(&mut rng, &mut bytes);
        }
        let mut c = std::net::TcpStream::connect(server.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write_in_pieces(&mut c, &bytes, &mut rng, 40);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        // Each answer's status line: at the start, and after each answer
        // (found by the protocol's own marker, the version at a line start).
        for (i, line) in text.split("\r\n").enumerate() {
            if i == 0 || line.starts_with("HTTP/1.") {
                if line.is_empty() && i == 0 {
                    break; // no answer at all (a head cut short and dropped)
                }
                let ok = line.len() >= 12
                    && (line.starts_with("HTTP/1.1 ") || line.starts_with("HTTP/1.0 "))
                    && line[9..12].bytes().all(|b| b.is_ascii_digit());
                if i == 0 || line.starts_with("HTTP/1.1 ") {
                    assert!(ok, "case {case}: bad status line {line:?} in {text:?}");
                    answers += 1;
                }
            }
        }
        serves_on(&server, case);
    }
    eprintln!("connections: {answers} answers, each with a valid status line");
    server.assert_all_released_within(Duration::from_secs(15));
}

/// A client frame from the grammar (usually masked; any opcode, fin,
/// length form), then maybe mutated by the caller.
fn ws_frame(rng: &mut Rng) -> Vec<u8> {
    let opcode = *rng.pick(&[0x0u8, 0x1, 0x1, 0x2, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB]);
    let fin = !rng.chance(4);
    let rsv = if rng.chance(20) { 0x40 } else { 0 };
    let len = *rng.pick(&[0usize, 1, 2, 5, 125, 126, 127, 300, 5000]);
    let mut payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    if opcode == 0x1 && rng.chance(2) {
        payload = "κόσμε text".repeat(len / 12 + 1).into_bytes();
        payload.truncate(len.min(payload.len()));
    }
    if opcode == 0x8 && len >= 2 && rng.chance(2) {
        let code: u16 = *rng.pick(&[1000, 1001, 1005, 1006, 3000, 4999, 5000, 0]);
        payload[..2].copy_from_slice(&code.to_be_bytes());
    }
    let mask = (!rng.chance(20)).then(|| (rng.next() as u32).to_be_bytes());
    ws_client::frame_with_mask((u8::from(fin) << 7) | rsv | opcode, &payload, mask)
}

/// Server frames in `bytes`: Some((opcode byte, payload)) each, None if
/// the bytes are not a well-formed sequence of unmasked server frames.
fn server_frames(mut bytes: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let [b0, b1, ..] = *bytes else { return None };
        if b0 & 0x70 != 0 || b1 & 0x80 != 0 || ![0x81, 0x82, 0x88, 0x89, 0x8A].contains(&b0) {
            return None;
        }
        let (len, at) = match b1 & 0x7F {
            126 => (
                u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        frames.push((b0, bytes.get(at..at + len)?.to_vec()));
        bytes = &bytes[at + len..];
    }
    Some(frames)
}

/// WebSocket connections fed random frames (mutated, in random pieces):
/// the server answers with well-formed frames, at most one close and last,
/// its code one a server may send, and serves on after each case.
#[test]
fn websockets_fed_random_frames_answer_well_formed_frames() {
    let server = TestServer::start(app);
    let mut rng = Rng::new(seed() ^ 0x3B);
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut closes, mut frames_back) = (0, 0);
    for case in 0..cases(300) {
        assert!(Instant::now() < deadline, "too slow: case {case}");
        let mut bytes = Vec::new();
        for _ in 0..1 + rng.below(6) {
            bytes.extend(ws_frame(&mut rng));
        }
        if rng.chance(2) {
            mutate(&mut rng, &mut bytes);
        }
        let mut c = std::net::TcpStream::connect(server.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(ws_client::handshake("/ws").as_bytes()).unwrap();
        write_in_pieces(&mut c, &bytes, &mut rng, 700);
        // The client ends with a close of its own unless it already sent
        // one: the server must finish either way.
        let _ = c.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]);
        // And its end of stream: a frame cut short by a mutation would
        // otherwise wait for bytes that never come.
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let head_end = util::find(&out, b"\r\n\r\n").expect("a 101") + 4;
        assert!(out.starts_with(b"HTTP/1.1 101 "), "case {case}");
        let frames = server_frames(&out[head_end..]).unwrap_or_else(|| {
            panic!(
                "case {case}: malformed server frames {:?}",
                &out[head_end..]
            )
        });
        frames_back += frames.len();
        for (i, (b0, payload)) in frames.iter().enumerate() {
            if *b0 == 0x88 {
                assert_eq!(
                    i,
                    frames.len() - 1,
                    "case {case}: a close is the last frame"
                );
                closes += 1;
                if payload.len() >= 2 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    let may_send = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
                    assert!(may_send, "case {case}: close code {code}");
                }
            }
        }
        serves_on(&server, case);
    }
    eprintln!("websockets: {frames_back} frames back, {closes} closes, all well-formed");
}
