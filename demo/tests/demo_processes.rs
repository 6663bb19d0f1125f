//! demo-api --workers N (process mode): worker processes share the port,
//! order ids stay unique across processes, a killed worker is restarted
//! while the others keep serving, and SIGTERM drains every worker.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use demo::Demo;
use util::{body_of, status_of, temp_dir, Client};

/// The pids of `parent`'s child processes.
fn children(parent: u32) -> HashSet<u32> {
    let mut out = HashSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Zombies (state Z) are children that already ended.
        if fields[1].parse::<u32>() == Ok(parent) && fields[0] != "Z" {
            out.insert(pid);
        }
    }
    out
}

#[test]
fn workers_share_the_port_and_order_ids() {
    let dir = temp_dir("procs-orders");
    let demo = Demo::start(&dir, &["--workers", "2"]);
    assert_eq!(children(demo.child.id()).len(), 2);
    let ids = demo.post_orders(40);
    // Both workers took orders (ids are their slot modulo 2).
    assert!(
        ids.iter().any(|i| i % 2 == 0) && ids.iter().any(|i| i % 2 == 1),
        "{ids:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    for id in &ids {
        let r = demo.get(&format!("/api/orders/{id}"));
        assert_eq!(
            status_of(&r),
            "HTTP/1.1 200 OK",
            "any worker finds order {id}: {r}"
        );
        assert!(body_of(&r).contains(r#""notification":"delivered""#), "{r}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_killed_worker_is_restarted_while_the_port_stays_served() {
    let dir = temp_dir("procs-kill");
    let demo = Demo::start(&dir, &["--workers", "2"]);
    let before = children(demo.child.id());
    assert_eq!(before.len(), 2);
    let victim = *before.iter().next().unwrap();
    // SAFETY: kill(2) on a process of our own test.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    // Connections the kernel queued on the victim's listener die with it
    // (that cannot be helped); once it is gone, the port is served by the
    // other worker while the supervisor restarts this one.
    let gone = Instant::now() + Duration::from_secs(5);
    while children(demo.child.id()).contains(&victim) {
        assert!(Instant::now() < gone, "the killed worker did not die");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every request is answered; one retry is allowed, for a connection the
    // kernel queued on the restarted worker's listener in the instant it
    // opened (a client would retry such a reset too).
    let ask = || {
        let mut c = Client::connect(demo.addr);
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.response())).ok()
    };
    let mut retries = 0;
    for _ in 0..20 {
        let r = ask().or_else(|| {
            retries += 1;
            ask()
        });
        assert_eq!(r.as_deref().map(status_of), Some("HTTP/1.1 200 OK"));
    }
    assert!(retries <= 1, "{retries} requests needed a retry");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = children(demo.child.id());
        if now.len() == 2 && !now.contains(&victim) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor did not restart the worker: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_drains_every_worker() {
    let dir = temp_dir("procs-term");
    let mut demo = Demo::start(&dir, &["--workers", "2"]);
    demo.assert_sigterm_drains(10);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn each_workers_dashboard_lists_every_worker() {
    let dir = temp_dir("procs-dashboard");
    let demo = Demo::start(&dir, &["--workers", "2"]);
    for _ in 0..60 {
        assert_eq!(status_of(&demo.get("/plaintext")), "HTTP/1.1 200 OK");
    }
    // Workers publish twice a second; whichever worker answers lists both,
    // and between them they counted every request (the feed's own too).
    let start = Instant::now();
    loop {
        let feed: serde_json::Value =
            serde_json::from_str(body_of(&demo.get("/_loop/stats.json"))).unwrap();
        let loops = feed["loops"].as_array().cloned().unwrap_or_default();
        let total: u64 = loops.iter().filter_map(|l| l["requests"].as_u64()).sum();
        let indexes: Vec<u64> = loops.iter().filter_map(|l| l["loop"].as_u64()).collect();
        if indexes == [0, 1] && total >= 60 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{feed}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(&dir).ok();
}
