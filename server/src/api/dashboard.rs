//! A live loop dashboard an app can mount (`App::dashboard`): one
//! self-contained page (no build step, no CDN, no library: canvas charts
//! drawn by its own script) polling a JSON feed once a second. It shows
//! the loop delay with every blocked-loop report as a marker, the time in
//! each phase, requests per second by route and the p99 latency, the pool's
//! lanes, and the connections. Nothing is computed unless the page (or a
//! script) asks: a request pays nothing for it.

use std::fmt::Write;

use phaseloop_core::{Lane, Loop, Phase};

use crate::api::responder::Responder;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::Error;

/// Who may see the dashboard: it shows the server's internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DashboardAccess {
    /// Clients on the loopback interface only (the default choice).
    Loopback,
    /// Clients that send this token, as `?token=` or
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// Anyone who can reach the server.
    Anyone,
}

impl DashboardAccess {
    fn allows(&self, req: &Request) -> bool {
        match self {
            DashboardAccess::Anyone => true,
            DashboardAccess::Loopback => req.peer_addr().is_some_and(|a| a.ip().is_loopback()),
            DashboardAccess::Token(token) => {
                let bearer = req
                    .header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "));
                let query = req.query_param("token");
                bearer == Some(token.as_str()) || query.as_deref() == Some(token.as_str())
            }
        }
    }
}

/// Answers 403 unless `access` allows `req`; true when it does.
pub(crate) fn admit(access: &DashboardAccess, req: &Request, res: Responder) -> Option<Responder> {
    if access.allows(req) {
        return Some(res);
    }
    res.send_error(
        req,
        Error::new(403, "the dashboard is not open to this client"),
    );
    None
}

/// The page.
pub(crate) fn page() -> Response {
    Response::new(200)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Cache-Control", "no-store")
        .body(PAGE)
}

/// One loop of a cluster, as the dashboard draws it.
pub(crate) struct LoopSeries {
    /// The loop's (or worker's) index.
    pub index: usize,
    pub requests: u64,
    pub open: u64,
    pub delay_p99: std::time::Duration,
}

type LoopsSource = Box<dyn Fn() -> Vec<LoopSeries>>;

thread_local! {
    /// Where this loop reads every loop's figures from, in a cluster (the
    /// serving layer sets it on each loop's thread; `None` alone).
    static LOOPS: std::cell::RefCell<Option<LoopsSource>> = const { std::cell::RefCell::new(None) };
}

/// Sets (or clears) the source of every loop's figures for this thread's
/// dashboard.
pub(crate) fn show_loops(source: Option<LoopsSource>) {
    LOOPS.with(|l| *l.borrow_mut() = source);
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The feed: everything the page draws, now.
pub(crate) fn feed(lp: &Loop, res: &Responder) -> Response {
    let m = lp.metrics();
    let mut j = String::with_capacity(2048);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let _ = write!(j, "{{\"t\":{now_ms},\"ticks\":{},\"phase_ms\":{{", m.ticks);
    for (i, p) in Phase::ALL.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(j, "{sep}\"{}\":{:.3}", p.name(), ms(m.time_in(*p)));
    }
    let d = &m.loop_delay;
    let at = |q: f64| d.value_at_quantile(q) as f64 / 1e6;
    let _ = write!(
        j,
        "}},\"delay_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}},\"blocks_total\":{},\"panics\":{},\"blocks\":[",
        at(0.5),
        at(0.99),
        d.max() as f64 / 1e6,
        m.block_reports,
        m.callback_panics
    );
    for (i, b) in m.recent_blocks.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let label = serde_json::to_string(b.label.as_deref().unwrap_or("")).unwrap_or_default();
        let _ = write!(
            j,
            "{sep}{{\"kind\":\"{:?}\",\"phase\":\"{}\",\"route\":{label},\"held_ms\":{:.1}}}",
            b.kind,
            b.phase.name(),
            ms(b.held)
        );
    }
    j.push_str("],\"pool\":[");
    if let Some(pool) = lp.pool_stats() {
        for (i, lane) in Lane::ALL.iter().enumerate() {
            let l = pool.lane(*lane);
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                j,
                "{sep}{{\"lane\":\"{}\",\"queued\":{},\"running\":{},\"completed\":{},\"wait_p99_ms\":{:.3}}}",
                lane.name(),
                l.queued,
                l.running,
                l.completed,
                ms(l.wait_at(0.99))
            );
        }
    }
    j.push(']');
    if let Some(f) = res.server_figures() {
        let (stats, (idle, reading, writing)) = (&f.stats, f.states);
        let _ = write!(
            j,
            ",\"server\":{{\"open\":{},\"idle\":{idle},\"reading\":{reading},\"writing\":{writing},\"accepted\":{},\"requests\":{},\"refused\":{},\"buffered_bytes\":{},\"p99_ms\":{:.3}}},\"routes\":[",
            stats.open,
            stats.accepted,
            stats.requests,
            stats.refused,
            f.buffered,
            f.latency.value_at_quantile(0.99) as f64 / 1e3
        );
        for (i, r) in f.routes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let total: u64 = r.by_status.iter().map(|(_, n)| n).sum();
            let name = serde_json::to_string(&*r.route).unwrap_or_default();
            let p99 = r.p99.map_or(0.0, ms);
            let _ = write!(
                j,
                "{sep}{{\"route\":{name},\"responses\":{total},\"p99_ms\":{p99:.3}}}"
            );
        }
        j.push(']');
    }
    LOOPS.with(|l| {
        if let Some(source) = l.borrow().as_ref() {
            j.push_str(",\"loops\":[");
            for (i, s) in source().iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(
                    j,
                    "{sep}{{\"loop\":{},\"requests\":{},\"open\":{},\"delay_p99_ms\":{:.3}}}",
                    s.index,
                    s.requests,
                    s.open,
                    ms(s.delay_p99)
                );
            }
            j.push(']');
        }
    });
    j.push('}');
    Response::new(200)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(j)
}

