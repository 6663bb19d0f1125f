#!/usr/bin/env python3
"""phaseloop's load scenarios against its peers, in one run.

Servers: phaseloop's demo-api, the seed's API in Express (load-tests/node),
Node's bare http module for /plaintext, and the bare-mio floor. Each server
runs pinned to CPU 0 and phaseloop-load (our load generator) to CPU 1, on
127.0.0.1. For every scenario and server: req/s, req per server CPU-second,
p50/p99 latency and errors, medians of --runs runs. Servers take turns
scenario by scenario, each in a fresh process warmed up by --warmup
seconds of unmeasured load, so drift hits them alike. Writes a Markdown table
and, per run, the generator's JSON and SVG latency plot to --out.

Usage: load-tests/run.sh [--runs 3] [--duration 5] [--warmup 1] [--quick] [--servers phaseloop,express,node,floor]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REL = os.path.join(ROOT, "target", "release")
sys.path.insert(0, HERE)
from compare_plaintext import cpu_seconds, port_in_use, raise_nofile, wait_port  # noqa: E402

PORTS = {"phaseloop": 3200, "express": 3201, "node": 3202, "floor": 3203}
ORDER = '{"restaurant_id":1,"customer":"Ann","items":[{"name":"pho","qty":2}]}'


def start(name, data):
    port = PORTS[name]
    if port_in_use(port):
        sys.exit(f"port {port} is in use: stop whatever listens there first")
    if name == "phaseloop":
        cmd = [os.path.join(REL, "demo-api"), "--port", str(port), "--data-dir", os.path.join(data, "phaseloop"),
               "--log-level", "error", "--keep-alive", "60"]
    elif name == "express":
        cmd = ["node", os.path.join(HERE, "node", "demo-express.js"), str(port), os.path.join(data, "express")]
    elif name == "node":
        cmd = ["node", os.path.join(ROOT, "bench", "node", "plaintext.js"), str(port)]
    else:
        cmd = [os.path.join(REL, "floor"), str(port)]
    env = dict(os.environ, NODE_ENV="production")  # Express's fast path, as deployed
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=raise_nofile, env=env)
    # The demo replays its order log at start-up, and the orders scenario
    # grows it by millions of lines over a set: give it time.
    wait_port(port, proc, timeout=60)
    if proc.poll() is not None:
        sys.exit(f"{name} exited at start-up")
    return proc


def scenarios(quick):
    big = 1000 if quick else 10000
    return [
        # name, path, servers that implement it, extra generator arguments
        ("GET /plaintext, 100 conns", "/plaintext", ["phaseloop", "express", "node", "floor"], ["-c", "100"]),
        (f"GET /plaintext, {big:,} conns", "/plaintext", ["phaseloop", "express", "node", "floor"], ["-c", str(big)]),
        ("GET /json, 100 conns", "/json", ["phaseloop", "express"], ["-c", "100"]),
        (f"GET /json, {big:,} conns", "/json", ["phaseloop", "express"], ["-c", str(big)]),
        ("GET /plaintext pipelined 16, 256 conns", "/plaintext", ["phaseloop", "express", "node", "floor"],
         ["-c", "256", "-p", "16"]),
        ("POST /api/orders (fsync), 1,000 conns", "/api/orders", ["phaseloop", "express"],
         ["-c", "1000", "-m", "POST", "-b", ORDER, "-H", "Content-Type: application/json", "--expect-status", "201"]),
        ("GET /api/users/:id, 95% cache hits, 100 conns", "USERS", ["phaseloop", "express"],
         ["-c", "100", "--expect-status", "200,404"]),
        ("GET /plaintext at 50% of max rate, 100 conns", "RATE", ["phaseloop", "express", "node", "floor"], ["-c", "100"]),
    ]


def load(port, path, extra, duration, out_json, out_svg):
    cmd = ["taskset", "-c", "1", os.path.join(REL, "phaseloop-load"), "-d", str(duration), "--timeout", "30",
           "--json", out_json, "--svg", out_svg] + extra + [f"http://127.0.0.1:{port}{path}"]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
    with open(out_json) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--quick", action="store_true", help="1,000 instead of 10,000 connections")
    ap.add_argument("--warmup", type=float, default=1, help="seconds of unmeasured load on each fresh server")
    ap.add_argument("--servers", default="phaseloop,express,node,floor")
    ap.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y-%m-%d-%H%M%S")))
    args = ap.parse_args()
    servers = args.servers.split(",")
    os.makedirs(args.out, exist_ok=True)
    data = tempfile.mkdtemp(prefix="phaseloop-load-")
    paths_file = os.path.join(data, "users-paths.txt")
    with open(paths_file, "w") as f:
        # 95 requests for users that stay cached, 5 for ids that do not exist
        # (never cached: every one is a store read through the pool, and a 404).
        f.write("".join(f"/api/users/{i}\n" for i in range(1, 96)))
        f.write("".join(f"/api/users/{100000 + i}\n" for i in range(5)))
    rows = {}
    max_rate = {}
    # Scenario by scenario, every server in turn with a fresh process, the
    # order reversed every other run: the machine's drift (this VM is
    # shared) then falls on all servers alike, within seconds of each other.
    for run in range(args.runs):
        for label, path, who, extra in scenarios(args.quick):
            order = servers if run % 2 == 0 else servers[::-1]
            for name in order:
                if name not in who:
                    continue
                proc = start(name, data)
                try:
                    extra_args = list(extra)
                    target = path
                    if path == "USERS":
                        target = "/"
                        extra_args += ["--paths", paths_file]
                    if path == "RATE":
                        target = "/plaintext"
                        extra_args += ["-r", str(max(100, int(max_rate.get(name, 1000) * 0.5)))]
                    tag = f"{len(rows)}-{name}-run{run + 1}"
                    # A fresh process warms up first (V8's JIT, caches,
                    # pools), unmeasured, as it would have under earlier
                    # scenarios in a long-lived process.
                    if args.warmup > 0:
                        load(PORTS[name], target, extra_args, args.warmup, os.path.join(data, "warmup.json"),
                             os.path.join(data, "warmup.svg"))
                    before = cpu_seconds(proc.pid)
                    res = load(PORTS[name], target, extra_args, args.duration, os.path.join(args.out, tag + ".json"),
                               os.path.join(args.out, tag + ".svg"))
                    cpu = cpu_seconds(proc.pid) - before
                    if label.startswith("GET /plaintext, 100 conns"):
                        max_rate[name] = res["requests_per_s"]
                    rows.setdefault((label, name), []).append(
                        (res["requests_per_s"], res["requests"] / max(cpu, 1e-9), res["latency_ms"]["p50"],
                         res["latency_ms"]["p99"], res["errors"]["total"]))
                    print(f"run {run + 1} {name:9} {label:48} {res['requests_per_s']:9.0f} req/s "
                          f"p99 {res['latency_ms']['p99']:8.2f} ms errors {res['errors']['total']}", file=sys.stderr)
                finally:
                    proc.kill()
                    proc.wait()
    lines = [f"Medians of {args.runs} runs of {args.duration:g} s; server on CPU 0, phaseloop-load on CPU 1; "
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores.", "",
             "| scenario | server | req/s | req per server CPU-s | p50 ms | p99 ms | errors | phaseloop / this (CPU-s) |",
             "|---|---|---|---|---|---|---|---|"]
    for label, _, who, _ in scenarios(args.quick):
        med = {}
        for name in who:
            if (label, name) in rows:
                r = rows[(label, name)]
                med[name] = [statistics.median(x[i] for x in r) for i in range(4)] + [max(x[4] for x in r)]
        for name, (rps, per_cpu, p50, p99, errors) in med.items():
            ratio = f"{med['phaseloop'][1] / per_cpu:.2f}" if "phaseloop" in med and name != "phaseloop" else ""
            lines.append(f"| {label} | {name} | {rps:.0f} | {per_cpu:.0f} | {p50:.2f} | {p99:.2f} | {errors} | {ratio} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    print(table)
    print(f"results, JSON and SVG plots in {args.out}", file=sys.stderr)
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
