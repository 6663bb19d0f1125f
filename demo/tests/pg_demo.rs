//! The demo on PostgreSQL (`--database`): users, orders and the outbox in
//! a real PostgreSQL (see `server/tests/util/pg.rs`), migrations that run
//! once whoever starts first, instances sharing the outbox, and the
//! database going away and coming back.

mod demo;
#[path = "../../server/tests/util/pg.rs"]
mod pg_server;
#[path = "../../server/tests/util/mod.rs"]
mod util;
#[path = "../../server/tests/util/ws.rs"]
mod ws_client;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use demo::Demo;
use pg_server::{shared, PgServer};
use serde_json::Value;
use util::{body_of, status_of, temp_dir};

/// A database of its own on `server`; its URL over TCP.
fn fresh_database(server: &PgServer) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "demo_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    server.psql(&format!("CREATE DATABASE {name}"));
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}

fn psql_in(server: &PgServer, url: &str, sql: &str) -> String {
    server.psql_db(url.rsplit('/').next().unwrap(), sql)
}

fn order_body(n: usize) -> String {
    format!(r#"{{"restaurant_id":1,"customer":"c{n}","items":[{{"name":"x","qty":1}}]}}"#)
}

/// Polls `what` every 20 ms for up to `limit`.
fn eventually(limit: Duration, what: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    what()
}

#[test]
fn users_orders_and_their_notifications_live_in_postgresql() {
    let server = shared();
    let url = fresh_database(server);
    let dir = temp_dir("pg-demo-main");
    let demo = Demo::start(&dir, &["--database", &url, "--log-level", "warn"]);
    // Users come from the table (seeded by the migration), through the cache.
    psql_in(
        server,
        &url,
        "UPDATE users SET name = 'From PostgreSQL' WHERE id = 5",
    );
    let r = demo.get("/api/users/5");
    assert_eq!(status_of(&r), "HTTP/1.1 200 OK", "{r}");
    let user: Value = serde_json::from_str(body_of(&r)).unwrap();
    assert_eq!(user["name"], "From PostgreSQL");
    assert_eq!(user["email"], "ken5@example.com");
    assert_eq!(
        status_of(&demo.get("/api/users/101")),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status_of(&demo.get("/api/users/x")),
        "HTTP/1.1 400 Bad Request"
    );

    // Orders: every acknowledged id is in the database with its outbox row.
    // (Each 201 Created, each id new: the demo helper asserts both.)
    let ids = demo.post_orders(25);
    let r = demo.post("/api/orders", r#"{"restaurant_id":0}"#);
    assert_eq!(status_of(&r), "HTTP/1.1 400 Bad Request", "{r}");
    let stored = psql_in(
        server,
        &url,
        "SELECT count(*) FROM orders JOIN outbox ON order_id = id",
    );
    assert_eq!(stored, "25");
    // Each is delivered to the restaurant once.
    let delivered = || {
        psql_in(
            server,
            &url,
            "SELECT count(*) FROM outbox WHERE state = 'delivered'",
        ) == "25"
    };
    assert!(
        eventually(Duration::from_secs(30), delivered),
        "not all delivered"
    );
    let summary: Value = serde_json::from_str(body_of(&demo.get("/restaurant/orders"))).unwrap();
    assert_eq!(
        (summary["unique"].as_u64(), summary["duplicates"].as_u64()),
        (Some(25), Some(0))
    );
    let id = ids.iter().next().unwrap();
    let r = demo.get(&format!("/api/orders/{id}"));
    let v: Value = serde_json::from_str(body_of(&r)).unwrap();
    assert_eq!(v["notification"], "delivered", "{r}");
    assert_eq!(v["notification_attempts"], 1, "{r}");
    assert_eq!(
        v["order"]["customer"].as_str().map(|c| c.starts_with('c')),
        Some(true)
    );
    let (n, _) = demo.metric("phaseloop_notifications_delivered_total");
    assert_eq!(n, 25);
    let (connections, text) = demo.metric("phaseloop_db_pool_connections");
    assert!((1..=20).contains(&connections), "{text}");
    let (queries, text) = demo.metric("phaseloop_db_queries_total");
    assert!(queries >= 25 + 25, "{text}");
    assert!(
        text.contains("phaseloop_db_query_seconds_bucket{le=\"0.001\"}"),
        "{text}"
    );
    let health: Value = serde_json::from_str(body_of(&demo.get("/health"))).unwrap();
    assert_eq!(
        (
            health["status"].as_str(),
            health["checks"]["database"].as_str()
        ),
        (Some("healthy"), Some("up"))
    );
}

#[test]
fn migrations_run_once_even_when_two_instances_start_at_once() {
    let server = shared();
    let url = fresh_database(server);
    let (d1, d2) = (temp_dir("pg-demo-mig-a"), temp_dir("pg-demo-mig-b"));
    let (u1, u2) = (url.clone(), url.clone());
    let a =
        std::thread::spawn(move || Demo::start(&d1, &["--database", &u1, "--log-level", "warn"]));
    let b =
        std::thread::spawn(move || Demo::start(&d2, &["--database", &u2, "--log-level", "warn"]));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!(
        psql_in(
            server,
            &url,
            "SELECT string_agg(version::text, ',') FROM schema_migrations"
        ),
        "1"
    );
    assert_eq!(psql_in(server, &url, "SELECT count(*) FROM users"), "100");
    // A third start finds everything applied and changes nothing.
    let c = Demo::start(
        &temp_dir("pg-demo-mig-c"),
        &["--database", &url, "--log-level", "warn"],
    );
    assert_eq!(
        psql_in(server, &url, "SELECT count(*) FROM schema_migrations"),
        "1"
    );
    for d in [&a, &b, &c] {
        assert_eq!(status_of(&d.get("/api/users/1")), "HTTP/1.1 200 OK");
    }
}

#[test]
fn two_instances_share_the_outbox_and_the_restaurant_sees_each_key_once() {
    let server = shared();
    let url = fresh_database(server);
    // B's notifications go to A's embedded restaurant, as A's do: one receiver.
    let a = Demo::start(
        &temp_dir("pg-demo-two-a"),
        &["--database", &url, "--log-level", "warn"],
    );
    let restaurant = format!("http://{}/restaurant", a.addr);
    let a_url = [
        "--database",
        &url,
        "--notify-url",
        &restaurant,
        "--log-level",
        "warn",
    ];
    let b = Demo::start(&temp_dir("pg-demo-two-b"), &a_url);
    let mut ids = HashSet::new();
    for n in 0..60 {
        let d = if n % 2 == 0 { &a } else { &b };
        let r = d.post("/api/orders", &order_body(n));
        assert_eq!(status_of(&r), "HTTP/1.1 201 Created", "{r}");
        let v: Value = serde_json::from_str(body_of(&r)).unwrap();
        assert!(
            ids.insert(v["id"].as_i64().unwrap()),
            "ids are unique across instances: {r}"
        );
    }
    let all = || {
        psql_in(
            server,
            &url,
            "SELECT count(*) FROM outbox WHERE state = 'delivered'",
        ) == "60"
    };
    assert!(
        eventually(Duration::from_secs(30), all),
        "not all delivered"
    );
    let summary: Value = serde_json::from_str(body_of(&a.get("/restaurant/orders"))).unwrap();
    assert_eq!(
        (summary["unique"].as_u64(), summary["duplicates"].as_u64()),
        (Some(60), Some(0)),
        "{summary}"
    );
    // Both instances' orders are readable from either.
    for id in ids.iter().take(6) {
        let r = b.get(&format!("/api/orders/{id}"));
        assert_eq!(status_of(&r), "HTTP/1.1 200 OK", "{r}");
    }
}

#[test]
fn the_database_down_answers_503_with_retry_after_and_everything_resumes() {
    let server = PgServer::start();
    let url = server.tcp_url.clone();
    let demo = Demo::start(
        &temp_dir("pg-demo-down"),
        &["--database", &url, "--log-level", "error"],
    );
    let r = demo.post("/api/orders", &order_body(0));
    assert_eq!(status_of(&r), "HTTP/1.1 201 Created", "{r}");
    server.stop();
    // Orders: 503 with Retry-After, in a bounded time (the pool's timeouts),
    // never a hang or a 500.
    let started = Instant::now();
    let r = demo.post("/api/orders", &order_body(1));
    let took = started.elapsed();
    assert_eq!(status_of(&r), "HTTP/1.1 503 Service Unavailable", "{r}");
    assert!(r.to_ascii_lowercase().contains("\r\nretry-after: "), "{r}");
    assert!(body_of(&r).contains("the database is unavailable"), "{r}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Health says so at once, without waiting for the database.
    let started = Instant::now();
    let health: Value = serde_json::from_str(body_of(&demo.get("/health"))).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        (
            health["status"].as_str(),
            health["checks"]["database"].as_str()
        ),
        (Some("degraded"), Some("down"))
    );
    // Back: orders are taken again, without a restart of the demo.
    server.start_again();
    let taken = eventually(Duration::from_secs(20), || {
        status_of(&demo.post("/api/orders", &order_body(2))) == "HTTP/1.1 201 Created"
    });
    assert!(taken, "orders were not taken again");
    let all = || {
        let r = demo.get("/restaurant/orders");
        serde_json::from_str::<Value>(body_of(&r))
            .map(|s| s["unique"].as_u64() >= Some(2))
            .unwrap_or(false)
    };
    assert!(
        eventually(Duration::from_secs(20), all),
        "deliveries did not resume"
    );
    let health: Value = serde_json::from_str(body_of(&demo.get("/health"))).unwrap();
    assert_eq!(health["status"], "healthy");
}

/// Subscribes `ws` to order `id`, again every 50 ms while the instance
/// says live updates are not available (its listener not LISTENing yet,
/// or not again); the first message of the subscription.
fn subscribe_when_live(ws: &mut ws_client::Ws, id: u64) -> Option<Value> {
    let subscribe = ws_client::frame(0x81, format!("{{\"subscribe\": {id}}}").as_bytes(), true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        ws.send(&subscribe);
        let (_, payload) = ws.recv();
        let m: Value = serde_json::from_slice(&payload).unwrap();
        match m["error"].as_str() {
            None => return Some(m),
            Some(e) => assert!(e.contains("not available"), "{m}"),
        }
        assert!(
            Instant::now() < deadline,
            "live updates never became available"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A demo instance on `url` notifying the restaurant at `notify`.
fn tracked_instance(url: &str, notify: &str, name: &str) -> Demo {
    Demo::start(
        &temp_dir(name),
        &[
            "--database",
            url,
            "--notify-url",
            notify,
            "--log-level",
            "warn",
        ],
    )
}

/// `GET /api/orders/{id}/events` on a fresh connection to `addr`, with
/// `extra` header lines.
fn subscribe_sse(addr: std::net::SocketAddr, id: u64, extra: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!("GET /api/orders/{id}/events HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes(),
    )
    .unwrap();
    s
}

/// Reads an SSE stream to its end: its events' ids, and its body.
fn sse_ids(s: std::net::TcpStream) -> (Vec<String>, String) {
    let raw = util::Client::from_stream(s).read_through(b"\r\n0\r\n\r\n");
    let body =
        String::from_utf8(util::decode_chunked(raw.split_once("\r\n\r\n").unwrap().1)).unwrap();
    let ids = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(str::to_owned)
        .collect();
    (ids, body)
}

/// Live tracking on PostgreSQL: an order placed on one instance is
/// followed on the other, over a WebSocket and over SSE; each gets saved,
/// responded and notified exactly once and in order (the delivery is made
/// by whichever instance claims it: NOTIFY reaches both). A subscriber
/// that comes after the end gets the steps so far and its stream ends;
/// an unknown order is said to be unknown.
#[test]
fn orders_are_tracked_live_across_instances() {
    let server = shared();
    let url = fresh_database(server);
    let (mut sim, sim_addr) = demo::slow_restaurant(1500);
    let notify = format!("http://{sim_addr}");
    let a = tracked_instance(&url, &notify, "pg-live-a");
    let b = tracked_instance(&url, &notify, "pg-live-b");
    let id = *a.post_orders(1).iter().next().unwrap();
    // Over a WebSocket on B (once B listens: until then it says so).
    let mut ws = ws_client::Ws::open_with(b.addr, "/ws/orders", &[]);
    let mut first = subscribe_when_live(&mut ws, id);
    // Over SSE on B too.
    let sse = subscribe_sse(b.addr, id, "");
    let mut steps = Vec::new();
    let mut messages = Vec::new();
    while steps.last().map(String::as_str) != Some("notified") {
        let m: Value = first.take().unwrap_or_else(|| {
            let (b0, payload) = ws.recv();
            assert_eq!(b0, 0x81);
            serde_json::from_slice(&payload).unwrap()
        });
        assert_eq!(m["order"], id, "{m}");
        if m["event"] == "step" {
            steps.push(m["step"].as_str().unwrap().to_owned());
            assert_eq!(m["id"].as_u64(), Some(steps.len() as u64), "{m}");
        } else {
            assert_eq!(m["event"], "delivery", "{m}");
        }
        messages.push(m);
    }
    assert_eq!(steps, ["saved", "responded", "notified"], "{messages:?}");
    assert_eq!(messages.last().unwrap()["notification"], "delivered");
    // The SSE stream: the same steps with their ids, then its end.
    let (ids, body) = sse_ids(sse);
    assert_eq!(ids, ["1", "2", "3"], "{body}");
    assert!(body.contains("\"step\":\"notified\""), "{body}");
    // After the end: the steps so far, then the stream ends at once.
    let (ids, body) = sse_ids(subscribe_sse(a.addr, id, "Last-Event-ID: 1\r\n"));
    assert_eq!(ids, ["2", "3"], "{body}");
    // An unknown order, on the same WebSocket.
    ws.send(&ws_client::frame(0x81, b"{\"subscribe\": 987654}", true));
    let (_, payload) = ws.recv();
    assert_eq!(
        serde_json::from_slice::<Value>(&payload).unwrap()["error"],
        "order 987654 not found"
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

/// The listening connection lost (its backend terminated): what NOTIFY
/// sent meanwhile is unknown, so a subscriber is told to subscribe again,
/// and doing so gets the order's steps, to its end.
#[test]
fn a_lost_listener_ends_subscriptions_saying_so() {
    let server = shared();
    let url = fresh_database(server);
    let (mut sim, sim_addr) = demo::slow_restaurant(3000);
    let notify = format!("http://{sim_addr}");
    let a = tracked_instance(&url, &notify, "pg-live-lost");
    let id = *a.post_orders(1).iter().next().unwrap();
    let mut ws = ws_client::Ws::open_with(a.addr, "/ws/orders", &[]);
    let next = |ws: &mut ws_client::Ws| -> Value {
        let (_, payload) = ws.recv();
        serde_json::from_slice(&payload).unwrap()
    };
    assert_eq!(subscribe_when_live(&mut ws, id).unwrap()["step"], "saved");
    assert_eq!(next(&mut ws)["step"], "responded");
    let killed = psql_in(
        server,
        &url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE query LIKE 'LISTEN%' AND datname = current_database()",
    );
    assert_eq!(killed, "1");
    // Delivery states may come first; then the interruption is said.
    let said = loop {
        let m = next(&mut ws);
        if m.get("error").is_some() {
            break m;
        }
        assert_eq!(m["event"], "delivery", "{m}");
    };
    assert_eq!(said["order"], id);
    assert!(
        said["error"].as_str().unwrap().contains("subscribe again"),
        "{said}"
    );
    // Subscribing again gets the steps and then the end, once the
    // listener is back (within its backoff); until then the subscription
    // is refused with a reason, never taken and left silent.
    let mut steps = Vec::new();
    let m = subscribe_when_live(&mut ws, id).unwrap();
    if m["event"] == "step" {
        steps.push(m["step"].as_str().unwrap().to_owned());
    }
    while steps.last().map(String::as_str) != Some("notified") {
        let m = next(&mut ws);
        if m["event"] == "step" {
            steps.push(m["step"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(steps, ["saved", "responded", "notified"]);
    let _ = sim.kill();
    let _ = sim.wait();
}
