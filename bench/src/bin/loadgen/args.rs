//! Command-line options of the load generator.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub const HELP: &str = "\
phaseloop-load: an HTTP/1.1 load generator on mio (one thread)

USAGE: phaseloop-load [OPTIONS] <URL>          URL: http://127.0.0.1:3000/path

OPTIONS:
  -c, --connections <n>   concurrent connections (default 50; 10,000+ works)
  -d, --duration <secs>   how long to run (default 10)
  -n, --requests <n>      stop after this many responses (default: no limit)
  -p, --pipeline <n>      requests in flight per connection (default 1)
  -r, --rate <n>          constant rate, requests/s over all connections; latency
                          is then measured from each request's intended send time
                          (coordinated omission corrected, as wrk2)
  -m, --method <m>        method (default GET)
  -b, --body <text>       request body
      --body-file <path>  request body from a file
  -H, --header <k: v>     extra request header (repeatable)
      --expect-status <n> the status every response must have (default: any 2xx;
                          a comma list such as 200,404 accepts each)
      --paths <file>      request these paths in turn (one per line) instead of
                          the URL's path, e.g. to mix cache hits and misses
      --expect-body <s>   the body every response must have
      --timeout <secs>    a response later than this is an error (default 10)
      --json <path>       write the results as JSON
      --hdr <path>        write the latency percentile distribution (HdrHistogram format)
      --svg <path>        write a latency-by-percentile plot
  -h, --help              this text
";

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

pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut url = None;
    let mut a = Args {
        addr: "127.0.0.1:80".parse().unwrap(),
        host: String::new(),
        path: "/".into(),
        connections: 50,
        duration: Duration::from_secs(10),
        requests: None,
        pipeline: 1,
        rate: None,
        method: "GET".into(),
        body: Vec::new(),
        headers: Vec::new(),
        expect_status: None,
        paths: Vec::new(),
        expect_body: None,
        timeout: Duration::from_secs(10),
        json: None,
        hdr: None,
        svg: None,
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}: {v:?} is not a valid number"))
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-c" | "--connections" => a.connections = num(&flag, value(&flag)?)?,
            "-d" | "--duration" => a.duration = Duration::from_secs_f64(num(&flag, value(&flag)?)?),
            "-n" | "--requests" => a.requests = Some(num(&flag, value(&flag)?)?),
            "-p" | "--pipeline" => a.pipeline = num(&flag, value(&flag)?)?,
            "-r" | "--rate" => a.rate = Some(num(&flag, value(&flag)?)?),
            "-m" | "--method" => a.method = value(&flag)?,
            "-b" | "--body" => a.body = value(&flag)?.into_bytes(),
            "--body-file" => {
                let path = value(&flag)?;
                a.body = std::fs::read(&path).map_err(|e| format!("--body-file {path}: {e}"))?;
            }
            "-H" | "--header" => {
                let h = value(&flag)?;
                if !h.contains(':') || h.contains('\r') || h.contains('\n') {
                    return Err(format!("--header {h:?}: expected \"Name: value\""));
                }
                a.headers.push(h);
            }
            "--expect-status" => {
                let list = value(&flag)?;
                let statuses = list
                    .split(',')
                    .map(|s| num::<u16>(&flag, s.trim().to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                a.expect_status = Some(statuses);
            }
            "--paths" => {
                let path = value(&flag)?;
                let text =
                    std::fs::read_to_string(&path).map_err(|e| format!("--paths {path}: {e}"))?;
                a.paths = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with('/'))
                    .map(String::from)
                    .collect();
                if a.paths.is_empty() {
                    return Err(format!("--paths {path}: no lines starting with '/'"));
                }
            }
            "--expect-body" => a.expect_body = Some(value(&flag)?.into_bytes()),
            "--timeout" => a.timeout = Duration::from_secs_f64(num(&flag, value(&flag)?)?),
            "--json" => a.json = Some(value(&flag)?),
            "--hdr" => a.hdr = Some(value(&flag)?),
            "--svg" => a.svg = Some(value(&flag)?),
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other:?} (see --help)"))
            }
            other => url = Some(other.to_string()),
        }
    }
    let url = url.ok_or("a URL is required (see --help)")?;
    let (addr, host, path) = parse_url(&url)?;
    a.addr = addr;
    a.host = host;
    a.path = path;
    if a.connections == 0 || a.pipeline == 0 {
        return Err("--connections and --pipeline must be at least 1".into());
    }
    if a.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err("--rate must be positive".into());
    }
    Ok(Some(a))
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
        .unwrap()
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
        assert!(parse(["--help"].map(String::from)).unwrap().is_none());
    }
}
