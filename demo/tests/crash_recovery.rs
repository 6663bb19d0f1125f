//! Durability beyond the seed: SIGKILL the server while orders are being
//! posted; after a restart every acknowledged order is in the log and has
//! exactly one delivered notification, and a torn log tail never breaks
//! start-up.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo::Demo;
use util::{body_of, status_of, temp_dir, Client};

/// The records of a journal file whose payload parses, as JSON values.
fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        if line.len() < 18 {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line[17..]) else {
            continue;
        };
        out.push(v);
    }
    out
}

#[test]
fn acknowledged_orders_survive_sigkill_with_exactly_one_notification() {
    let dir = temp_dir("crash");
    let mut demo = Demo::start(&dir, &[]);
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let posters: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, addr) = (acked.clone(), stop.clone(), demo.addr);
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let body = format!(r#"{{"restaurant_id":{t},"customer":"c{t}-{n}","items":[{{"name":"x","qty":1}}]}}"#);
                    let req = format!("POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if std::io::Write::write_all(&mut c.stream, req.as_bytes()).is_err() {
                        return;
                    }
                    // A killed server ends the stream: the order was not acked.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.response()));
                    let Ok(r) = r else { return };
                    if status_of(&r) == "HTTP/1.1 201 Created" {
                        let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
                        acked.lock().unwrap().insert(v["id"].as_u64().unwrap());
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    demo.kill(); // SIGKILL, mid-stream
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in posters {
        let _ = p.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 10,
        "only {} orders were acknowledged before the kill",
        acked.len()
    );

    // Tear both logs' tails the way a crash mid-write would.
    for log in ["orders.log", "notifications.log"] {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(log))
            .unwrap();
        std::io::Write::write_all(&mut f, b"0123456789abcdef {\"id\":99999,\"torn").unwrap();
    }

    let demo = Demo::start(&dir, &[]);
    // Every order on disk gets its notification (replayed if the crash ate it).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = demo.get("/metrics");
        let pending = body_of(&m)
            .lines()
            .any(|l| l == "phaseloop_journal_pending 0");
        let orders = records(&dir.join("orders.log"));
        let notes = records(&dir.join("notifications.log"));
        if pending && notes.len() >= orders.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "notifications not replayed in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let orders: HashSet<u64> = records(&dir.join("orders.log"))
        .iter()
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    for id in &acked {
        assert!(
            orders.contains(id),
            "acknowledged order {id} is missing from the log"
        );
        let r = demo.get(&format!("/api/orders/{id}"));
        assert_eq!(status_of(&r), "HTTP/1.1 200 OK");
        assert!(body_of(&r).contains(r#""notification":"delivered""#), "{r}");
    }
    let mut notes: HashMap<u64, usize> = HashMap::new();
    for v in records(&dir.join("notifications.log")) {
        *notes.entry(v["order_id"].as_u64().unwrap()).or_default() += 1;
    }
    for id in &orders {
        assert_eq!(
            notes.get(id),
            Some(&1),
            "order {id} must have exactly one notification"
        );
    }
    assert!(
        !orders.contains(&99999),
        "the torn record was not taken as an order"
    );
    // New orders continue after the highest id on disk.
    let r = demo.post(
        "/api/orders",
        r#"{"restaurant_id":1,"customer":"after","items":[{"name":"x","qty":1}]}"#,
    );
    let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
    assert_eq!(v["id"].as_u64().unwrap(), orders.iter().max().unwrap() + 1);
    std::fs::remove_dir_all(&dir).ok();
}
