//! Every journal in a data directory is recovered whatever `--loops` or
//! `--workers` a restart uses: orders saved by 2 loops are found by 1, by
//! 4, by 2 worker processes and by 1 loop again; ids stay unique, and each
//! order has exactly one notification across all the journals.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use demo::Demo;
use util::{body_of, status_of, temp_dir};

/// The order ids on every notification journal of `dir`, with their counts.
fn notifications(dir: &std::path::Path) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("notifications") && name.ends_with(".log")) {
            continue;
        }
        for line in std::fs::read(entry.path()).unwrap().split(|b| *b == b'\n') {
            if let Some(v) = line
                .get(17..)
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            {
                *counts.entry(v["order_id"].as_u64().unwrap()).or_default() += 1;
            }
        }
    }
    counts
}

/// Waits until every order in `ids` shows as delivered, then checks that
/// each has exactly one notification on disk.
fn all_found_and_notified_once(demo: &Demo, ids: &HashSet<u64>, mode: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in ids {
        loop {
            let r = demo.get(&format!("/api/orders/{id}"));
            assert_eq!(status_of(&r), "HTTP/1.1 200 OK", "{mode}: order {id}: {r}");
            if body_of(&r).contains(r#""notification":"delivered""#) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: order {id} not notified: {r}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let notes = notifications(&demo.data_dir);
    for id in ids {
        assert_eq!(
            notes.get(id),
            Some(&1),
            "{mode}: notifications of order {id}"
        );
    }
}

#[test]
fn orders_survive_every_change_of_loops_and_workers() {
    let dir = temp_dir("modes");
    let mut all = HashSet::new();
    let modes: [&[&str]; 5] = [
        &["--loops", "2"],
        &[],
        &["--loops", "4"],
        &["--workers", "2"],
        &[],
    ];
    for mode in modes {
        let name = format!("{mode:?}");
        let mut demo = Demo::start(&dir, mode);
        all_found_and_notified_once(&demo, &all, &name);
        let new = demo.post_orders(40);
        let max_before = all.iter().copied().max().unwrap_or(0);
        for id in &new {
            assert!(*id > max_before, "{name}: id {id} not above {max_before}");
            assert!(all.insert(*id), "{name}: id {id} reused");
        }
        all_found_and_notified_once(&demo, &all, &name);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(demo.child.id() as i32, libc::SIGTERM) };
        let _ = demo.child.wait();
    }
    assert_eq!(all.len(), 200);
    std::fs::remove_dir_all(&dir).ok();
}
