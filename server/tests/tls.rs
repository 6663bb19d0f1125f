//! HTTPS on the loop (feature `tls`): a real TLS client (rustls) against
//! the server, with a CA and certificate made at test time (rcgen):
//! keep-alive, pipelining, a large response through backpressure, a wrong
//! SNI, garbage instead of a ClientHello, a stalled handshake, and the
//! counters of each.

#[path = "util/tls.rs"]
mod tls_pki;
mod util;
#[path = "util/ws.rs"]
mod ws_client;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use phaseloop::{App, ServerConfig};
use tls_pki::TestPki;
use util::{text_response, TestServer};

const BIG: usize = 4 * 1024 * 1024;

fn app() -> App {
    App::new()
        .get("/", |_req, _| "hello over TLS")
        .get_with("/ws", |_, req, res| {
            res.websocket(&req, phaseloop::ws::WsConfig::default(), |_, ws| {
                ws.on_message(|_, ws, msg| {
                    let _ = ws.send(&msg);
                });
            })
        })
        .get("/n/:i", |req, _| {
            format!("request {}", req.param("i").unwrap_or_default())
        })
        .get("/big", |_req, _| {
            (0..BIG).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>()
        })
}

fn tls_server(pki: &TestPki, header_timeout: Duration) -> TestServer {
    let cfg = ServerConfig {
        tls: Some(pki.server_config()),
        header_timeout,
        ..ServerConfig::default()
    };
    TestServer::with_config(app, cfg)
}

/// A fresh client still gets served: what went before did not stop the
/// server.
fn still_serves(pki: &TestPki, server: &TestServer) {
    let mut c = pki.client(server.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "hello over TLS", ""));
}

#[test]
fn the_redirect_listener_sends_plain_http_to_the_https_port() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_secs(10));
    let port = server.addr.port();
    // `https_redirect` takes the port at run time: a closure, not a fn.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lp = phaseloop_core::Loop::new().unwrap();
        let redirect = phaseloop::Server::bind(
            &lp,
            "127.0.0.1:0".parse().unwrap(),
            phaseloop::https_redirect(port),
            ServerConfig::default(),
        )
        .unwrap();
        tx.send((redirect.local_addr(), lp.handle())).unwrap();
        lp.run(phaseloop_core::RunMode::Default);
    });
    let (plain, handle) = rx.recv().unwrap();
    let mut c = util::Client::connect(plain);
    c.send(b"POST /api/orders?x=1&y=%20 HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 2\r\n\r\n{}");
    let location = format!("https://localhost:{port}/api/orders?x=1&y=%20");
    assert_eq!(
        c.response(),
        format!(
            "HTTP/1.1 308 Permanent Redirect\r\nDate: <date>\r\nContent-Type: text/plain; charset=utf-8\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        )
    );
    c.send(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    assert!(c
        .response()
        .contains(&format!("Location: https://[::1]:{port}/\r\n")));
    handle.stop();
    // Where it points is served over TLS.
    still_serves(&pki, &server);
}

#[test]
fn keep_alive_requests_over_one_tls_connection() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_secs(10));
    let mut c = pki.client(server.addr);
    assert_eq!(c.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..3 {
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(c.response(), text_response("200 OK", "hello over TLS", ""));
    }
    let stats = server.stats();
    assert_eq!(stats.tls_handshakes, 1, "{stats:?}");
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.tls_handshake_errors + stats.tls_errors, 0);
}

