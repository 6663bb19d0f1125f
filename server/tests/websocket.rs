//! WebSocket (RFC 6455) over real sockets, byte for byte: the handshake
//! and its refusals, echo of text and binary, fragments, ping/pong, both
//! closing handshakes, what a server must refuse (unmasked frames, bad
//! UTF-8, reserved bits, bad close codes, too big), frames sent right
//! behind the handshake, a declined upgrade, the idle timeout,
//! backpressure from a client that does not read, and the counters.

mod util;
#[path = "util/ws.rs"]
mod ws_client;

use std::time::{Duration, Instant};

use phaseloop::ws::{Message, SendError, WsConfig};
use phaseloop::{App, Server};
use util::TestServer;
use ws_client::{frame, handshake, Ws, KEY};

fn cfg() -> WsConfig {
    WsConfig {
        max_message: 64 * 1024,
        write_high_water: 256 * 1024,
        idle_timeout: None,
        ..WsConfig::default()
    }
}

fn app() -> App {
    App::new()
        .get_with("/echo", |_, req, res| {
            res.websocket(&req, cfg(), |_, ws| {
                ws.on_message(|_, ws, msg| {
                    if msg == Message::Text("close please".into()) {
                        return ws.close(4000, "as asked");
                    }
                    let _ = ws.send(&msg);
                });
            })
        })
        .get_with("/idle", |_, req, res| {
            let cfg = WsConfig {
                idle_timeout: Some(Duration::from_millis(400)),
                ..cfg()
            };
            res.websocket(&req, cfg, |_, _| {})
        })
        .get_with("/flood", |_, req, res| {
            // Sends until refused, then reports how far it got.
            res.websocket(&req, cfg(), |_, ws| {
                ws.on_message(|_, ws, _| {
                    let chunk = vec![7u8; 16 * 1024];
                    let mut sent = 0;
                    let refused = loop {
                        match ws.send_binary(&chunk) {
                            Ok(()) => sent += 1,
                            Err(e) => break e,
                        }
                        if sent > 10_000 {
                            panic!("sends were never refused");
                        }
                    };
                    assert_eq!(refused, SendError::Full);
                    let buffered = ws.buffered();
                    ws.on_drain(move |_, ws| {
                        let _ = ws
                            .send_text(&format!("drained after {sent} sends, {buffered} buffered"));
                    });
                });
            })
        })
        .get_with("/echo-small", |_, req, res| {
            // A small mark: a client that sends much and reads late makes
            // the server pause, not drop echoes.
            let cfg = WsConfig {
                write_high_water: 8 * 1024,
                ..cfg()
            };
            res.websocket(&req, cfg, |_, ws| {
                ws.on_message(|_, ws, msg| {
                    ws.send(&msg)
                        .expect("paused input never overfills the output");
                });
            })
        })
        .get("/plain", |_req, _| "plain")
        .get_with("/later", |lp, _req, res| {
            lp.set_timeout(Duration::from_millis(30), move |_| res.text(200, "later"));
        })
        .get("/stats", |_req, _| {
            let s = phaseloop::ws::stats();
            format!(
                "open {} opened {} closed {} in {} out {} protocol {} too_big {} idle {} pauses {}",
                s.open,
                s.opened,
                s.closed,
                s.messages_in,
                s.messages_out,
                s.protocol_errors,
                s.too_big,
                s.idle_timeouts,
                s.read_pauses
            )
        })
}

