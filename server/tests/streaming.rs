//! Streamed response bodies: chunked for HTTP/1.1, connection-delimited for
//! HTTP/1.0, in order with pipelined responses, bounded when the client
//! does not read, and visibly cut when the handler gives up.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use phaseloop::{App, BodyWriter, Response, StreamError};
use phaseloop_core::Loop;
use util::{text_response, TestServer};

fn tick(lp: &Loop, mut writer: BodyWriter, n: u32) {
    if n == 3 {
        return writer.finish();
    }
    writer.write(format!("piece {n}\n").as_bytes()).unwrap();
    lp.set_timeout(Duration::from_millis(5), move |lp| tick(lp, writer, n + 1));
}

fn app() -> App {
    App::new()
        .get_with("/stream", |lp, _, res| {
            let writer = res.stream(Response::text(200, "start\n"));
            tick(lp, writer, 0);
        })
        .get_with("/fast", |_, _, res| res.text(200, "fast"))
        .get_with("/drain-panic", |_, _, res| {
            let mut writer = res.stream(Response::new(200));
            while !writer.congested() {
                writer.write(&[b'y'; 16 * 1024]).unwrap();
            }
            let held = Rc::new(RefCell::new(None::<BodyWriter>));
            let h = held.clone();
            writer.on_drain(move |_| {
                let _writer = h.borrow_mut().take();
                panic!("drain callback bug");
            });
            *held.borrow_mut() = Some(writer);
        })
        .get_with("/polite", |lp, _, res| {
            let writer = res.stream(Response::new(200));
            produce(lp, writer, 0, 2 * 1024 * 1024);
        })
        .get_with("/cut", |lp, _, res| {
            let mut writer = res.stream(Response::text(200, ""));
            writer.write(b"partial").unwrap();
            lp.set_timeout(Duration::from_millis(5), move |_| drop(writer));
        })
        .get_with("/flood", |lp, _, res| {
            let writer = Rc::new(RefCell::new(Some(res.stream(Response::new(200)))));
            let id = Rc::new(std::cell::Cell::new(None));
            let id2 = id.clone();
            id.set(Some(lp.set_interval(Duration::from_millis(1), move |lp| {
                let mut w = writer.borrow_mut();
                let Some(writer) = w.as_mut() else { return };
                loop {
                    match writer.write(&[b'x'; 64 * 1024]) {
                        Ok(()) => {}
                        Err(StreamError::Congested) => {
                            FLOOD_CONGESTED.with(|c| c.set(c.get() + 1));
                            break;
                        }
                        Err(StreamError::Closed) => {
                            w.take();
                            lp.clear_timer(id2.get().unwrap());
                            break;
                        }
                    }
                }
            })));
        })
}

/// Streams `total` bytes in 16 KiB pieces, waiting with `on_drain` whenever
/// the client has not taken the earlier ones: the polite producer.
fn produce(lp: &Loop, mut writer: BodyWriter, sent: usize, total: usize) {
    let mut sent = sent;
    while sent < total {
        if writer.congested() {
            let cell = Rc::new(RefCell::new(None::<BodyWriter>));
            let c = cell.clone();
            writer.on_drain(move |lp| {
                if let Some(w) = c.borrow_mut().take() {
                    produce(lp, w, sent, total);
                }
            });
            *cell.borrow_mut() = Some(writer);
            return;
        }
        let piece: Vec<u8> = (sent..sent + 16 * 1024)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        writer.write(&piece).unwrap();
        sent += piece.len();
    }
    let _ = lp;
    writer.finish();
}

thread_local! {
    static FLOOD_CONGESTED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn chunked_stream_then_pipelined_response_in_order() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.read_through(b"0\r\n\r\n"),
        format!("{STREAM_HEAD}6\r\nstart\n\r\n8\r\npiece 0\n\r\n8\r\npiece 1\n\r\n8\r\npiece 2\n\r\n0\r\n\r\n")
    );
    assert_eq!(c.response(), text_response("200 OK", "fast", ""));
}

#[test]
fn http10_stream_is_delimited_by_close() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(
        c.read_to_close(),
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nstart\npiece 0\npiece 1\npiece 2\n"
    );
}

#[test]
fn head_of_a_stream_has_no_body() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_through(b"\r\n\r\n"), STREAM_HEAD);
    assert_eq!(c.response(), text_response("200 OK", "fast", ""));
}

#[test]
fn dropped_writer_cuts_the_body_and_closes() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = c.read_to_close();
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n",
        "no terminating chunk: the client can tell the body is incomplete"
    );
}

#[test]
fn a_stream_to_a_client_that_does_not_read_stays_bounded() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let (tx, rx) = std::sync::mpsc::channel();
    server.on_loop(move |_, s| {
        tx.send((s.buffered_bytes(), FLOOD_CONGESTED.with(|c| c.get())))
            .unwrap()
    });
    let (buffered, congested) = rx.recv().unwrap();
    assert!(congested > 0, "the writer was told to wait");
    assert!(
        buffered < 2 * 1024 * 1024,
        "{buffered} bytes buffered for a client that does not read"
    );
    drop(c);
}

#[test]
fn a_producer_waiting_on_drain_delivers_everything_to_a_slow_reader() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /polite HTTP/1.1\r\nHost: x\r\n\r\n");
    // Read slowly at first, so the producer has to wait for drains.
    std::thread::sleep(Duration::from_millis(200));
    let (tx, rx) = std::sync::mpsc::channel();
    server.on_loop(move |_, s| tx.send(s.buffered_bytes()).unwrap());
    let buffered = rx.recv().unwrap();
    assert!(
        buffered < 256 * 1024,
        "the producer waited instead of buffering: {buffered}"
    );
    let whole = c.read_through(b"\r\n0\r\n\r\n");
    let body = util::decode_chunked(whole.split_once("\r\n\r\n").unwrap().1);
    assert_eq!(body.len(), 2 * 1024 * 1024);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == b'a' + (i % 26) as u8));
}

#[test]
fn a_drain_callback_that_panics_cuts_its_stream_and_the_server_goes_on() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /drain-panic HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100));
    // Reading gives the stream room: its drain callback runs and panics,
    // its writer is dropped unfinished, so the body is cut and the
    // connection closed.
    let got = c.read_to_close();
    let head = got.split("\r\n\r\n").next().unwrap_or_default();
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nTransfer-Encoding: chunked"
    );
    assert!(got.len() > 64 * 1024, "what was written before got out");
    assert!(!got.ends_with("\r\n0\r\n\r\n"), "the body was cut");
    let mut other = server.connect();
    other.send(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(other.response(), text_response("200 OK", "fast", ""));
    let (tx, rx) = std::sync::mpsc::channel();
    server.on_loop(move |lp, _| tx.send(lp.metrics().callback_panics).unwrap());
    assert_eq!(rx.recv().unwrap(), 1);
}
