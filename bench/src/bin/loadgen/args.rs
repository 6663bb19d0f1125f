//! Command-line options of the load generator.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;

/// phaseloop-load: an HTTP/1.1 load generator on mio (one thread).
/// Every option can also come from the environment variable shown.
#[derive(Debug, Parser)]
#[command(
    name = "phaseloop-load",
    version,
    about = "phaseloop-load: an HTTP/1.1 load generator on mio (one thread)"
)]
struct Flags {
    /// The URL to load: http://127.0.0.1:3000/path
    url: String,
    /// Concurrent connections (10,000+ works).
    #[arg(short = 'c', long, env = "LOAD_CONNECTIONS", default_value_t = 50)]
    connections: usize,
    /// How long to run, seconds.
    #[arg(short = 'd', long, env = "LOAD_DURATION", default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many responses.
    #[arg(short = 'n', long, env = "LOAD_REQUESTS")]
    requests: Option<u64>,
    /// Requests in flight per connection.
    #[arg(short = 'p', long, env = "LOAD_PIPELINE", default_value_t = 1)]
    pipeline: usize,
    /// Constant rate, requests/s over all connections; latency is then
    /// measured from each request's intended send time (coordinated
    /// omission corrected, as wrk2).
    #[arg(short = 'r', long, env = "LOAD_RATE")]
    rate: Option<f64>,
    /// Method.
    #[arg(short = 'm', long, default_value = "GET")]
    method: String,
    /// Request body.
    #[arg(short = 'b', long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Request body from a file.
    #[arg(long)]
    body_file: Option<String>,
    /// Extra request header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The status every response must have (default: any 2xx); a comma
    /// list such as 200,404 accepts each.
    #[arg(long, value_delimiter = ',')]
    expect_status: Option<Vec<u16>>,
    /// Request these paths in turn (one per line) instead of the URL's
    /// path, e.g. to mix cache hits and misses.
    #[arg(long)]
    paths: Option<String>,
    /// The body every response must have.
    #[arg(long)]
    expect_body: Option<String>,
    /// A response later than this many seconds is an error.
    #[arg(long, env = "LOAD_TIMEOUT", default_value_t = 10.0)]
    timeout: f64,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<String>,
    /// Write the latency percentile distribution (HdrHistogram format).
    #[arg(long)]
    hdr: Option<String>,
    /// Write a latency-by-percentile plot.
    #[arg(long)]
    svg: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Args {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    pub connections: usize,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub method: String,
    pub body: Vec<u8>,
    pub headers: Vec<String>,
    pub expect_status: Option<Vec<u16>>,
    /// Paths to cycle through (empty: the URL's path).
    pub paths: Vec<String>,
    pub expect_body: Option<Vec<u8>>,
    pub timeout: Duration,
    pub json: Option<String>,
    pub hdr: Option<String>,
    pub svg: Option<String>,
}

fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("resolving {authority}: {e}"))?
        .next()
        .ok_or(format!("no address for {authority}"))?;
    Ok((addr, authority.to_string(), path.to_string()))
}

/// Why the arguments were refused.
#[derive(Debug)]
pub enum ArgsError {
    /// clap's own: a bad flag, or `--help`/`--version` (which print and
    /// exit 0 through [`clap::Error::exit`]).
    Clap(clap::Error),
    /// A value clap took but we refuse.
    Invalid(String),
}

pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
    let f = Flags::try_parse_from(std::iter::once("phaseloop-load".to_string()).chain(argv))
        .map_err(ArgsError::Clap)?;
    let bad = ArgsError::Invalid;
    let body = match (&f.body, &f.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).map_err(|e| bad(format!("--body-file {path}: {e}")))?
        }
        (None, None) => Vec::new(),
    };
    for h in &f.headers {
        if !h.contains(':') || h.contains('\r') || h.contains('\n') {
            return Err(bad(format!("--header {h:?}: expected \"Name: value\"")));
        }
    }
    let paths = match &f.paths {
        None => Vec::new(),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| bad(format!("--paths {path}: {e}")))?;
            let paths: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with('/'))
                .map(String::from)
                .collect();
            if paths.is_empty() {
                return Err(bad(format!("--paths {path}: no lines starting with '/'")));
            }
            paths
        }
    };
    if f.connections == 0 || f.pipeline == 0 {
        return Err(bad("--connections and --pipeline must be at least 1".into()));
    }
    if f.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(bad("--rate must be positive".into()));
    }
    let seconds = |name: &str, v: f64| {
        Duration::try_from_secs_f64(v).map_err(|_| bad(format!("{name}: {v} is not a duration")))
    };
    let (addr, host, path) = parse_url(&f.url).map_err(bad)?;
    Ok(Args {
        addr,
        host,
        path,
        connections: f.connections,
        duration: seconds("--duration", f.duration)?,
        requests: f.requests,
        pipeline: f.pipeline,
        rate: f.rate,
        method: f.method,
        body,
        headers: f.headers,
        expect_status: f.expect_status,
        paths,
        expect_body: f.expect_body.map(String::into_bytes),
        timeout: seconds("--timeout", f.timeout)?,
        json: f.json,
        hdr: f.hdr,
        svg: f.svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_options() {
        let a = parse(
            [
                "-c",
                "10",
                "-p",
                "4",
                "--rate",
                "500",
                "http://127.0.0.1:8080/x?y=1",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(a.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (a.host.as_str(), a.path.as_str()),
            ("127.0.0.1:8080", "/x?y=1")
        );
        assert_eq!((a.connections, a.pipeline, a.rate), (10, 4, Some(500.0)));
        assert!(parse(["https://x/"].map(String::from)).is_err());
        assert!(parse(["-c", "0", "http://127.0.0.1:1/"].map(String::from)).is_err());
        assert!(parse(["--bogus", "http://127.0.0.1:1/"].map(String::from)).is_err());
        assert!(matches!(
            parse(["--help"].map(String::from)),
            Err(ArgsError::Clap(e)) if e.kind() == clap::error::ErrorKind::DisplayHelp
        ));
    }
}