#[test]
fn pipelined_requests_over_tls_are_answered_in_order() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_secs(10));
    let mut c = pki.client(server.addr);
    let mut batch = String::new();
    for i in 0..32 {
        batch.push_str(&format!("GET /n/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    }
    // One write: one TLS record carrying all 32 requests.
    c.send(batch.as_bytes());
    for i in 0..32 {
        assert_eq!(
            c.response(),
            text_response("200 OK", &format!("request {i}"), "")
        );
    }
}

#[test]
fn a_large_response_reaches_a_slow_tls_reader_whole() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_secs(10));
    let mut c = pki.client(server.addr);
    c.send(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // Read slowly at first, so the server's socket fills and its TLS
    // records wait for room (the writable event must resume them).
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut reads = 0;
    while got.len() < BIG + 100 {
        let n = c.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
        reads += 1;
        if reads < 20 {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(end) = util::find(&got, b"\r\n\r\n") {
            if got.len() >= end + 4 + BIG {
                break;
            }
        }
    }
    let end = util::find(&got, b"\r\n\r\n").unwrap() + 4;
    assert!(String::from_utf8_lossy(&got[..end]).contains(&format!("Content-Length: {BIG}\r\n")));
    let body = &got[end..];
    assert_eq!(body.len(), BIG);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));
    // And the connection serves on.
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut c2 = util::Client::from_stream(c.stream);
    assert_eq!(c2.response(), text_response("200 OK", "hello over TLS", ""));
}

#[test]
fn a_client_asking_for_another_name_fails_its_handshake_and_the_server_goes_on() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_secs(10));
    // The certificate is for localhost: the client refuses it, with an
    // alert, and the server counts a failed handshake.
    let mut s = pki.connect_as(server.addr, "wrong.example");
    let err = s
        .write_all(b"GET / HTTP/1.1\r\nHost: wrong.example\r\n\r\n")
        .and_then(|()| s.flush())
        .and_then(|()| s.read(&mut [0u8; 64]).map(|_| ()))
        .expect_err("a certificate for another name is refused");
    assert!(
        format!("{err}").contains("NotValidForName")
            || format!("{err:?}").contains("NotValidForName"),
        "{err:?}"
    );
    server.wait_for_stats("the failed handshake is counted", |s| {
        s.tls_handshake_errors == 1 && s.open == 0
    });
    assert_eq!(server.stats().tls_handshakes, 0);
    still_serves(&pki, &server);
}

#[test]
fn plain_http_instead_of_a_client_hello_is_closed() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_secs(10));
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got); // an alert at most, then the end
    assert!(!got.starts_with(b"HTTP/"), "{got:?}");
    assert!(got.len() < 64, "at most an alert record: {got:?}");
    server.wait_for_stats("the garbage is counted and closed", |s| {
        s.tls_handshake_errors == 1 && s.open == 0
    });
    // Random bytes too.
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = tcp.write_all(&noise);
    let _ = tcp.read_to_end(&mut Vec::new());
    server.wait_for_stats("the noise is counted and closed", |s| {
        s.tls_handshake_errors == 2 && s.open == 0
    });
    still_serves(&pki, &server);
}

#[test]
fn a_stalled_handshake_is_closed_by_the_header_timeout() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_millis(300));
    let start = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The first bytes of a ClientHello record, then nothing.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let mut got = Vec::new();
    let _ = stalled.read_to_end(&mut got);
    let waited = start.elapsed();
    // No earlier than the timeout (less the 4 ms clock tick), well before
    // the read timeout.
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    server.wait_for_stats("closed and counted", |s| s.open == 0 && s.timeouts >= 1);
    // One that sends nothing at all goes the same way.
    let start = Instant::now();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = silent.read_to_end(&mut Vec::new());
    assert!(start.elapsed() >= Duration::from_millis(290));
    assert!(start.elapsed() < Duration::from_secs(5));
    still_serves(&pki, &server);
}

#[test]
fn a_websocket_over_tls_echoes() {
    let pki = TestPki::new();
    let server = tls_server(&pki, Duration::from_secs(10));
    let mut c = pki.client(server.addr);
    c.send(ws_client::handshake("/ws").as_bytes());
    let head = c.read_through(b"\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    // A masked text frame "wss", then the server's unmasked echo.
    c.send(&ws_client::frame(0x81, b"wss", true));
    let echo = c.read_through(b"wss");
    // `read_through` reads text lossily: the frame's first byte (0x81, FIN
    // + text) shows as U+FFFD; then the length 3, unmasked, and the echo.
    assert_eq!(echo, "\u{fffd}\u{3}wss");
    assert_eq!(server.stats().upgraded, 1);
    assert_eq!(server.stats().tls_handshakes, 1);
}
