//! The Compression middleware over real sockets: negotiated by
//! Accept-Encoding, above its threshold only, compressible types only,
//! on the pool, with `Vary`; streams, HEAD and encoded bodies pass by.

mod util;

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use phaseloop::middleware::Compression;
use phaseloop::testing::TestRequest;
use phaseloop::{App, Response};
use phaseloop_core::Lane;

fn text() -> String {
    "the event loop runs timers, pending, idle, prepare, poll, check, close.\n".repeat(100)
}

fn app() -> App {
    App::new()
        .wrap(Compression::new())
        .get("/text", |_, _| text())
        .get("/small", |_, _| "tiny")
        .get("/json", |_, _| Response::json(200, &vec![text(); 3]))
        .get("/binary", |_, _| vec![7u8; 4096])
        .get("/encoded", |_, _| {
            Response::text(200, text()).header("Content-Encoding", "identity")
        })
        .get_with("/stream", |_, _, res| {
            let mut w = res.stream(Response::text(200, ""));
            let _ = w.write(text().as_bytes());
            w.finish();
        })
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn bodies_are_compressed_as_the_client_asks() {
    let server = util::TestServer::start(app);
    let mut c = phaseloop::testing::TestClient::connect(server.addr).unwrap();
    let get = |path: &str, ae: &str| TestRequest::get(path).header("Accept-Encoding", ae);

    let r = c.send(get("/text", "gzip"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < text().len() / 4, "{} bytes", r.body.len());
    assert_eq!(gunzip(&r.body), text());

    let r = c.send(get("/json", "br;q=0.2, gzip;q=0.9"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let json: Vec<String> = serde_json::from_str(&gunzip(&r.body)).unwrap();
    assert_eq!(json.len(), 3);

    for (path, ae) in [
        ("/text", "gzip;q=0"),
        ("/text", "identity"),
        ("/small", "gzip"),
        ("/binary", "gzip"),
        ("/encoded", "gzip"),
        ("/stream", "gzip"),
    ] {
        let r = c.send(get(path, ae));
        assert_eq!(
            r.header("content-encoding").filter(|e| *e != "identity"),
            None,
            "{path} {ae}"
        );
    }
    // Without Accept-Encoding: plain, and says it varies.
    let r = c.get("/text");
    assert_eq!(
        (r.text(), r.header("vary")),
        (text().as_str(), Some("Accept-Encoding"))
    );
    // HEAD passes by.
    let r = c.send(TestRequest::new("HEAD", "/text").header("Accept-Encoding", "gzip"));
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn compression_runs_on_the_pool() {
    let server = util::TestServer::start(app);
    let completed = || {
        let (tx, rx) = mpsc::channel();
        server.on_loop(move |lp, _| {
            let n = lp
                .pool_stats()
                .map_or(0, |p| p.lane(Lane::Compression).completed);
            tx.send(n).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    };
    let before = completed();
    let mut c = phaseloop::testing::TestClient::connect(server.addr).unwrap();
    for _ in 0..3 {
        let r = c.send(TestRequest::get("/text").header("Accept-Encoding", "gzip"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
    }
    // The pool is the process's, shared with the other tests here: at least ours.
    assert!(
        completed() - before >= 3,
        "one compression job per response"
    );
}

#[cfg(feature = "brotli")]
#[test]
fn brotli_when_preferred() {
    let server = util::TestServer::start(app);
    let mut c = phaseloop::testing::TestClient::connect(server.addr).unwrap();
    let r = c.send(TestRequest::get("/text").header("Accept-Encoding", "gzip, br"));
    assert_eq!(r.header("content-encoding"), Some("br"));
    let mut out = String::new();
    brotli::Decompressor::new(&r.body[..], 4096)
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, text());
}
