//! The HTTP client over HTTPS (feature `tls`), against our own server
//! serving TLS with a CA and certificate made at test time (rcgen):
//! keep-alive (one handshake for many requests), large bodies both ways,
//! many requests at once, a streamed response paused and resumed, and
//! each TLS failure a client must report rather than retry: an untrusted
//! CA, a certificate for another name, a plain HTTP server.

#[path = "util/tls.rs"]
mod tls_pki;
mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use phaseloop::client::{
    Client, ClientConfig, ClientError, ClientRequest, ClientResponse, ClientTls, ResponseEvent,
};
use phaseloop::{App, ServerConfig};
use phaseloop_core::RunMode;
use tls_pki::TestPki;
use util::{run_all, run_one, TestServer, CLIENT_LOOP as LOOP};

const BIG: usize = 4 * 1024 * 1024;

fn big_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

fn app() -> App {
    App::new()
        .get("/", |_req, _| "hello over TLS")
        .get("/n/:i", |req, _| {
            format!("request {}", req.param("i").unwrap_or_default())
        })
        .get("/big", |_req, _| {
            (0..BIG).map(big_byte).collect::<Vec<u8>>()
        })
        .post("/sum", |req, _| {
            let body = req.body();
            let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
            format!("{} {sum}", body.len())
        })
}

fn tls_server(pki: &TestPki) -> TestServer {
    let cfg = ServerConfig {
        tls: Some(pki.server_config()),
        ..ServerConfig::default()
    };
    TestServer::with_config(app, cfg)
}

/// A client trusting `pki`'s CA only.
fn client_for(pki: &TestPki) -> Client {
    Client::new(ClientConfig {
        tls: Some(ClientTls::from_root_pem(pki.ca_pem.as_bytes()).unwrap()),
        ..ClientConfig::default()
    })
}

fn text(r: &ClientResponse) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

#[test]
fn keep_alive_requests_share_one_handshake() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    let client = client_for(&pki);
    // By address (the certificate's IP entry) and by name (`localhost`,
    // resolved on the pool: its SNI and the certificate's DNS entry).
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/", server.addr.port());
        for _ in 0..3 {
            let r = run_one(&client, ClientRequest::get(&url)).unwrap();
            assert_eq!((r.status, text(&r)), (200, "hello over TLS"), "{host}");
        }
    }
    let stats = client.stats();
    // One connection per origin (the name may resolve to ::1 first, a
    // refused connect that is no connection), each reused twice.
    assert_eq!((stats.tls_handshakes, stats.reused), (2, 4), "{stats:?}");
    assert_eq!(
        (stats.tls_failures, stats.retries, stats.failures),
        (0, 0, 0)
    );
    server.wait_for_stats("two handshakes on the server", |s| s.tls_handshakes == 2);
    assert_eq!(server.stats().requests, 6);
}

#[test]
fn large_bodies_both_ways_and_many_requests_at_once() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    let client = client_for(&pki);
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    // 900 KiB up, sent while the handshake is under way (rustls holds what
    // it can, the rest follows once the handshake is done).
    let up: Vec<u8> = (0..900 * 1024).map(|i| (i % 251) as u8).collect();
    let sum: u64 = up.iter().map(|&b| u64::from(b)).sum();
    let r = run_one(
        &client,
        ClientRequest::post(&format!("{base}/sum")).body(up.clone()),
    )
    .unwrap();
    assert_eq!(
        (r.status, text(&r)),
        (200, format!("{} {sum}", up.len()).as_str())
    );
    // 4 MiB down.
    let r = run_one(&client, ClientRequest::get(&format!("{base}/big"))).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), BIG);
    assert!(r.body.iter().enumerate().all(|(i, &b)| b == big_byte(i)));
    // 40 at once over the origin's 16 sockets: each answered as asked.
    let reqs = (0..40)
        .map(|i| ClientRequest::get(&format!("{base}/n/{i}")))
        .collect();
    for (i, r) in run_all(&client, reqs).into_iter().enumerate() {
        let r = r.unwrap();
        assert_eq!((r.status, text(&r)), (200, format!("request {i}").as_str()));
    }
    let stats = client.stats();
    assert!(stats.tls_handshakes <= 16, "{stats:?}");
    assert_eq!((stats.tls_failures, stats.failures), (0, 0), "{stats:?}");
}

/// A server that sends no TLS 1.3 session tickets, or speaks TLS 1.2
/// only: nothing arrives after its handshake flight but answers.
fn quiet_server(
    pki: &TestPki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TestServer {
    let mut cfg = pki.server_rustls_with(versions);
    cfg.send_tls13_tickets = 0;
    let cfg = ServerConfig {
        tls: Some(phaseloop::tls::TlsConfig::from_rustls(std::sync::Arc::new(
            cfg,
        ))),
        ..ServerConfig::default()
    };
    TestServer::with_config(app, cfg)
}

#[test]
fn a_body_larger_than_rustls_holds_waits_for_the_handshake() {
    // rustls takes 64 KiB of plaintext before its handshake is done; the
    // rest must go once a read has finished the handshake, even when the
    // server sends nothing more that would raise an event (no tickets).
    let up: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let sum: u64 = up.iter().map(|&b| u64::from(b)).sum();
    let pki = TestPki::new();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let server = quiet_server(&pki, versions);
        let client = client_for(&pki);
        let url = format!("https://127.0.0.1:{}/sum", server.addr.port());
        let req = ClientRequest::post(&url)
            .body(up.clone())
            .timeout(Duration::from_secs(5));
        let r = run_one(&client, req).unwrap_or_else(|e| panic!("{versions:?}: {e}"));
        assert_eq!(
            (r.status, text(&r)),
            (200, format!("{} {sum}", up.len()).as_str())
        );
        assert_eq!(client.stats().tls_handshakes, 1);
    }
}

