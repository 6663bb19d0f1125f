//! demo-api --loops N: loops share the port and the work, order ids stay
//! unique across loops, any loop finds any order, and SIGTERM drains every
//! loop's in-flight requests.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::time::Duration;

use demo::Demo;
use util::{body_of, status_of, temp_dir};

#[test]
fn loops_share_work_and_order_ids_stay_unique() {
    let dir = temp_dir("cluster-orders");
    let demo = Demo::start(&dir, &["--loops", "2"]);
    let ids = demo.post_orders(60);
    std::thread::sleep(Duration::from_millis(200));
    for id in &ids {
        let r = demo.get(&format!("/api/orders/{id}"));
        assert_eq!(
            status_of(&r),
            "HTTP/1.1 200 OK",
            "order {id} from whichever loop answers: {r}"
        );
        assert!(body_of(&r).contains(r#""notification":"delivered""#));
    }
    // Both loops took connections (each request above used a new one).
    std::thread::sleep(Duration::from_millis(700));
    let m = demo.get("/metrics");
    let per_loop: Vec<u64> = body_of(&m)
        .lines()
        .filter_map(|l| l.strip_prefix("phaseloop_loop_requests_total{loop=\""))
        .map(|l| l.split("} ").nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(per_loop.len(), 2, "{m}");
    assert!(
        per_loop.iter().all(|n| *n > 0),
        "both loops served requests: {per_loop:?}"
    );
    // Restarted with one loop, new ids still never collide with old ones.
    drop(demo);
    let demo = Demo::start(&dir, &[]);
    let r = demo.post(
        "/api/orders",
        r#"{"restaurant_id":1,"customer":"after","items":[{"name":"x","qty":1}]}"#,
    );
    let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
    assert!(v["id"].as_u64().unwrap() > *ids.iter().max().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_drains_every_loop() {
    let dir = temp_dir("cluster-sigterm");
    let mut demo = Demo::start(&dir, &["--loops", "2"]);
    demo.assert_sigterm_drains(12);
    std::fs::remove_dir_all(&dir).ok();
}
