//! The server's own measurements: the latency histogram and the per-route
//! status counts, for answers given during dispatch and answers given later.

mod util;

use std::sync::mpsc;
use std::time::Duration;

use phaseloop::App;
use util::{text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/now", |_, _, res| res.text(200, "now"))
        .get_with("/later", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(30), move |_| res.text(202, "later"));
        })
}

/// (requests in the histogram, of them at 1 µs, largest in µs, per-route
/// counts as `pattern status count` lines), read on the server's loop.
fn measurements(server: &TestServer) -> (u64, u64, u64, Vec<String>) {
    let (tx, rx) = mpsc::channel();
    server.on_loop(move |_, server| {
        let latency = server.latency_histogram();
        let routes = server
            .route_stats()
            .iter()
            .flat_map(|r| {
                r.by_status
                    .iter()
                    .map(move |(status, n)| format!("{} {status} {n}", r.route))
            })
            .collect();
        tx.send((latency.len(), latency.count_at(1), latency.max(), routes))
            .unwrap();
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap()
}

#[test]
fn answers_at_once_and_later_are_both_measured() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    // Three pipelined in one write: answered inside one read batch.
    c.send(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3).as_slice());
    for _ in 0..3 {
        assert_eq!(c.response(), text_response("200 OK", "now", ""));
    }
    c.send(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("202 Accepted", "later", ""));

    let (count, at_once, max_us, routes) = measurements(&server);
    assert_eq!(count, 4);
    assert_eq!(at_once, 3, "answers given during dispatch count as 1 µs");
    assert!(
        max_us >= 29_000,
        "the timer's answer took 30 ms: {max_us} µs"
    );
    assert_eq!(routes, ["GET /now 200 3", "GET /later 202 1"]);

    // Reading folds the at-once answers in only once.
    c.send(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "now", ""));
    let (count, at_once, _, routes) = measurements(&server);
    assert_eq!((count, at_once), (5, 4));
    assert_eq!(routes, ["GET /now 200 4", "GET /later 202 1"]);
}
