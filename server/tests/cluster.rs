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
