//! `serve()` and `serve_cluster()` drain on SIGTERM/SIGINT and return; a
//! second signal stops at once. The server runs in a child process, so
//! the signals reach nothing else: this test binary again, which serves
//! when started with the child's environment. Its own `main` (Cargo.toml:
//! `harness = false`) runs the cases one after another.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use phaseloop::App;

const PORT_VAR: &str = "PHASELOOP_SIGNALS_CHILD_PORT";
const MODE_VAR: &str = "PHASELOOP_SIGNALS_CHILD_MODE";

/// What the child serves: `/slow?ms=N` answers after N ms.
fn app() -> App {
    App::new()
        .get("/", |_, _| "up")
        .get_with("/slow", |lp, req, res| {
            let ms = req.query_as("ms").ok().flatten().unwrap_or(500);
            lp.set_timeout(Duration::from_millis(ms), move |_| {
                res.text(200, "slow done")
            });
        })
}

/// The child: serves until a signal, then exits 0 if `serve` returned Ok.
fn serve_as_child(port: u16) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    match std::env::var(MODE_VAR).as_deref() {
        Ok("cluster") => phaseloop::serve_cluster(addr, |_, _| app()).unwrap(),
        _ => phaseloop::serve(addr, app()).unwrap(),
    }
    println!("child: serve returned");
}

struct ServingChild {
    child: Child,
    addr: SocketAddr,
}

impl ServingChild {
    fn start(mode: &str) -> ServingChild {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(std::env::current_exe().unwrap())
            .env(PORT_VAR, port.to_string())
            .env(MODE_VAR, mode)
            .spawn()
            .unwrap();
        let addr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "child never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ServingChild { child, addr }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the child to end, for at most `limit`.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A request sent and left in flight.
    fn in_flight(&self, path: &str) -> TcpStream {
        let mut c = TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        c
    }
}

impl Drop for ServingChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drains_then_returns(mode: &str, signal: &str) {
    let mut child = ServingChild::start(mode);
    let mut slow = child.in_flight("/slow?ms=600");
    // The request is being handled once the server has read it: a
    // second request on another connection answered shows the loop ran.
    let mut probe = child.in_flight("/");
    let mut answer = [0u8; 256];
    assert!(probe.read(&mut answer).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(50));
    child.signal(signal);
    let mut response = String::new();
    slow.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("Connection: close\r\n"), "{response}");
    assert!(response.ends_with("slow done"), "{response}");
    let status = child.wait(Duration::from_secs(20)).expect("the child ends");
    assert!(status.success(), "serve returned Ok: {status:?}");
}

fn serve_drains_on_sigterm_and_returns() {
    drains_then_returns("single", "TERM");
}

fn serve_drains_on_sigint_and_returns() {
    drains_then_returns("single", "INT");
}

fn serve_cluster_drains_on_sigterm_and_returns() {
    drains_then_returns("cluster", "TERM");
}

fn a_second_signal_stops_at_once() {
    let mut child = ServingChild::start("single");
    // Far longer than any wait below: it never answers.
    let mut slow = child.in_flight("/slow?ms=60000");
    let mut probe = child.in_flight("/");
    let mut answer = [0u8; 256];
    assert!(probe.read(&mut answer).unwrap() > 0);
    child.signal("INT");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.wait(Duration::ZERO).is_none(),
        "still draining after one"
    );
    child.signal("INT");
    let status = child
        .wait(Duration::from_secs(20))
        .expect("the second signal stops it, before the slow answer");
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "no answer: {}",
        String::from_utf8_lossy(&rest)
    );
}

fn main() {
    if let Ok(port) = std::env::var(PORT_VAR) {
        return serve_as_child(port.parse().expect("a port"));
    }
    let cases: [(&str, fn()); 4] = [
        (
            "serve_drains_on_sigterm_and_returns",
            serve_drains_on_sigterm_and_returns,
        ),
        (
            "serve_drains_on_sigint_and_returns",
            serve_drains_on_sigint_and_returns,
        ),
        (
            "serve_cluster_drains_on_sigterm_and_returns",
            serve_cluster_drains_on_sigterm_and_returns,
        ),
        (
            "a_second_signal_stops_at_once",
            a_second_signal_stops_at_once,
        ),
    ];
    // `cargo test -- NAME` filters, as with the standard harness.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, case) in cases {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            case();
            println!("test {name} ... ok");
        }
    }
}