/// The page: HTML, CSS and a script that polls `stats.json` (next to it)
/// once a second and draws five charts on canvases.
const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>phaseloop · loop dashboard</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:18px;margin:0 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.card h2{font-size:14px;margin:0 0 4px}
canvas{width:100%;height:180px}
#tip{position:fixed;display:none;background:#222;color:#fff;padding:4px 6px;border-radius:4px;font-size:12px;pointer-events:none}
#blocks li{font-family:monospace}
.legend span{margin-right:10px}
</style></head><body>
<h1>phaseloop · the loop, live <small id="status">connecting…</small></h1>
<div class="grid">
<div class="card"><h2>Loop delay (ms): p50, p99, max — red marks: blocked-loop reports</h2><canvas id="delay" width="900" height="360"></canvas><div class="legend" id="delay-legend"></div></div>
<div class="card"><h2>Time in each phase (ms per second)</h2><canvas id="phases" width="900" height="360"></canvas><div class="legend" id="phases-legend"></div></div>
<div class="card"><h2>Requests per second by route, and p99 latency (ms)</h2><canvas id="routes" width="900" height="360"></canvas><div class="legend" id="routes-legend"></div></div>
<div class="card"><h2>p99 latency by route (ms)</h2><canvas id="latency" width="900" height="360"></canvas><div class="legend" id="latency-legend"></div></div>
<div class="card"><h2>Pool lanes: queued jobs</h2><canvas id="pool" width="900" height="360"></canvas><div class="legend" id="pool-legend"></div></div>
<div class="card"><h2>Connections: open, idle, reading, writing</h2><canvas id="conns" width="900" height="360"></canvas><div class="legend" id="conns-legend"></div></div>
<div class="card" id="loops-card" style="display:none"><h2>Each loop: requests per second and loop delay p99 (ms)</h2><canvas id="loops" width="900" height="360"></canvas><div class="legend" id="loops-legend"></div></div>
<div class="card"><h2>Blocked-loop reports</h2><ul id="blocks"></ul></div>
</div>
<div id="tip"></div>
<script>
"use strict";
const KEEP = 120, COLORS = ["#1f77b4","#d62728","#2ca02c","#ff7f0e","#9467bd","#8c564b","#e377c2","#17becf"];
const series = {delay:{}, phases:{}, routes:{}, latency:{}, pool:{}, conns:{}, loops:{}};
const marks = [];            // {i, text}: block reports, by sample index
let samples = 0, last = null, seenBlocks = 0;
function push(chart, name, v) {
  const s = series[chart][name] || (series[chart][name] = []);
  while (s.length < samples) s.push(null);
  s.push(v); if (s.length > KEEP) s.shift();
}
function draw(id) {
  const c = document.getElementById(id), g = c.getContext("2d");
  // Routes only once called: a route nobody calls is not drawn.
  const names = Object.keys(series[id]).filter(n => (id !== "routes" && id !== "latency") || series[id][n].some(v => v));
  g.clearRect(0, 0, c.width, c.height);
  let max = 1;
  for (const n of names) for (const v of series[id][n]) if (v !== null && v > max) max = v;
  const x = i => xAt(c, i), y = v => c.height - 20 - v * (c.height - 40) / max;
  g.fillStyle = "#888"; g.font = "20px sans-serif"; g.fillText(max.toFixed(1), 2, 20);
  let points = 0;
  names.forEach((n, k) => {
    g.strokeStyle = COLORS[k % COLORS.length]; g.lineWidth = 2; g.beginPath();
    let started = false;
    series[id][n].forEach((v, i) => { if (v === null) return; points++;
      if (started) g.lineTo(x(i), y(v)); else { g.moveTo(x(i), y(v)); started = true; } });
    g.stroke();
  });
  if (id === "delay") { g.strokeStyle = "#d00"; g.lineWidth = 3;
    for (const m of marks) { g.beginPath(); g.moveTo(x(m.i), 0); g.lineTo(x(m.i), c.height); g.stroke(); } }
  c.dataset.points = points;
  document.getElementById(id + "-legend").innerHTML = names.map((n, k) =>
    `<span style="color:${COLORS[k % COLORS.length]}">■ ${n.replace(/</g, "&lt;")}</span>`).join("");
}
// The time axis spans the samples so far (up to KEEP).
function xAt(c, i) { return 40 + i * (c.width - 50) / Math.max(samples - 1, 1); }
function shift() { samples = Math.min(samples + 1, KEEP);
  if (samples === KEEP) for (const m of marks) m.i--; while (marks.length && marks[0].i < 0) marks.shift(); }
