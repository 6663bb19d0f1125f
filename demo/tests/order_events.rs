//! Live order tracking: `GET /api/orders/:id/events` streams an order's
//! steps as Server-Sent Events, each once and in order, while 1,000 other
//! subscribers follow the same order; a reconnect resumes after its
//! `Last-Event-ID`. The same over a WebSocket (`GET /ws/orders`).

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;
#[path = "../../server/tests/util/ws.rs"]
mod ws_client;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use demo::Demo;
use serde_json::Value;
use util::{decode_chunked, temp_dir};

fn subscribe(addr: SocketAddr, id: u64, last: Option<u32>) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let last = last.map_or(String::new(), |n| format!("Last-Event-ID: {n}\r\n"));
    write!(
        s,
        "GET /api/orders/{id}/events HTTP/1.1\r\nHost: x\r\n{last}\r\n"
    )
    .unwrap();
    s
}

/// Reads a subscription to its end: the events' (id, type, data) in order.
fn events_of(s: TcpStream) -> Vec<(Option<u32>, String, Value)> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut c = util::Client::from_stream(s);
    let raw = c.read_through(b"\r\n0\r\n\r\n");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("text/event-stream"), "{head}");
    let body = String::from_utf8(decode_chunked(body)).unwrap();
    body.split("\n\n")
        .filter(|e| !e.is_empty() && !e.starts_with(':'))
        .map(|e| {
            let mut id = None;
            let mut kind = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).unwrap();
                }
            }
            (id, kind, data)
        })
        .collect()
}

/// This test process holds a thousand subscribers' sockets: its soft
/// descriptor limit goes up to the hard one.
fn raise_open_files_limit() {
    // SAFETY: setrlimit with a filled struct (the soft limit up to the hard).
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

#[test]
fn a_subscriber_sees_each_step_once_and_in_order_among_a_thousand() {
    raise_open_files_limit();
    let (mut sim, sim_addr) = demo::slow_restaurant(1500);
    let data = temp_dir("order-events");
    let url = format!("http://{sim_addr}");
    let demo = Demo::start(&data, &["--notify-url", &url]);
    let id = *demo.post_orders(1).iter().next().unwrap();
    // 1,000 others follow the same order.
    let others: Vec<TcpStream> = (0..1000).map(|_| subscribe(demo.addr, id, None)).collect();
    let mine = subscribe(demo.addr, id, None);
    let seen = events_of(mine);
    let steps: Vec<(Option<u32>, String)> = seen
        .iter()
        .filter(|(_, kind, _)| kind == "step")
        .map(|(id, _, d)| (*id, d["step"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (Some(1), "saved".to_owned()),
            (Some(2), "responded".to_owned()),
            (Some(3), "notified".to_owned()),
        ],
        "{seen:?}"
    );
    // Passing delivery states (the webhook was out before this subscriber
    // came, so perhaps none) have no id; the last step says delivered.
    assert!(seen
        .iter()
        .all(|(id, kind, _)| kind == "step" || (kind == "delivery" && id.is_none())));
    assert_eq!(seen.last().unwrap().2["notification"], "delivered");
    // Every other subscriber got the same steps.
    for s in others.into_iter().take(20) {
        let theirs: Vec<String> = events_of(s)
            .into_iter()
            .filter(|(_, k, _)| k == "step")
            .map(|(_, _, d)| d["step"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(theirs, ["saved", "responded", "notified"]);
    }
    // A reconnect after step 2 gets step 3 only, and the stream ends.
    let again = events_of(subscribe(demo.addr, id, Some(2)));
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        (again[0].0, again[0].2["step"].as_str()),
        (Some(3), Some("notified"))
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

/// A WebSocket on `/ws/orders` following order `id`.
fn ws_follow(addr: SocketAddr, id: u64) -> ws_client::Ws {
    let mut ws = ws_client::Ws::open_with(addr, "/ws/orders", &[]);
    ws.send(&ws_client::frame(
        0x81,
        format!("{{\"subscribe\": {id}}}").as_bytes(),
        true,
    ));
    ws
}

/// The messages of a WebSocket subscription up to its final step.
fn ws_messages_of(ws: &mut ws_client::Ws) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let (b0, payload) = ws.recv();
        assert_eq!(b0, 0x81, "text messages only");
        let v: Value = serde_json::from_slice(&payload).unwrap();
        let last = v["event"] == "step"
            && matches!(v["step"].as_str(), Some("notified" | "notification failed"));
        seen.push(v);
        if last {
            return seen;
        }
    }
}

#[test]
fn a_websocket_subscriber_sees_each_step_once_and_in_order_among_a_thousand() {
    raise_open_files_limit();
    let (mut sim, sim_addr) = demo::slow_restaurant(1500);
    let data = temp_dir("order-events-ws");
    let url = format!("http://{sim_addr}");
    let demo = Demo::start(&data, &["--notify-url", &url]);
    let ids: Vec<u64> = demo.post_orders(2).into_iter().collect();
    let (id, other) = (ids[0], ids[1]);
    // 1,000 others follow both orders.
    let mut others: Vec<ws_client::Ws> = (0..1000)
        .map(|i| ws_follow(demo.addr, if i % 2 == 0 { id } else { other }))
        .collect();
    let mut mine = ws_follow(demo.addr, id);
    let seen = ws_messages_of(&mut mine);
    assert!(seen.iter().all(|m| m["order"] == id), "{seen:?}");
    let steps: Vec<(u64, String)> = seen
        .iter()
        .filter(|m| m["event"] == "step")
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (1, "saved".to_owned()),
            (2, "responded".to_owned()),
            (3, "notified".to_owned()),
        ],
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .all(|m| m["event"] == "step" || m["event"] == "delivery"));
    assert_eq!(seen.last().unwrap()["notification"], "delivered");
    // Others got the same steps of their own order.
    for (i, ws) in others.iter_mut().enumerate().take(20) {
        let theirs: Vec<String> = ws_messages_of(ws)
            .into_iter()
            .filter(|m| m["event"] == "step")
            .map(|m| m["step"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(theirs, ["saved", "responded", "notified"], "subscriber {i}");
    }
    // Bad requests get a readable error on the same socket.
    mine.send(&ws_client::frame(0x81, b"{\"subscribe\": 999999}", true));
    let (_, payload) = mine.recv();
    assert_eq!(
        serde_json::from_slice::<Value>(&payload).unwrap()["error"],
        "order 999999 not found"
    );
    mine.send(&ws_client::frame(0x81, b"hello", true));
    let (_, payload) = mine.recv();
    assert!(String::from_utf8_lossy(&payload).contains("subscribe"));
    // /metrics counts them (this loop's sockets; the demo has one loop).
    let (open, m) = demo.metric("phaseloop_websockets_open");
    assert_eq!(open, 1001, "{m}");
    let (opened, _) = demo.metric("phaseloop_websockets_opened_total");
    assert_eq!(opened, 1001);
    let (received, _) = demo.metric("phaseloop_websocket_messages_in_total");
    assert_eq!(received, 1003, "a subscribe each, and two bad requests");
    let _ = sim.kill();
    let _ = sim.wait();
}