fn stats_line(server: &TestServer) -> String {
    let mut c = server.connect();
    c.send(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    util::body_of(&c.response()).to_string()
}

#[test]
fn echoes_text_binary_and_fragments_and_answers_pings() {
    let server = TestServer::start(app);
    let mut ws = Ws::open(&server, "/echo");
    ws.send(&frame(0x81, b"hello", true));
    assert_eq!(ws.recv(), (0x81, b"hello".to_vec()));
    let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    ws.send(&frame(0x82, &big[..40_000], true));
    assert_eq!(ws.recv(), (0x82, big[..40_000].to_vec()));
    // Fragments, a ping between them: the pong comes first, then the
    // joined message. "é" is cut between two fragments.
    ws.send(&frame(0x01, b"caf\xc3", true));
    ws.send(&frame(0x89, b"are you there", true));
    ws.send(&frame(0x80, b"\xa9!", true));
    assert_eq!(ws.recv(), (0x8A, b"are you there".to_vec()));
    assert_eq!(ws.recv(), (0x81, "café!".as_bytes().to_vec()));
    // The client closes: the server echoes the code and closes.
    ws.send(&frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e'], true));
    ws.expect_close(1000);
    assert_eq!(
        stats_line(&server),
        "open 0 opened 1 closed 1 in 3 out 3 protocol 0 too_big 0 idle 0 pauses 0"
    );
    assert_eq!(server.stats().upgraded, 1);
}

#[test]
fn frames_sent_with_the_handshake_are_not_lost() {
    let server = TestServer::start(app);
    let mut after = frame(0x81, b"one", true);
    after.extend(frame(0x81, b"two", true));
    let mut ws = Ws::open_with(server.addr, "/echo", &after);
    assert_eq!(ws.recv(), (0x81, b"one".to_vec()));
    assert_eq!(ws.recv(), (0x81, b"two".to_vec()));
}

#[test]
fn the_server_closes_and_the_client_answers() {
    let server = TestServer::start(app);
    let mut ws = Ws::open(&server, "/echo");
    ws.send(&frame(0x81, b"close please", true));
    let (b0, payload) = ws.recv();
    assert_eq!(b0, 0x88);
    assert_eq!(payload, [&[0x0F, 0xA0][..], b"as asked"].concat());
    ws.send(&frame(0x88, &[0x0F, 0xA0], true));
    assert!(!ws.fill(), "closed after the client's answer");
}

#[test]
fn what_a_server_must_refuse_closes_with_the_right_code() {
    let server = TestServer::start(app);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", frame(0x81, b"x", false), 1002),
        ("RSV1 without an extension", frame(0xC1, b"x", true), 1002),
        ("opcode 3", frame(0x83, b"x", true), 1002),
        ("a fragmented ping", frame(0x09, b"x", true), 1002),
        ("a continuation of nothing", frame(0x80, b"x", true), 1002),
        ("a close with 1005", frame(0x88, &[0x03, 0xED], true), 1002),
        ("a close of one byte", frame(0x88, &[0x03], true), 1002),
        (
            "text that is not UTF-8",
            frame(0x81, b"\xff\xfe", true),
            1007,
        ),
        (
            "over max_message",
            frame(0x82, &vec![0u8; 64 * 1024 + 1], true),
            1009,
        ),
        (
            "a new message inside a fragmented one",
            [frame(0x01, b"a", true), frame(0x81, b"b", true)].concat(),
            1002,
        ),
    ];
    for (what, bytes, code) in &cases {
        let mut ws = Ws::open(&server, "/echo");
        ws.send(bytes);
        let (b0, payload) = ws.recv();
        assert_eq!(b0, 0x88, "{what}");
        assert_eq!(
            u16::from_be_bytes([payload[0], payload[1]]),
            *code,
            "{what}"
        );
        assert!(!ws.fill(), "{what}: closed after its close frame");
    }
    // Invalid UTF-8 in a first fragment fails at once, not at the end.
    let mut ws = Ws::open(&server, "/echo");
    ws.send(&frame(0x01, b"ok\xc0\xaf", true));
    ws.expect_close(1007);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stats_line(&server).contains("protocol 10 too_big 1") {
        assert!(Instant::now() < deadline, "{}", stats_line(&server));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn handshakes_that_are_not_are_refused_clearly() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        util::text_response(
            "426 Upgrade Required",
            "426 Upgrade Required: this resource speaks WebSocket only\n",
            "Upgrade: websocket\r\n"
        )
    );
    // The connection serves on.
    c.send(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), util::text_response("200 OK", "plain", ""));
    c.send(
        handshake("/echo")
            .replace("Version: 13", "Version: 8")
            .as_bytes(),
    );
    assert_eq!(
        c.response(),
        util::text_response(
            "426 Upgrade Required",
            "426 Upgrade Required: only WebSocket version 13 is served\n",
            "Sec-WebSocket-Version: 13\r\n"
        )
    );
    c.send(handshake("/echo").replace(KEY, "c2hvcnQ=").as_bytes());
    assert_eq!(
        c.response(),
        util::text_response(
            "400 Bad Request",
            "400 Bad Request: Sec-WebSocket-Key must be 16 bytes in base64\n",
            ""
        )
    );
}

