//! A full disk loses no acknowledged order and reuses no id: the outside
//! run's repro, with the kernel's own file-size limit (RLIMIT_FSIZE: a
//! short write, then EFBIG) standing in for a full tmpfs, so it runs
//! without root. Orders are posted until one fails, room is made, more are
//! posted, and a restart must find every acknowledged order as it was.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use demo::Demo;
use util::{body_of, status_of, temp_dir};

/// Sets the file-size limit of process `pid` (ours: a child).
fn limit_file_size(pid: u32, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit(2) on our own child with a valid rlimit; the old
    // limit is not asked for (null).
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn order(n: usize) -> String {
    format!(
        r#"{{"restaurant_id":7,"customer":"full-disk {n}","items":[{{"name":"pho","qty":1}}]}}"#
    )
}

/// Posts order `n`; Some(id) if it was acknowledged.
fn post(demo: &Demo, n: usize) -> Result<u64, String> {
    let r = demo.post("/api/orders", &order(n));
    match status_of(&r) {
        "HTTP/1.1 201 Created" => {
            let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
            Ok(v["id"].as_u64().unwrap())
        }
        _ => Err(r),
    }
}

#[test]
fn a_full_disk_loses_no_acknowledged_order_and_reuses_no_id() {
    let dir = temp_dir("full-disk");
    // An ignored SIGXFSZ stays ignored through exec: past the limit a write
    // fails with EFBIG instead of killing the server.
    let mut demo = Demo::start_with(&dir, &["--log-level", "error"], "trap '' XFSZ");
    let mut acked: HashMap<u64, usize> = HashMap::new();
    let mut n = 0;
    // Room for a few dozen records, then the disk is "full".
    limit_file_size(demo.child.id(), 8 * 1024);
    let mut failed = 0;
    while failed == 0 {
        n += 1;
        assert!(n < 1000, "no order failed on a full disk");
        match post(&demo, n) {
            Ok(id) => assert!(acked.insert(id, n).is_none(), "id {id} given twice"),
            Err(r) => {
                assert!(
                    r.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
                    "{r}"
                );
                assert!(body_of(&r).contains("order not saved"), "{r}");
                failed += 1;
            }
        }
    }
    // More orders on the full disk fail alike; the server stays up.
    for _ in 0..5 {
        n += 1;
        assert!(post(&demo, n).is_err());
    }
    assert!(status_of(&demo.get("/health")) == "HTTP/1.1 200 OK");
    let metrics = demo.get("/metrics");
    assert!(
        body_of(&metrics)
            .lines()
            .any(|l| l.starts_with("phaseloop_journal_write_failures_total ") && !l.ends_with(" 0")),
        "the failures are counted: {metrics}"
    );
    // Room again: the next 300 orders are all acknowledged.
    limit_file_size(demo.child.id(), libc::RLIM_INFINITY);
    for _ in 0..300 {
        n += 1;
        let id = post(&demo, n).unwrap_or_else(|r| panic!("after room was made: {r}"));
        assert!(acked.insert(id, n).is_none(), "id {id} given twice");
    }
    demo.kill();

    let demo = Demo::start(&dir, &["--log-level", "error"]);
    for (id, n) in &acked {
        let r = demo.get(&format!("/api/orders/{id}"));
        assert_eq!(
            status_of(&r),
            "HTTP/1.1 200 OK",
            "acknowledged order {id} after restart: {r}"
        );
        assert!(
            body_of(&r).contains(&format!(r#""customer":"full-disk {n}""#)),
            "order {id} has its own content: {r}"
        );
    }
    // New ids continue above every acknowledged one.
    let max = *acked.keys().max().unwrap();
    for _ in 0..3 {
        n += 1;
        let id = post(&demo, n).unwrap();
        assert!(id > max, "new id {id} not above {max}");
    }
    // Every acknowledged order gets its notification (those the full disk
    // refused are retried, or replayed after the restart).
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in acked.keys() {
        loop {
            let r = demo.get(&format!("/api/orders/{id}"));
            if body_of(&r).contains(r#""notification":"delivered""#) {
                break;
            }
            assert!(Instant::now() < deadline, "order {id} never notified: {r}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(demo);
    std::fs::remove_dir_all(&dir).ok();
}
