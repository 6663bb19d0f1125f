//! The restaurant notification travels: a webhook from the demo's outbox
//! to a real receiver (the embedded one, `restaurant-sim`, or a scripted
//! server writing exact bytes), through a restaurant that is down, slow,
//! refusing or answering garbage, and through a SIGKILL of the demo. The
//! receiver acts on each order's key once.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo::Demo;
use serde_json::Value;
use util::{body_of, temp_dir};

/// A restaurant-sim child process; killed on drop.
struct Sim {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_restaurant-sim"))
            .args(["--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting restaurant-sim");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines
            .next()
            .expect("restaurant-sim printed its address")
            .unwrap();
        let addr = line
            .strip_prefix("restaurant-sim listening on http://")
            .expect("its address line")
            .parse()
            .unwrap();
        std::thread::spawn(move || for _ in lines {});
        Sim { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// (received, unique, duplicates); zeros while it refuses connections.
    fn stats(&self) -> (u64, u64, u64) {
        let Ok(mut s) = TcpStream::connect(self.addr) else {
            return (0, 0, 0);
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return (0, 0, 0);
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let Ok(v) = serde_json::from_str::<Value>(body_of(&out)) else {
            return (0, 0, 0);
        };
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        (n("received"), n("unique"), n("duplicates"))
    }

    fn admin(&self, body: &str) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "POST /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `secs` for `done`; panics with `what` otherwise.
fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn order_state(demo: &Demo, id: u64) -> Value {
    let r = demo.get(&format!("/api/orders/{id}"));
    serde_json::from_str(body_of(&r)).unwrap_or(Value::Null)
}

#[test]
fn orders_reach_the_embedded_restaurant_once_each() {
    let data = temp_dir("notify-embedded");
    let demo = Demo::start(&data, &[]);
    let ids = demo.post_orders(20);
    wait_until(20, "20 deliveries", || {
        let r = demo.get("/restaurant/orders");
        let v: Value = serde_json::from_str(body_of(&r)).unwrap();
        v["unique"] == 20
    });
    let r = demo.get("/restaurant/orders");
    let v: Value = serde_json::from_str(body_of(&r)).unwrap();
    assert_eq!(
        (v["received"].as_u64(), v["duplicates"].as_u64()),
        (Some(20), Some(0))
    );
    for &id in &ids {
        wait_until(10, "the delivery record", || {
            order_state(&demo, id)["notification"] == "delivered"
        });
        let o = order_state(&demo, id);
        assert_eq!(o["notification_attempts"], 1);
        assert_eq!(
            o["timeline"],
            serde_json::json!(["saved", "responded", "notified"])
        );
    }
    assert_eq!(demo.metric("phaseloop_notifications_delivered_total").0, 20);
    assert_eq!(
        demo.metric("phaseloop_notification_delivery_seconds_count")
            .0,
        20
    );
}

#[test]
fn a_restaurant_down_opens_the_breaker_and_every_order_arrives_once_when_it_is_back() {
    let sim = Sim::start(&["--refuse-ms", "3000"]);
    let data = temp_dir("notify-down");
    let url = sim.url();
    let demo = Demo::start(
        &data,
        &["--notify-url", &url, "--breaker-cool-down-ms", "500"],
    );
    // Orders while the restaurant refuses connections: each is accepted.
    let ids = demo.post_orders(40);
    let health = demo.get("/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let (opened, m) = demo.metric("phaseloop_notification_breaker_opened_total");
    assert!(opened >= 1, "the breaker opened:\n{m}");
    // No storm: failed attempts are the few before the breaker opened and
    // one probe per cool-down, far fewer than the orders.
    let (retries, m) = demo.metric("phaseloop_notification_retries_total");
    assert!(
        retries < 40,
        "{retries} failed attempts for 40 orders:\n{m}"
    );
    // Back after 3 s: all delivered, each key acted on once.
    wait_until(30, "40 deliveries after the restaurant is back", || {
        sim.stats().1 == 40
    });
    let (received, unique, duplicates) = sim.stats();
    assert_eq!((unique, duplicates), (40, received - 40));
    assert_eq!(duplicates, 0, "nothing was both received and failed");
    for &id in &ids {
        wait_until(10, "the delivery record", || {
            order_state(&demo, id)["notification"] == "delivered"
        });
    }
    assert_eq!(demo.metric("phaseloop_notification_breaker_state").0, 0);
}

#[test]
fn after_a_sigkill_every_acknowledged_order_is_delivered() {
    // A slow restaurant: deliveries are in flight when the demo dies.
    let sim = Sim::start(&["--delay-ms", "300"]);
    let data = temp_dir("notify-kill");
    let url = sim.url();
    let mut demo = Demo::start(&data, &["--notify-url", &url]);
    let ids = demo.post_orders(30);
    demo.kill();
    let (received_before, _, _) = sim.stats();
    assert!(
        received_before < 30,
        "the kill came before every delivery ({received_before})"
    );
    let demo = Demo::start(&data, &["--notify-url", &url]);
    wait_until(30, "every order delivered after the restart", || {
        sim.stats().1 == 30
    });
    // At least once: a delivery whose answer the killed demo never read
    // comes again, and the key makes it a repeat the restaurant drops.
    let (received, unique, duplicates) = sim.stats();
    assert_eq!(unique, 30);
    assert_eq!(received, unique + duplicates);
    for &id in &ids {
        wait_until(10, "the delivery record", || {
            order_state(&demo, id)["notification"] == "delivered"
        });
    }
    // Delivered notifications are not sent again by a second restart.
    drop(demo);
    let _demo = Demo::start(&data, &["--notify-url", &url]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim.stats().0, received);
}

/// A scripted restaurant: answers the webhooks it gets, one connection
/// each (`Connection: close` or not), with `answers` in turn, then 200s.
/// Records when each request came.
fn scripted(answers: Vec<&'static [u8]>) -> (SocketAddr, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut byte = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                buf.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&buf).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = s.read_exact(&mut body);
            seen.lock().unwrap().push(Instant::now());
            let answer = answers
                .next()
                .unwrap_or(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(answer);
            // The connection ends with the answer (a truncated one too).
        }
    });
    (addr, times)
}

#[test]
fn bad_responses_fail_the_attempt_and_it_is_tried_again() {
    let filler: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nX-Filler: {}\r\n\r\n",
            "y".repeat(70 * 1024)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let (addr, times) = scripted(vec![
        b"this is not http\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        filler,
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ]);
    let data = temp_dir("notify-bad");
    let url = format!("http://{addr}");
    let demo = Demo::start(&data, &["--notify-url", &url]);
    let ids = demo.post_orders(1);
    let id = *ids.iter().next().unwrap();
    wait_until(30, "delivery after four bad answers", || {
        order_state(&demo, id)["notification"] == "delivered"
    });
    let o = order_state(&demo, id);
    assert_eq!(o["notification_attempts"], 5);
    assert_eq!(times.lock().unwrap().len(), 5);
    assert_eq!(demo.metric("phaseloop_notification_retries_total").0, 4);
    assert!(demo.get("/health").starts_with("HTTP/1.1 200"));
    // The attempts are on disk: the notification journal says why each failed.
    let notes = std::fs::read_to_string(data.join("notifications.log")).unwrap();
    for reason in [
        "malformed response head",
        "closed inside the response body",
        "too large",
        "status 503",
    ] {
        assert!(notes.contains(reason), "{reason} in:\n{notes}");
    }
}

#[test]
fn a_refusal_is_final_and_retry_after_is_honoured() {
    let (addr, times) = scripted(vec![
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 422 Unprocessable Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ]);
    let data = temp_dir("notify-refused");
    let url = format!("http://{addr}");
    let demo = Demo::start(&data, &["--notify-url", &url]);
    let first = *demo.post_orders(1).iter().next().unwrap();
    wait_until(20, "the first order's delivery", || {
        order_state(&demo, first)["notification"] == "delivered"
    });
    {
        let t = times.lock().unwrap();
        // Retry-After: 1 (a second), not the first backoff's 100 ms.
        assert!(
            t[1] - t[0] >= Duration::from_millis(990),
            "{:?}",
            t[1] - t[0]
        );
    }
    let second = *demo.post_orders(1).iter().next().unwrap();
    wait_until(20, "the second order's refusal", || {
        order_state(&demo, second)["notification"] == "failed"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        times.lock().unwrap().len(),
        3,
        "a refusal is not tried again"
    );
    assert_eq!(demo.metric("phaseloop_notification_failures_total").0, 1);
    let o = order_state(&demo, second);
    assert_eq!(
        o["timeline"],
        serde_json::json!(["saved", "responded", "notification failed"])
    );
}

#[test]
fn a_slow_restaurant_does_not_slow_the_loop() {
    let sim = Sim::start(&["--delay-ms", "2000"]);
    let data = temp_dir("notify-slow");
    let url = sim.url();
    let demo = Demo::start(&data, &["--notify-url", &url]);
    demo.post_orders(10);
    // The deliveries wait two seconds for their answers; meanwhile the
    // loop serves other routes: 200 requests before any delivery lands.
    let mut c = demo.connect();
    for _ in 0..200 {
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(c.response().starts_with("HTTP/1.1 200"));
    }
    let (received, _, _) = sim.stats();
    // The sim counts a webhook when it answers it, after its delay.
    assert_eq!(received, 0, "no delivery answered yet");
    wait_until(30, "the slow deliveries", || sim.stats().1 == 10);
    sim.admin(r#"{"delay_ms":0}"#);
}