async function tick() {
  let s;
  try { const r = await fetch(location.pathname.replace(/\/?$/, "/") + "stats.json" + location.search, {cache: "no-store"}); s = await r.json(); }
  catch (e) { document.getElementById("status").textContent = "no data: " + e; return; }
  document.getElementById("status").textContent = "updated " + new Date(s.t).toLocaleTimeString();
  const i = Math.min(samples, KEEP - 1);
  push("delay", "p50", s.delay_ms.p50); push("delay", "p99", s.delay_ms.p99); push("delay", "max", s.delay_ms.max);
  const secs = last ? Math.max((s.t - last.t) / 1000, 0.001) : 1;
  for (const p in s.phase_ms) push("phases", p, last ? (s.phase_ms[p] - last.phase_ms[p]) / secs : 0);
  for (const r of s.routes || []) {
    const before = last && (last.routes || []).find(x => x.route === r.route);
    push("routes", r.route, before ? (r.responses - before.responses) / secs : 0);
    push("latency", r.route, r.p99_ms);
  }
  if (s.server) { push("routes", "p99 ms (all)", s.server.p99_ms);
    for (const k of ["open", "idle", "reading", "writing"]) push("conns", k, s.server[k]); }
  for (const l of s.pool) push("pool", l.lane, l.queued);
  // A cluster (--loops N): each loop its own series (figures published
  // twice a second by each loop).
  if (s.loops) { document.getElementById("loops-card").style.display = "";
    for (const l of s.loops) {
      const before = last && (last.loops || []).find(x => x.loop === l.loop);
      push("loops", `loop ${l.loop} req/s`, before ? (l.requests - before.requests) / secs : 0);
      push("loops", `loop ${l.loop} p99 ms`, l.delay_p99_ms);
    } }
  const fresh = s.blocks_total - seenBlocks;
  const list = document.getElementById("blocks");
  s.blocks.slice(Math.max(0, s.blocks.length - fresh)).forEach(b => {
    const text = `${b.kind} in ${b.phase}: ${b.route || "(no route)"} held the loop ${b.held_ms} ms`;
    marks.push({i, text});
    const li = document.createElement("li");
    li.dataset.route = b.route; li.dataset.phase = b.phase; li.textContent = text;
    list.prepend(li);
  });
  seenBlocks = s.blocks_total;
  last = s; shift();
  for (const id in series) draw(id);
}
const delay = document.getElementById("delay"), tip = document.getElementById("tip");
delay.addEventListener("mousemove", e => {
  const r = delay.getBoundingClientRect(), px = (e.clientX - r.left) * delay.width / r.width;
  const m = marks.find(m => Math.abs(xAt(delay, m.i) - px) < 8);
  tip.style.display = m ? "block" : "none";
  if (m) { tip.textContent = m.text; tip.style.left = e.clientX + 12 + "px"; tip.style.top = e.clientY + 12 + "px"; }
});
tick(); setInterval(tick, 1000);
</script></body></html>
"##;
