//! The load generator against the floor server: exact request counts, zero
//! errors when all is well, loud errors (and exit code 3) when responses
//! are wrong, constant-rate pacing, and its output files.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Floor {
    child: Child,
    port: u16,
}

impl Floor {
    fn start() -> Floor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_floor"))
            .arg("0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the floor server");
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        Floor { child, port }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phaseloop-load"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn json_field(json: &str, key: &str) -> f64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
        + key.len()
        + 3;
    json[at..]
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn counts_exactly_and_reports_no_errors() {
    let floor = Floor::start();
    let dir = std::env::temp_dir().join(format!("phaseloop-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, hdr, svg) = (dir.join("r.json"), dir.join("r.hdr"), dir.join("r.svg"));
    let url = format!("http://127.0.0.1:{}/plaintext", floor.port);
    let (code, out) = load(&[
        "-c",
        "20",
        "-p",
        "4",
        "-n",
        "5000",
        "--expect-body",
        "Hello, World!",
        "--json",
        json.to_str().unwrap(),
        "--hdr",
        hdr.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("requests  5000 ") && out.contains("errors    none"),
        "{out}"
    );
    let j = std::fs::read_to_string(&json).unwrap();
    assert_eq!(json_field(&j, "requests"), 5000.0);
    assert_eq!(json_field(&j, "total"), 0.0);
    assert!(std::fs::read_to_string(&hdr)
        .unwrap()
        .contains("1/(1-Percentile)"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_bodies_and_statuses_are_errors() {
    let floor = Floor::start();
    let url = format!("http://127.0.0.1:{}/", floor.port);
    let (code, out) = load(&[
        "-c",
        "5",
        "-n",
        "100",
        "--expect-body",
        "something else",
        &url,
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("ERRORS    100: ") && out.contains("bad body 100"),
        "{out}"
    );
    let (code, out) = load(&["-c", "5", "-n", "50", "--expect-status", "404", &url]);
    assert_eq!(code, 3);
    assert!(
        out.contains("bad status 50") && out.contains("(statuses 200: 50)"),
        "{out}"
    );
    // Nothing listening: connect errors.
    let (code, out) = load(&["-c", "3", "-d", "0.3", "http://127.0.0.1:9/"]);
    assert_eq!(code, 3);
    assert!(!out.contains("connect 0,"), "{out}");
}

#[test]
fn constant_rate_paces_requests() {
    let floor = Floor::start();
    let url = format!("http://127.0.0.1:{}/", floor.port);
    let (code, out) = load(&["-c", "10", "-r", "2000", "-d", "1", &url]);
    assert_eq!(code, 0, "{out}");
    let n: u64 = out
        .split("requests  ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1800..=2001).contains(&n),
        "about 2000 requests in 1 s at 2000/s, got {n}\n{out}"
    );
    assert!(out.contains("constant rate 2000/s"));
}
