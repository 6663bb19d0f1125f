//! The demo-api binary as a child process, for the demo's tests (the
//! generic helpers are the server's, `server/tests/util`).
#![allow(dead_code)] // each test binary uses a part

use std::net::SocketAddr;

use std::time::Duration;

use crate::util::{body_of, status_of, Client};

/// The demo-api binary running as a child process on a free port with its
/// own data directory; killed on drop.
pub struct Demo {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub data_dir: std::path::PathBuf,
}

impl Demo {
    pub fn start(data_dir: &std::path::Path, extra: &[&str]) -> Demo {
        Self::start_with(data_dir, extra, "")
    }

    /// Starts it through `sh -c '<prefix>; exec demo-api ...'` (e.g. a ulimit).
    pub fn start_with(data_dir: &std::path::Path, extra: &[&str], shell_prefix: &str) -> Demo {
        Self::start_configured(data_dir, extra, shell_prefix, |_| {})
    }

    /// [`Demo::start_with`], the command first given to `configure` (an
    /// environment, stderr piped).
    pub fn start_configured(
        data_dir: &std::path::Path,
        extra: &[&str],
        shell_prefix: &str,
        configure: impl FnOnce(&mut std::process::Command),
    ) -> Demo {
        use std::io::BufRead;
        let bin = env!("CARGO_BIN_EXE_demo-api");
        let mut cmd = if shell_prefix.is_empty() {
            std::process::Command::new(bin)
        } else {
            let mut c = std::process::Command::new("sh");
            c.arg("-c")
                .arg(format!("{shell_prefix} && exec \"$0\" \"$@\""))
                .arg(bin);
            c
        };
        cmd.args(["--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("starting demo-api");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("demo-api printed its address").unwrap();
            let rest = line
                .strip_prefix("demo-api listening on http://")
                .or_else(|| line.strip_prefix("demo-api listening on https://"));
            if let Some(rest) = rest {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Demo {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The value of an unlabelled metric in `/metrics`, and the whole text
    /// (for a failing assertion's message).
    pub fn metric(&self, name: &str) -> (u64, String) {
        let m = self.get("/metrics");
        let prefix = format!("{name} ");
        let value = body_of(&m)
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{m}"))
            .parse()
            .unwrap();
        (value, m)
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One request on a fresh connection; returns the whole response.
    pub fn request(&self, raw: &str) -> String {
        let mut c = self.connect();
        c.send(raw.as_bytes());
        c.response()
    }

    pub fn get(&self, path: &str) -> String {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    pub fn post(&self, path: &str, body: &str) -> String {
        self.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// Places `n` orders, each on a fresh connection; asserts each is
    /// 201 Created with an id no other order got, and returns the ids.
    pub fn post_orders(&self, n: usize) -> std::collections::HashSet<u64> {
        let mut ids = std::collections::HashSet::new();
        for n in 0..n {
            let r = self.post(
                "/api/orders",
                &format!(
                    r#"{{"restaurant_id":1,"customer":"c{n}","items":[{{"name":"x","qty":1}}]}}"#
                ),
            );
            assert_eq!(status_of(&r), "HTTP/1.1 201 Created", "{r}");
            let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
            assert!(ids.insert(v["id"].as_u64().unwrap()), "duplicate id in {r}");
        }
        ids
    }

    /// Puts `clients` requests for /slow (a 3 s timer) in flight, sends
    /// SIGTERM, and checks that every one is answered in full with
    /// `Connection: close` and that the process then exits cleanly.
    pub fn assert_sigterm_drains(&mut self, clients: usize) {
        let mut clients: Vec<Client> = (0..clients).map(|_| self.connect()).collect();
        for c in clients.iter_mut() {
            c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for c in clients.iter_mut() {
            let r = c.response();
            assert_eq!(status_of(&r), "HTTP/1.1 200 OK");
            assert!(
                r.contains("Connection: close\r\n") && body_of(&r) == "Slow response",
                "{r}"
            );
        }
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "exited cleanly after draining: {status:?}"
        );
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A restaurant answering each webhook after `delay_ms`: the order's
/// notification comes after the subscribers are in.
pub fn slow_restaurant(delay_ms: u64) -> (KillOnDrop, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_restaurant-sim"))
        .args(["--port", "0", "--delay-ms", &delay_ms.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("restaurant-sim listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    (KillOnDrop(child), addr)
}

/// A child process killed when the test ends, however it ends (a failed
/// assertion leaves no restaurant-sim running).
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
