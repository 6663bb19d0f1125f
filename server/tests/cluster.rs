//! Multi-loop mode: several loops serve one port through SO_REUSEPORT, each
//! with its own app; their counters merge; shutdown drains every loop.

mod util;

use std::collections::HashMap;
use std::time::Duration;

use phaseloop::{App, Cluster, ServerConfig};
use util::{body_of, Client};

fn start(loops: usize) -> Cluster {
    Cluster::start(
        "127.0.0.1:0".parse().unwrap(),
        loops,
        ServerConfig::default(),
        |_lp, info| {
            let index = info.index;
            App::new()
                .get_with("/", move |_, _, res| res.text(200, format!("loop {index}")))
                .get_with("/slow", move |lp, _, res| {
                    lp.set_timeout(Duration::from_millis(300), move |_| {
                        res.text(200, format!("slow from loop {index}"))
                    });
                })
        },
    )
    .unwrap()
}

#[test]
fn several_loops_serve_one_port() {
    let cluster = start(2);
    assert_eq!(cluster.loops(), 2);
    let mut by_loop: HashMap<String, usize> = HashMap::new();
    let mut clients: Vec<Client> = (0..200)
        .map(|_| Client::connect(cluster.local_addr()))
        .collect();
    for c in clients.iter_mut() {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for c in clients.iter_mut() {
        *by_loop
            .entry(body_of(&c.response()).to_string())
            .or_default() += 1;
    }
    assert_eq!(by_loop.values().sum::<usize>(), 200);
    assert!(
        by_loop.get("loop 0").copied().unwrap_or(0) > 0
            && by_loop.get("loop 1").copied().unwrap_or(0) > 0,
        "{by_loop:?}"
    );
    // The counters of both loops merge (published every 500 ms).
    std::thread::sleep(Duration::from_millis(1200));
    let total = cluster.stats().total();
    assert_eq!(total.requests, 200);
    assert_eq!(total.open, 200);
    let per_loop = cluster.stats().per_loop();
    assert_eq!(per_loop.len(), 2);
    assert_eq!(per_loop[0].requests as usize, by_loop["loop 0"]);
}

#[test]
fn shutdown_drains_in_flight_requests_on_every_loop() {
    let cluster = start(2);
    let addr = cluster.local_addr();
    let mut clients: Vec<Client> = (0..20).map(|_| Client::connect(addr)).collect();
    for c in clients.iter_mut() {
        c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    std::thread::sleep(Duration::from_millis(50));
    let stopper = std::thread::spawn(move || cluster.shutdown(Duration::from_secs(5)));
    let mut loops_seen = std::collections::HashSet::new();
    for c in clients.iter_mut() {
        let r = c.response();
        assert!(r.contains("Connection: close\r\n"), "{r}");
        loops_seen.insert(body_of(&r).to_string());
        assert!(c.closed());
    }
    stopper.join().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens after shutdown"
    );
    assert!(
        loops_seen.len() == 2 || loops_seen.len() == 1,
        "{loops_seen:?}"
    );
}

#[test]
fn the_dashboard_shows_each_loop_as_its_own_series() {
    let cluster = Cluster::start(
        "127.0.0.1:0".parse().unwrap(),
        2,
        ServerConfig::default(),
        |_lp, info| {
            let index = info.index;
            App::new()
                .dashboard("/_loop", phaseloop::DashboardAccess::Loopback)
                .get_with("/", move |_, _, res| res.text(200, format!("loop {index}")))
        },
    )
    .unwrap();
    let mut by_loop = [0u64; 2];
    let mut clients: Vec<Client> = (0..100)
        .map(|_| Client::connect(cluster.local_addr()))
        .collect();
    for c in clients.iter_mut() {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for c in clients.iter_mut() {
        let body = c.response();
        by_loop[usize::from(body_of(&body) == "loop 1")] += 1;
    }
    // Each loop publishes its figures twice a second; any loop's feed
    // lists both.
    std::thread::sleep(Duration::from_millis(1200));
    let mut c = Client::connect(cluster.local_addr());
    c.send(b"GET /_loop/stats.json HTTP/1.1\r\nHost: x\r\n\r\n");
    let feed: serde_json::Value = serde_json::from_str(body_of(&c.response())).unwrap();
    let loops = feed["loops"]
        .as_array()
        .expect("a loops array in cluster mode");
    assert_eq!(loops.len(), 2, "{feed}");
    for (i, l) in loops.iter().enumerate() {
        assert_eq!(l["loop"], i);
        assert_eq!(l["requests"].as_u64(), Some(by_loop[i]), "{feed}");
        assert!(l["delay_p99_ms"].as_f64().is_some(), "{feed}");
    }
}
