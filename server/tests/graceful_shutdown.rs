//! Graceful shutdown: accepting stops, idle connections close, in-flight
//! requests finish (answered with Connection: close), then done runs.

mod util;

use std::sync::mpsc;
use std::time::Duration;

use phaseloop::App;
use util::{text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/", |_, _, res| res.text(200, "ok"))
        .get_with("/slow", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(300), move |_| {
                res.text(200, "finished")
            });
        })
}

#[test]
fn in_flight_requests_finish_and_idle_connections_close() {
    let server = TestServer::start(app);
    let mut idle = server.connect();
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.response(), text_response("200 OK", "ok", ""));

    let mut busy = server.connect();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50)); // the request is in flight

    let (tx, rx) = mpsc::channel();
    server.on_loop(move |lp, s| {
        s.shutdown(lp, Duration::from_secs(5), move |_| {
            tx.send("done").unwrap()
        });
    });
    assert!(idle.closed(), "the idle connection is closed at once");
    assert_eq!(
        busy.response(),
        text_response("200 OK", "finished", "")
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
    );
    assert!(busy.closed());
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "done");
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn shutdown_deadline_force_closes_stragglers() {
    let server = TestServer::start(app);
    let mut busy = server.connect();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    let (tx, rx) = mpsc::channel();
    server.on_loop(move |lp, s| {
        s.shutdown(lp, Duration::from_millis(100), move |_| {
            tx.send("done").unwrap()
        });
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "done");
    assert!(
        busy.closed(),
        "forced closed before its 300 ms handler answered"
    );
}

#[test]
fn a_handler_that_starts_the_shutdown_still_answers() {
    // The shutdown starts while its own request is being dispatched (not
    // yet answered): that connection is in flight, not idle, and its
    // answer goes out with Connection: close.
    let server = TestServer::start(|| {
        App::new()
            .get_with("/", |_, _, res| res.text(200, "ok"))
            .get_with("/shutdown", |lp, _, res| {
                util::with_server(|s| s.shutdown(lp, Duration::from_secs(5), |_| {}));
                res.text(200, "bye")
            })
    });
    let mut idle = server.connect();
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.response(), text_response("200 OK", "ok", ""));
    let mut c = server.connect();
    c.send(b"GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response("200 OK", "bye", "").replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
    );
    assert!(c.closed());
    assert!(idle.closed(), "the idle connection is closed");
}

/// `done` is a next tick, as Node's server 'close'. Node 20 prints `sync,
/// close, tick, promise, immediate` for `server.close(() => log("close"));
/// setImmediate(() => log("immediate")); process.nextTick(() =>
/// log("tick")); Promise.resolve().then(() => log("promise")); log("sync")`
/// run in a callback while no connection is open.
#[test]
fn done_runs_as_a_next_tick_as_in_node() {
    let server = TestServer::start(app);
    let (tx, rx) = std::sync::mpsc::channel();
    server.on_loop(move |lp, srv| {
        let log: std::rc::Rc<std::cell::RefCell<Vec<&str>>> = Default::default();
        let l = log.clone();
        srv.shutdown(lp, Duration::from_secs(5), move |_| {
            l.borrow_mut().push("close")
        });
        let l = log.clone();
        lp.set_immediate(move |_| {
            l.borrow_mut().push("immediate");
            tx.send(l.borrow().clone()).unwrap();
        });
        let l = log.clone();
        lp.next_tick(move |_| l.borrow_mut().push("tick"));
        let l = log.clone();
        lp.queue_microtask(move |_| l.borrow_mut().push("promise"));
        log.borrow_mut().push("sync");
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        ["sync", "close", "tick", "promise", "immediate"]
    );
}

#[test]
fn with_a_drain_grace_an_idle_connection_is_still_answered_then_closed() {
    let cfg = phaseloop::ServerConfig {
        drain_idle_grace: Duration::from_millis(400),
        ..Default::default()
    };
    let server = TestServer::with_config(app, cfg);
    let mut idle = server.connect();
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.response(), text_response("200 OK", "ok", ""));
    let mut quiet = server.connect();
    quiet.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(quiet.response(), text_response("200 OK", "ok", ""));

    let (tx, rx) = mpsc::channel();
    server.on_loop(move |lp, s| {
        s.shutdown(lp, Duration::from_secs(5), move |_| {
            tx.send("done").unwrap()
        });
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
    // A proxy's request on its idle keep-alive connection, sent as the
    // shutdown began: answered, and told the connection closes.
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        idle.response(),
        text_response("200 OK", "ok", "").replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
    );
    assert!(idle.closed());
    // The connection that stayed idle is closed when the grace ends, and
    // the shutdown completes.
    assert!(quiet.closed());
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "done");
}
