// Node's keep-alive HTTP client as a load source, beside
// bench/src/bin/client-bench.rs: CONCURRENCY requests in flight over an
// http.Agent({ keepAlive: true, maxSockets: CONCURRENCY }), GET URL again
// and again for SECONDS; one JSON line with requests and the process's CPU
// time (process.cpuUsage: user + system).
// An https URL goes through https.Agent, trusting the PEM file in $CA if set.
// Usage: [CA=ca.pem] node bench/node/client_bench.js URL [CONCURRENCY] [SECONDS]
const url = new URL(process.argv[2]);
const tls = url.protocol === "https:";
const http = require(tls ? "https" : "http");
const concurrency = Number(process.argv[3] || 64);
const seconds = Number(process.argv[4] || 5);
const ca = tls && process.env.CA ? require("fs").readFileSync(process.env.CA) : undefined;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, ca });
const until = Date.now() + seconds * 1000;
let done = 0;
let errors = 0;
let live = concurrency;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();

function next() {
  if (Date.now() >= until) {
    if (--live === 0) finish();
    return;
  }
  const req = http.get({ host: url.hostname, port: url.port, path: url.pathname, agent }, (res) => {
    res.on("data", () => {});
    res.on("end", () => {
      if (res.statusCode === 200) done++;
      else errors++;
      next();
    });
  });
  req.on("error", () => {
    errors++;
    next();
  });
}

function finish() {
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({
    client: "node",
    requests: done,
    errors,
    wall_s: Number(wall.toFixed(3)),
    cpu_s: Number(cpuS.toFixed(3)),
    req_per_cpu_s: Math.round(done / cpuS),
  }));
  agent.destroy();
}

for (let i = 0; i < concurrency; i++) next();
