//! Results: the summary a person reads, the JSON a script reads, the
//! HdrHistogram percentile distribution, and an SVG plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Errors by kind.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    /// Responses with an unexpected status.
    pub status: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Responses whose body differed from `--expect-body`.
    pub body: u64,
    /// Bytes that were not a well-framed HTTP response.
    pub framing: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect
            + self.read
            + self.write
            + self.timeout
            + self.status
            + self.body
            + self.framing
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "connect {}, read {}, write {}, timeout {}, bad status {}, bad body {}, bad framing {}",
            self.connect, self.read, self.write, self.timeout, self.status, self.body, self.framing
        );
        if !self.statuses.is_empty() {
            let list: Vec<String> = self
                .statuses
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = write!(s, " (statuses {})", list.join(", "));
        }
        s
    }
}

pub struct Outcome {
    pub elapsed: Duration,
    pub completed: u64,
    pub bytes_read: u64,
    /// Latency in microseconds.
    pub hist: Histogram<u64>,
    pub errors: Errors,
    pub connections: usize,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub url: String,
}

const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
];

impl Outcome {
    fn rps(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn summary(&self) -> String {
        let mode = match self.rate {
            Some(r) => format!("constant rate {r:.0}/s (latency from intended send time)"),
            None => "closed loop".to_string(),
        };
        let mut s = format!(
            "phaseloop-load {}: {:.2} s, {} connections, pipeline {}, {}\n",
            self.url,
            self.elapsed.as_secs_f64(),
            self.connections,
            self.pipeline,
            mode
        );
        let _ = writeln!(
            s,
            "  requests  {} ({:.0}/s), {:.2} MB/s read",
            self.completed,
            self.rps(),
            self.bytes_read as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
        );
        let lat: Vec<String> = QUANTILES
            .iter()
            .map(|(n, q)| format!("{n} {:.3}", self.ms(*q)))
            .collect();
        let _ = writeln!(s, "  latency ms  {}", lat.join("  "));
        if self.errors.total() == 0 {
            let _ = writeln!(s, "  errors    none");
        } else {
            let _ = writeln!(
                s,
                "  ERRORS    {}: {}",
                self.errors.total(),
                self.errors.describe()
            );
        }
        s
    }

    pub fn json(&self) -> String {
        let lat: Vec<String> = QUANTILES
            .iter()
            .map(|(n, q)| format!("\"{n}\":{:.3}", self.ms(*q)))
            .collect();
        let statuses: Vec<String> = self
            .errors
            .statuses
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!(
            "{{\"url\":\"{}\",\"duration_s\":{:.3},\"connections\":{},\"pipeline\":{},\"rate\":{},\"requests\":{},\"requests_per_s\":{:.1},\"bytes_read\":{},\"latency_ms\":{{{}}},\"errors\":{{\"total\":{},\"connect\":{},\"read\":{},\"write\":{},\"timeout\":{},\"status\":{},\"body\":{},\"framing\":{},\"statuses\":{{{}}}}}}}\n",
            self.url,
            self.elapsed.as_secs_f64(),
            self.connections,
            self.pipeline,
            self.rate.map_or("null".to_string(), |r| format!("{r}")),
            self.completed,
            self.rps(),
            self.bytes_read,
            lat.join(","),
            self.errors.total(),
            self.errors.connect,
            self.errors.read,
            self.errors.write,
            self.errors.timeout,
            self.errors.status,
            self.errors.body,
            self.errors.framing,
            statuses.join(",")
        )
    }

    /// The classic HdrHistogram percentile-distribution text (values in ms),
    /// readable by HdrHistogram's plotter.
    pub fn percentile_distribution(&self) -> String {
        let mut s = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
        for v in self.hist.iter_quantiles(5) {
            let p = v.quantile_iterated_to();
            let inv = if p < 1.0 {
                format!("{:.2}", 1.0 / (1.0 - p))
            } else {
                "inf".into()
            };
            let _ = writeln!(
                s,
                "{:12.3} {:14.12} {:10} {:>14}",
                v.value_iterated_to() as f64 / 1000.0,
                p,
                v.count_since_last_iteration(),
                inv
            );
        }
        let _ = writeln!(
            s,
            "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]",
            self.hist.mean() / 1000.0,
            self.hist.stdev() / 1000.0,
            self.hist.max() as f64 / 1000.0,
            self.hist.len()
        );
        s
    }

    /// Latency by percentile, the percentile axis logarithmic (50%, 90%,
    /// 99%, 99.9%, 99.99% equally spaced), as a standalone SVG.
    pub fn svg(&self) -> String {
        let (w, h, left, bottom, top, right) = (720.0, 420.0, 70.0, 50.0, 40.0, 20.0);
        let plot_w = w - left - right;
        let plot_h = h - top - bottom;
        let max_x = 5.0f64; // log10(1/(1-p)) up to 99.999%
        let max_ms = (self.ms(1.0) * 1.1).max(0.001);
        let x = |p: f64| left + (-(1.0 - p).max(1e-5).log10()).min(max_x) / max_x * plot_w;
        let y = |ms: f64| top + plot_h - ms / max_ms * plot_h;
        let mut points = Vec::new();
        for i in 0..=200 {
            let p = 1.0 - 10f64.powf(-(i as f64) / 200.0 * max_x);
            points.push(format!("{:.1},{:.1}", x(p), y(self.ms(p.min(1.0)))));
        }
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"14\">Latency by percentile — {} ({:.0} req/s)</text>\n",
            self.url,
            self.rps()
        );
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>",
            top + plot_h,
            left + plot_w,
            top + plot_h,
            top + plot_h
        );
        for (label, p) in [
            ("0%", 0.0),
            ("90%", 0.9),
            ("99%", 0.99),
            ("99.9%", 0.999),
            ("99.99%", 0.9999),
            ("99.999%", 0.99999),
        ] {
            let px = x(p);
            let _ = writeln!(
                s,
                "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
                top + plot_h,
                top + plot_h + 18.0
            );
        }
        for i in 0..=4 {
            let ms = max_ms * i as f64 / 4.0;
            let py = y(ms);
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{ms:.2} ms</text>",
                left + plot_w,
                left - 6.0,
                py + 4.0
            );
        }
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text>\n</svg>",
            left + plot_w / 2.0,
            h - 8.0
        );
        s
    }
}

/// A once-a-second progress line on a terminal (nothing when piped).
pub struct Progress {
    tty: bool,
    last: std::cell::Cell<Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        // SAFETY: isatty has no preconditions.
        let tty = unsafe { libc::isatty(2) } == 1;
        Progress {
            tty,
            last: std::cell::Cell::new(Instant::now()),
        }
    }

    pub fn tick(&self, start: Instant, completed: u64, errors: &Errors) {
        if !self.tty || self.last.get().elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last.set(Instant::now());
        let secs = start.elapsed().as_secs_f64();
        eprint!(
            "\r  {:6.1} s  {:10} responses  {:9.0}/s  errors {}   ",
            secs,
            completed,
            completed as f64 / secs.max(1e-9),
            errors.total()
        );
        let _ = std::io::stderr().flush();
    }

    pub fn done(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
