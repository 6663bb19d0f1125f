//! Running out of file descriptors (EMFILE) neither spins the CPU nor stops
//! the server: accepting pauses, and once connections close, it serves again.

mod demo;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use std::time::Duration;

use demo::Demo;
use util::{body_of, temp_dir, Client};

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[test]
fn emfile_pauses_accepting_and_recovers() {
    let dir = temp_dir("emfile");
    // 64 descriptors: about a dozen go to the loop, pool, worker and stdio.
    let demo = Demo::start_with(&dir, &[], "ulimit -n 64");
    let pid = demo.child.id();

    let mut clients: Vec<Client> = (0..120).map(|_| Client::connect(demo.addr)).collect();
    for c in clients.iter_mut() {
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    // The first ones are served; the server then runs out of descriptors.
    let mut served = 0;
    for c in clients.iter_mut().take(30) {
        assert_eq!(body_of(&c.response()), "Hello, World!");
        served += 1;
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.3,
        "the server spun while out of descriptors: {used:.2} s of CPU in 1 s"
    );

    // Free descriptors: close the served connections.
    let rest = clients.split_off(served);
    drop(clients);
    for mut c in rest {
        assert_eq!(
            body_of(&c.response()),
            "Hello, World!",
            "a queued connection was served after recovery"
        );
        drop(c); // free its descriptor for the next one in the backlog
    }
    let (pauses, m) = demo.metric("phaseloop_accept_pauses_total");
    assert!(pauses >= 1, "accepting paused at least once:\n{m}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The soft open-files limit is raised to the hard one at start (as Go's
/// runtime does): a server started under the usual soft 1,024 (here 256)
/// may hold as many connections as the hard limit allows, and /metrics says
/// which limit is in force.
#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let dir = temp_dir("nofile");
    let demo = Demo::start_with(&dir, &[], "ulimit -Sn 256");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", demo.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (soft, hard) = (numbers[0], numbers[1]);
    assert_eq!(soft, hard, "soft limit raised to the hard one: {line}");
    let m = demo.get("/metrics");
    assert!(
        body_of(&m)
            .lines()
            .any(|l| l == format!("phaseloop_open_files_limit {hard}")),
        "{m}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
