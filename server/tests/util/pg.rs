//! A real PostgreSQL for the tests: the one `.ci/run` started (its URL in
//! `PHASELOOP_PG_URL`), or a throwaway cluster this process starts from
//! Debian's packages (initdb in a temporary directory, a random port on
//! 127.0.0.1 and a Unix socket), stopped and removed when the process
//! ends, even when a test fails: a watchdog shell waits on a pipe from
//! this process and stops the cluster when the pipe closes.
//!
//! Without PostgreSQL installed, a test that needs it fails with a message
//! saying how to get it: it never passes silently.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The roles every cluster has: a SCRAM one and an md5 one, with passwords.
pub const SCRAM_USER: (&str, &str) = ("scram_user", "scram pass wörd");
pub const MD5_USER: (&str, &str) = ("md5_user", "md5-pass");

/// A running PostgreSQL.
pub struct PgServer {
    /// Superuser over the Unix socket (trust).
    pub url: String,
    /// Superuser over TCP on 127.0.0.1 (trust).
    pub tcp_url: String,
    pub port: u16,
    pub socket_dir: PathBuf,
    bin: PathBuf,
    /// Our own cluster: its data directory and watchdog.
    own: Option<Own>,
}

struct Own {
    dir: PathBuf,
    watchdog: Child,
}

static SHARED: OnceLock<PgServer> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

const MISSING: &str = "PostgreSQL is needed by this test: install Debian's package \
     (`load-tests/pg/cluster.sh install`, which `.ci/run` runs), or start a cluster with \
     `eval \"$(load-tests/pg/cluster.sh start DIR)\"` and export its PHASELOOP_PG_* settings";

/// The server shared by this process's tests.
pub fn shared() -> &'static PgServer {
    SHARED.get_or_init(|| match std::env::var("PHASELOOP_PG_URL") {
        Ok(u) if !u.is_empty() => PgServer::external(),
        _ => PgServer::start(),
    })
}

/// The cluster script (`load-tests/pg/cluster.sh`): one definition of a
/// throwaway cluster for the tests, CI and the load tests.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../load-tests/pg/cluster.sh")
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} ({MISSING})"));
    assert!(
        out.status.success(),
        "{what} failed: {}{} ({MISSING})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs Debian's PostgreSQL once if it is missing (`cluster.sh
/// install`: apt-get, as root or through sudo), so the README's test
/// command works on a fresh machine; if that fails, the test fails saying
/// what to do.
fn ensure_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let present = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.path().join("bin/initdb").exists())
            })
            .unwrap_or(false);
        if !present && std::env::var_os("PHASELOOP_PG_BIN").is_none() {
            eprintln!("PostgreSQL is not installed: installing Debian's package for the tests");
            let status = Command::new("bash").arg(script()).arg("install").status();
            assert!(matches!(status, Ok(s) if s.success()), "{MISSING}");
        }
    });
}

fn cluster(args: &[&str], dir: &Path) -> String {
    run(
        Command::new("bash").arg(script()).args(args).arg(dir),
        &format!("cluster.sh {}", args.join(" ")),
    )
}

impl PgServer {
    fn from_settings(lines: impl Fn(&str) -> Option<String>, own: Option<Own>) -> PgServer {
        let get = |k: &str| lines(k).unwrap_or_else(|| panic!("{k} is not set ({MISSING})"));
        PgServer {
            url: get("PHASELOOP_PG_URL"),
            tcp_url: get("PHASELOOP_PG_TCP_URL"),
            port: get("PHASELOOP_PG_PORT").parse().expect("a port"),
            socket_dir: PathBuf::from(get("PHASELOOP_PG_SOCKET_DIR")),
            bin: PathBuf::from(get("PHASELOOP_PG_BIN")),
            own,
        }
    }

    fn external() -> PgServer {
        Self::from_settings(|k| std::env::var(k).ok(), None)
    }

    /// Starts a private cluster (stopped and removed when dropped, or when
    /// this process ends).
    pub fn start() -> PgServer {
        ensure_installed();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("phaseloop-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = cluster(&["start"], &dir);
        // The watchdog: stops the cluster and removes its directory when
        // our end of its stdin closes (we dropped it, or we exited).
        let script = format!(
            "trap '' HUP INT TERM ; read _ ; bash '{}' stop '{}' >/dev/null 2>&1",
            script().display(),
            dir.display()
        );
        // Its own process group, deaf to the signals that end ours (a
        // `timeout` or Ctrl-C signals the whole group): it outlives us
        // long enough to clean up.
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        let find = |k: &str| {
            settings
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('=').map(str::to_owned))
        };
        Self::from_settings(find, Some(Own { dir, watchdog }))
    }

    fn dir(&self) -> &Path {
        &self
            .own
            .as_ref()
            .expect("only our own cluster restarts")
            .dir
    }

    /// Stops the server at once (`immediate`: as a crash would).
    pub fn stop(&self) {
        cluster(&["halt"], self.dir());
    }

    /// Starts it again after [`PgServer::stop`].
    pub fn start_again(&self) {
        cluster(&["resume"], self.dir());
    }

    /// Runs `sql` through psql as the superuser over the Unix socket;
    /// its output, unaligned, tuples only.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_db("postgres", sql)
    }

    /// [`PgServer::psql`] in database `db`.
    pub fn psql_db(&self, db: &str, sql: &str) -> String {
        run(
            Command::new(self.bin.join("psql"))
                .arg("-h")
                .arg(&self.socket_dir)
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]),
            "psql",
        )
        .trim()
        .to_owned()
    }

    /// A TCP URL for `user` with `password`.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        let enc: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("postgres://{user}:{enc}@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(own) = &mut self.own {
            // Closing its stdin tells the watchdog to stop and clean up.
            drop(own.watchdog.stdin.take());
            let _ = own.watchdog.wait();
        }
    }
}
