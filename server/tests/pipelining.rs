//! Pipelined requests are answered in order even when handlers finish out of
//! order, written in one batch; a request trickling in byte by byte works.

mod util;

use std::time::Duration;

use phaseloop::App;
use util::{text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/fast/:n", |_, req, res| {
            let n = req.param("n").unwrap().into_owned();
            res.text(200, format!("fast {n}"))
        })
        .get_with("/slow/:ms/:n", |lp, req, res| {
            let ms: u64 = req.param("ms").unwrap().parse().unwrap();
            let n = req.param("n").unwrap().into_owned();
            lp.set_timeout(Duration::from_millis(ms), move |_| {
                res.text(200, format!("slow {n}"))
            });
        })
        .get_async("/async/:n", |req, _| async move {
            phaseloop_core::sleep(Duration::from_millis(5)).await;
            phaseloop::Response::text(200, format!("async {}", req.param("n").unwrap()))
        })
}

#[test]
fn sixteen_pipelined_requests_answer_in_order() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    let mut batch = String::new();
    let mut want = Vec::new();
    for i in 0..16 {
        let (path, body) = match i % 4 {
            0 => (format!("/slow/{}/{i}", 40 - i * 2), format!("slow {i}")),
            1 => (format!("/fast/{i}"), format!("fast {i}")),
            2 => (format!("/async/{i}"), format!("async {i}")),
            _ => (format!("/slow/1/{i}"), format!("slow {i}")),
        };
        batch.push_str(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        want.push(text_response("200 OK", &body, ""));
    }
    c.send(batch.as_bytes());
    for w in want {
        assert_eq!(c.response(), w);
    }
}

#[test]
fn synchronous_pipelined_responses_leave_in_one_write() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    let batch = "GET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16);
    c.send(batch.as_bytes());
    // One read is enough to get all 16 responses: they were written together.
    let mut buf = vec![0u8; 64 * 1024];
    use std::io::Read;
    let n = c.stream.read(&mut buf).unwrap();
    let got = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 16, "{got}");
}

#[test]
fn request_delivered_one_byte_at_a_time() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    let req =
        b"GET /fast/7 HTTP/1.1\r\nHost: x\r\nX-Long-Header: abcdefghijklmnopqrstuvwxyz\r\n\r\n";
    for b in req.iter() {
        c.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_micros(300));
    }
    assert_eq!(c.response(), text_response("200 OK", "fast 7", ""));
}

#[test]
fn leading_empty_lines_are_ignored() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"\r\n\r\nGET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "fast 1", ""));
}

/// An async handler is called as Node calls an async function: its body
/// runs during its request's dispatch, up to its first `.await` that waits,
/// so it runs before the next pipelined request is dispatched (and an
/// answer given before any await leaves in the same write).
#[test]
fn an_async_handlers_body_runs_during_its_dispatch() {
    use std::sync::Mutex;
    static SEEN: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    fn app() -> App {
        App::new()
            .get_async("/a", |_req, _| async {
                SEEN.lock().unwrap().push("async body");
                phaseloop::Response::text(200, "a")
            })
            .get_with("/b", |_, _, res| {
                SEEN.lock().unwrap().push("sync b");
                res.text(200, "b")
            })
    }
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "a", ""));
    assert_eq!(c.response(), text_response("200 OK", "b", ""));
    assert_eq!(*SEEN.lock().unwrap(), ["async body", "sync b"]);
}
