//! Static files over real sockets: types and validators, 304s, ranges,
//! HEAD, refused paths (traversal, hidden names, links out of the root),
//! and large files streamed with backpressure.

mod util;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use phaseloop::testing::{TestClient, TestRequest};
use phaseloop::{App, Method, ServeDir, ServeFile};

/// A directory of test files, made once per test binary.
fn root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let base = util::temp_dir("serve-dir");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("hello.txt"), "hello, files").unwrap();
        std::fs::write(root.join("sub/index.html"), "<h1>sub</h1>").unwrap();
        std::fs::write(root.join(".secret"), "hidden").unwrap();
        std::fs::write(base.join("outside.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(base.join("outside.txt"), root.join("out-link")).unwrap();
        std::os::unix::fs::symlink(root.join("hello.txt"), root.join("in-link")).unwrap();
        std::fs::write(root.join("big.bin"), big()).unwrap();
        root
    })
    .clone()
}

/// 4 MiB of a pattern: larger than what is sent whole.
fn big() -> Vec<u8> {
    (0..4u32 << 20).map(|i| (i % 251) as u8).collect()
}

fn app() -> App {
    App::new()
        .route_handler(Method::Get, "/static/*", ServeDir::new(root()))
        .route_handler(
            Method::Get,
            "/favicon.txt",
            ServeFile::new(root().join("hello.txt")),
        )
}

#[test]
fn files_with_type_validators_and_304s() {
    let server = phaseloop::testing::TestServer::start(app);
    let mut c = server.client();
    let r = c.get("/static/hello.txt");
    assert_eq!((r.status, r.text()), (200, "hello, files"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").unwrap().to_string();
    let modified = r.header("last-modified").unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert!(modified.ends_with(" GMT"), "{modified}");
    let again = TestRequest::get("/static/hello.txt").header("If-None-Match", &etag);
    let r = c.send(again);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let since = TestRequest::get("/static/hello.txt").header("If-Modified-Since", &modified);
    assert_eq!(c.send(since).status, 304);
    let old = TestRequest::get("/static/hello.txt")
        .header("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT");
    assert_eq!(c.send(old).status, 200);
    let other = TestRequest::get("/static/hello.txt").header("If-None-Match", "\"nope\"");
    assert_eq!(c.send(other).status, 200);
    assert_eq!(c.get("/static/sub/").text(), "<h1>sub</h1>");
    assert_eq!(c.get("/static/sub").text(), "<h1>sub</h1>");
    assert_eq!(c.get("/favicon.txt").text(), "hello, files");
    assert_eq!(c.get("/static/in-link").text(), "hello, files");
}

#[test]
fn ranges_and_head() {
    let server = phaseloop::testing::TestServer::start(app);
    let mut c = server.client();
    let ranged = |spec: &str| TestRequest::get("/static/hello.txt").header("Range", spec);
    let r = c.send(ranged("bytes=0-4"));
    assert_eq!((r.status, r.text()), (206, "hello"));
    assert_eq!(r.header("content-range"), Some("bytes 0-4/12"));
    let r = c.send(ranged("bytes=-5"));
    assert_eq!((r.status, r.text()), (206, "files"));
    let r = c.send(ranged("bytes=7-"));
    assert_eq!((r.status, r.text()), (206, "files"));
    let r = c.send(ranged("bytes=100-"));
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */12"))
    );
    let r = c.send(ranged("bytes=0-1,3-4"));
    assert_eq!(
        (r.status, r.text()),
        (200, "hello, files"),
        "several: the whole file"
    );
    let r = c.send(TestRequest::new("HEAD", "/static/hello.txt"));
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("12"));
    // A range of a large file is streamed.
    let r = c.send(TestRequest::get("/static/big.bin").header("Range", "bytes=1000000-1999999"));
    assert_eq!(r.status, 206);
    assert_eq!(r.body, big()[1_000_000..2_000_000]);
}

#[test]
fn paths_out_of_the_root_or_hidden_are_not_found() {
    let server = phaseloop::testing::TestServer::start(app);
    let mut c = server.client();
    for path in [
        "/static/%2e%2e/outside.txt",
        "/static/sub/%2e%2e/%2e%2e/outside.txt",
        "/static/.secret",
        "/static/out-link",
        "/static/missing.txt",
        "/static/a%2fb",
        "/static/",
    ] {
        let r = c.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
}

#[test]
fn a_large_file_is_streamed_at_the_clients_pace() {
    let server = util::TestServer::start(app);
    let mut raw = std::net::TcpStream::connect(server.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // A small receive window: the kernel takes little for a client that
    // does not read.
    socket2::SockRef::from(&raw)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
    raw.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Not reading: the server holds at most a few chunks, not the file.
    let (tx, rx) = mpsc::channel();
    server.on_loop(move |_, s| tx.send(s.buffered_bytes()).unwrap());
    let held = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(held < 1 << 20, "held {held} bytes of a 4 MiB file");
    // Then all of it arrives, intact.
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let mut client_body = Vec::new();
    loop {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let mut rest = &got[head_end..];
    loop {
        let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        client_body.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
        rest = &rest[nl + 4 + size..];
    }
    assert!(client_body == big(), "the whole file, intact");
    let _ = TestClient::connect(server.addr); // the server goes on
}
