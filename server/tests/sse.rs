//! Server-Sent Events: exact bytes of the event stream, keep-alive
//! comments on a quiet stream, and the reconnecting client's Last-Event-ID.

mod util;

use std::time::Duration;

use phaseloop::sse::SseEvent;
use phaseloop::App;
use util::{decode_chunked, TestServer};

fn app() -> App {
    App::new().get_with("/events", |lp, req, res| {
        let last = req.last_event_id().unwrap_or("none").to_owned();
        let w = res.sse_every(lp, Duration::from_millis(100));
        w.send(&SseEvent::data("a\nb").event("note").id(1)).unwrap();
        w.send(&SseEvent::data("c").id(2).retry(500)).unwrap();
        w.send(&SseEvent::data(format!("last={last}"))).unwrap();
        // Quiet for 350 ms (keep-alive comments), then one more and the end.
        lp.set_timeout(Duration::from_millis(350), move |_| {
            w.send(&SseEvent::data("bye").event("end\r\ninjected"))
                .unwrap();
            w.finish();
        });
    })
}

#[test]
fn an_event_stream_carries_exact_events_keep_alives_and_the_last_event_id() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n");
    let raw = c.read_through(b"0\r\n\r\n");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let head = format!("{head}\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nCache-Control: no-cache\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    let body = String::from_utf8(decode_chunked(body)).unwrap();
    let events = "event: note\nid: 1\ndata: a\ndata: b\n\n\
                  id: 2\nretry: 500\ndata: c\n\n\
                  data: last=7\n\n";
    assert!(body.starts_with(events), "{body:?}");
    let rest = &body[events.len()..];
    // A line break cannot forge a field: it is taken out of the name.
    assert!(
        rest.ends_with("event: endinjected\ndata: bye\n\n"),
        "{rest:?}"
    );
    let quiet = &rest[..rest.len() - "event: endinjected\ndata: bye\n\n".len()];
    let comments = quiet.matches(": keep-alive\n\n").count();
    assert!(comments >= 1, "keep-alive comments while quiet: {quiet:?}");
    assert_eq!(
        quiet.len(),
        comments * ": keep-alive\n\n".len(),
        "{quiet:?}"
    );
}