#[test]
fn a_slow_reading_server_gets_the_whole_body() {
    // A server that finishes its handshake, reads nothing for a while,
    // then reads slowly: the client's socket stays full, each write of
    // records would block many times over, and nothing may be lost or
    // sent twice. (Records left in rustls after the request's last
    // plaintext, sent on a later writable event, are the same path; on
    // loopback the kernel's buffer always has room for the last 64 KiB.)
    use std::io::{Read, Write};
    let pki = TestPki::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body_len = 8 * 1024 * 1024;
    let server_tls = pki.server_rustls();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ServerConnection::new(server_tls).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut got = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let head_end = loop {
            let n = tls.read(&mut buf).unwrap();
            assert!(n > 0, "the request ended early");
            got.extend_from_slice(&buf[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        // Then slowly: the socket stays nearly full to the body's end.
        let mut small = [0u8; 16 * 1024];
        while got.len() < head_end + body_len {
            std::thread::sleep(Duration::from_micros(500));
            let n = tls.read(&mut small).unwrap();
            assert!(n > 0, "the body ended after {} bytes", got.len() - head_end);
            got.extend_from_slice(&small[..n]);
        }
        let answer = format!("{}", got.len() - head_end);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        tls.write_all(response.as_bytes()).unwrap();
        tls.flush().unwrap();
    });
    let client = client_for(&pki);
    let req = ClientRequest::post(&format!("https://127.0.0.1:{port}/"))
        .body(vec![7u8; body_len])
        .timeout(Duration::from_secs(8));
    let r = run_one(&client, req).unwrap();
    assert_eq!((r.status, text(&r)), (200, body_len.to_string().as_str()));
    server.join().unwrap();
}

#[test]
fn a_streamed_response_pauses_and_resumes_over_tls() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    let client = client_for(&pki);
    let url = format!("https://127.0.0.1:{}/big", server.addr.port());
    let got: Rc<RefCell<(Vec<u8>, bool, usize)>> = Rc::default();
    let seen = got.clone();
    LOOP.with(|lp| {
        client.send_streamed(lp, ClientRequest::get(&url), move |lp, event, control| {
            let mut seen = seen.borrow_mut();
            match event {
                ResponseEvent::Head(head) => assert_eq!(head.status, 200),
                ResponseEvent::Data(piece) => {
                    seen.0.extend_from_slice(piece);
                    // Pause after each piece for a few milliseconds: the
                    // rest waits in the kernel and in rustls.
                    seen.2 += 1;
                    control.pause();
                    let control = control.clone();
                    lp.set_timeout(Duration::from_millis(2), move |lp| control.resume(lp));
                }
                ResponseEvent::End => seen.1 = true,
                ResponseEvent::Error(e) => panic!("{e}"),
            }
        });
        lp.run(RunMode::Default);
    });
    let (body, ended, pieces) = &*got.borrow();
    assert!(ended);
    assert!(*pieces > 1, "{pieces}");
    assert_eq!(body.len(), BIG);
    assert!(body.iter().enumerate().all(|(i, &b)| b == big_byte(i)));
}

/// Asserts a TLS failure, reported once (no retry), and returns its text.
fn tls_failure(client: &Client, url: &str) -> String {
    let message = match run_one(client, ClientRequest::get(url)) {
        Err(ClientError::Tls(m)) => m,
        other => panic!("{url}: {other:?}"),
    };
    let stats = client.stats();
    assert_eq!((stats.retries, stats.failures), (0, 1), "{stats:?}");
    message
}

#[test]
fn an_untrusted_certificate_fails_once() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    // The default trust (Mozilla's roots) does not know the test CA.
    let message = tls_failure(&Client::new(ClientConfig::default()), &url);
    assert!(message.contains("UnknownIssuer"), "{message}");
    // Nor does a client trusting another CA (of the same name: its key
    // does not sign the server's certificate).
    let message = tls_failure(&client_for(&TestPki::new()), &url);
    assert!(
        message.contains("invalid peer certificate: BadSignature"),
        "{message}"
    );
    // The server counts what the client's alerts cut short, and serves on.
    server.wait_for_stats("two failed handshakes", |s| s.tls_handshake_errors == 2);
    let r = run_one(&client_for(&pki), ClientRequest::get(&url)).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn a_certificate_for_another_name_fails_once() {
    let pki = TestPki::for_names(&["service.example"], &[]);
    let server = tls_server(&pki);
    let client = client_for(&pki);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let message = tls_failure(&client, &url);
    assert!(
        message.contains("not valid for name \"127.0.0.1\""),
        "{message}"
    );
    assert_eq!(client.stats().tls_failures, 1);
}

#[test]
fn a_plain_http_server_is_no_tls_server() {
    let server = TestServer::start(app);
    let pki = TestPki::new();
    let client = client_for(&pki);
    // It answers our ClientHello with a 400 in plain text, which is no
    // TLS record.
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let message = tls_failure(&client, &url);
    assert!(!message.is_empty());
    // The same client reaches it over plain HTTP: another origin.
    let r = run_one(&client, ClientRequest::get(&url.replace("https", "http"))).unwrap();
    assert_eq!((r.status, text(&r)), (200, "hello over TLS"));
}