#[test]
fn an_upgrade_a_route_declines_lets_pipelined_requests_go_on() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    // The upgrade request and one behind it in one write: the second is
    // read only once the first is answered (200, not 101).
    let mut two = handshake("/plain");
    two.push_str("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send(two.as_bytes());
    assert_eq!(c.response(), util::text_response("200 OK", "plain", ""));
    assert_eq!(c.response(), util::text_response("200 OK", "plain", ""));
    // The same when the route answers later, from a timer.
    let mut two = handshake("/later");
    two.push_str("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send(two.as_bytes());
    assert_eq!(c.response(), util::text_response("200 OK", "later", ""));
    assert_eq!(c.response(), util::text_response("200 OK", "plain", ""));
}

#[test]
fn a_silent_client_is_pinged_then_closed_with_1001() {
    let server = TestServer::start(app);
    let mut ws = Ws::open(&server, "/idle");
    let start = Instant::now();
    assert_eq!(
        ws.recv(),
        (0x89, Vec::new()),
        "a ping after half the idle time"
    );
    let pinged = start.elapsed();
    ws.expect_close(1001);
    let closed = start.elapsed();
    assert!(pinged >= Duration::from_millis(150), "{pinged:?}");
    assert!(closed >= Duration::from_millis(350), "{closed:?}");
    assert!(closed < Duration::from_secs(5), "{closed:?}");
    // A client that answers pings (any frame counts) stays.
    let mut live = Ws::open(&server, "/idle");
    for _ in 0..4 {
        let (b0, payload) = live.recv();
        assert_eq!(b0, 0x89);
        live.send(&frame(0x8A, &payload, true));
    }
    assert!(
        stats_line(&server).contains("idle 1"),
        "{}",
        stats_line(&server)
    );
}

#[test]
fn a_client_that_does_not_read_gets_sends_refused_not_a_growing_buffer() {
    let server = TestServer::start(app);
    let mut ws = Ws::open(&server, "/flood");
    // Keep the socket's receive buffer small so backpressure comes soon.
    socket2::SockRef::from(&ws.s)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
    ws.send(&frame(0x81, b"go", true));
    std::thread::sleep(Duration::from_millis(200));
    // Now read it all: the drain callback reports how far sending went.
    let mut binary = 0;
    let report = loop {
        let (b0, payload) = ws.recv();
        if b0 == 0x81 {
            break String::from_utf8(payload).unwrap();
        }
        assert_eq!(payload.len(), 16 * 1024);
        binary += 1;
    };
    let sent: usize = report.split(' ').nth(2).unwrap().parse().unwrap();
    let buffered: usize = report.split(' ').nth(4).unwrap().parse().unwrap();
    assert_eq!(binary, sent, "{report}");
    // Refused at the mark: what was buffered stayed under it.
    assert!(buffered <= 256 * 1024, "{report}");
    assert!(stats_line(&server).contains("open 1"));
}

#[test]
fn shutdown_closes_websockets_with_1001() {
    let server = TestServer::start(app);
    let mut ws = Ws::open(&server, "/echo");
    server.on_loop(|lp, server: &Server| server.shutdown(lp, Duration::from_secs(5), |_| {}));
    let (b0, payload) = ws.recv();
    assert_eq!(b0, 0x88);
    assert_eq!(&payload[..2], &[0x03, 0xE9]);
    ws.send(&frame(0x88, &[0x03, 0xE9], true));
    assert!(!ws.fill());
}

/// A third-party client: Python's `websockets` (installed from PyPI if
/// missing) against the echo route: text with non-ASCII, a large binary
/// message, a message it sends in fragments, a ping it times, a clean
/// close, and a message over the limit refused with 1009.
#[test]
fn pythons_websockets_client_interoperates() {
    util::python_module("websockets.sync.client", "websockets");
    let server = TestServer::start(app);
    let script = r#"
import sys
from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosedOK, ConnectionClosedError
uri = sys.argv[1]
with connect(uri, max_size=None) as ws:
    ws.send("héllo wörld")
    assert ws.recv() == "héllo wörld"
    data = bytes(range(256)) * 200
    ws.send(data)
    assert ws.recv() == data
    ws.send(["frag", "ment", "ed"])
    assert ws.recv() == "fragmented"
    assert ws.ping(b"tick").wait(5)
    print("echo ok")
ws = connect(uri, max_size=None)
ws.close(1000, "done")
print("close", ws.protocol.close_rcvd.code)
ws = connect(uri, max_size=None)
ws.send("x" * (64 * 1024 + 1))
try:
    ws.recv(timeout=5)
    print("not refused")
except ConnectionClosedError as e:
    print("too big", e.rcvd.code)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &format!("ws://{}/echo", server.addr)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "echo ok\nclose 1000\ntoo big 1009\n");
}

#[test]
fn a_client_that_sends_much_and_reads_late_pauses_the_echo_and_loses_nothing() {
    let server = TestServer::start(app);
    let mut ws = Ws::open(&server, "/echo-small");
    // 8,000 messages of 1 KiB (8 MiB: more than the kernel's send buffer
    // at its largest, 4 MiB by default) in a few writes, nothing read yet:
    // the server's output fills, its input waits.
    let all: Vec<u8> = (0..8000)
        .flat_map(|i| frame(0x81, format!("{i:0>1024}").as_bytes(), true))
        .collect();
    let writer = ws.s.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let mut w = writer;
        std::io::Write::write_all(&mut w, &all).unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..8000 {
        let expected = format!("{i:0>1024}").into_bytes();
        assert_eq!(ws.recv(), (0x81, expected), "echo {i}");
    }
    sending.join().unwrap();
    let stats = stats_line(&server);
    assert!(stats.contains("in 8000 out 8000"), "{stats}");
    // Reading did pause (the mark was reached), and resumed.
    let pauses: u64 = stats.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(pauses >= 1, "{stats}");
}
