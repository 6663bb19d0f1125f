#!/usr/bin/env python3
"""GET /plaintext: phaseloop vs the bare-mio floor vs Node's http module.

Each server runs pinned to CPU 0, wrk pinned to CPU 1, all on 127.0.0.1.
Reports requests/s, p50/p99 latency, socket errors, and requests per server
CPU-second (requests served / CPU time the server process used during the
run), which stays meaningful on a busy machine. Medians of --runs runs.

Needs: wrk (apt-get install wrk), node, and a release build:
    cargo build --release -p phaseloop -p phaseloop-bench
Usage:
    python3 load-tests/compare_plaintext.py [--runs 3] [--duration 10]
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Which build: PHASELOOP_RELEASE_DIR names another (an older build, to compare).
REL = os.environ.get("PHASELOOP_RELEASE_DIR", os.path.join(ROOT, "target", "release"))
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, proc, timeout=10):
    """Waits for `proc` to listen on `port`; kills it and exits if it does not
    in time (a server left running would hold the port for the next run)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    sys.exit(f"server on port {port} did not start")


def port_in_use(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def start(name, port, data, extra=()):
    """Starts server `name` on `port` (`extra`: more demo-api arguments)."""
    if port_in_use(port):
        sys.exit(f"port {port} is already in use: stop whatever listens there first")
    if name == "phaseloop":
        cmd = [os.path.join(REL, "demo-api"), "--port", str(port), "--data-dir", data,
               "--log-level", "error", "--keep-alive", "60", *extra]
    elif name == "floor":
        cmd = [os.path.join(REL, "floor"), str(port)]
    else:
        cmd = ["node", os.path.join(ROOT, "bench", "node", "plaintext.js"), str(port)]
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
    wait_port(port, proc)
    if proc.poll() is not None:
        sys.exit(f"{name} exited at start-up")
    return proc


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_ms(value):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", value)
    if not m:
        return float("nan")
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[unit]


def latency(out, pct):
    m = re.search(pct + r"%\s+(\S+)", out)
    return parse_ms(m.group(1)) if m else float("nan")


def wrk(port, conns, duration, pipeline):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
           "--timeout", "10s"]
    if pipeline > 1:
        cmd += ["-s", os.path.join(ROOT, "load-tests", "wrk", "pipeline.lua")]
    cmd.append(f"http://127.0.0.1:{port}/plaintext")
    if pipeline > 1:
        cmd += ["--", str(pipeline)]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=raise_nofile).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        sys.exit(f"wrk failed:\n{out}")
    reqs = int(m.group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    # wrk's latency is per request batch when pipelining: not comparable.
    p50 = latency(out, "50") if pipeline == 1 else float("nan")
    p99 = latency(out, "99") if pipeline == 1 else float("nan")
    errs = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = (errs.group(1) if errs else "0") + (f", non-2xx {non2xx.group(1)}" if non2xx else "")
    return reqs, rps, p50, p99, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--servers", default="phaseloop,floor,node")
    args = ap.parse_args()
    for tool in ("wrk", "node", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (wrk: apt-get install wrk)")
    scenarios = [("100 conns", 100, 1), ("10,000 conns", 10000, 1), ("pipelined 16 x 256 conns", 256, 16)]
    servers = args.servers.split(",")
    data = tempfile.mkdtemp(prefix="phaseloop-bench-")
    results = {}
    ports = {"phaseloop": 3100, "floor": 3101, "node": 3102}
    for run in range(args.runs):
        for name in servers:
            proc = start(name, ports[name], data)
            try:
                for label, conns, depth in scenarios:
                    before = cpu_seconds(proc.pid)
                    reqs, rps, p50, p99, errors = wrk(ports[name], conns, args.duration, depth)
                    cpu = cpu_seconds(proc.pid) - before
                    results.setdefault((label, name), []).append((rps, reqs / max(cpu, 1e-9), p50, p99, errors))
                    print(f"run {run + 1} {name:9} {label:26} {rps:10.0f} req/s  {reqs / max(cpu, 1e-9):10.0f} req/CPU-s  "
                          f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  errors: {errors}", file=sys.stderr)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    print(f"\nGET /plaintext, medians of {args.runs} runs of {args.duration} s; server on CPU 0, wrk -t1 on CPU 1\n")
    print("| scenario | server | req/s | req per server CPU-s | p50 ms | p99 ms | socket errors | vs floor (CPU-s) | vs node (CPU-s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, _, _ in scenarios:
        med = {}
        for name in servers:
            rows = results[(label, name)]
            med[name] = (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows),
                         statistics.median(r[2] for r in rows), statistics.median(r[3] for r in rows), rows[-1][4])
        for name in servers:
            rps, per_cpu, p50, p99, errors = med[name]
            vs_floor = f"{per_cpu / med['floor'][1]:.2f}" if "floor" in med else ""
            vs_node = f"{per_cpu / med['node'][1]:.2f}" if "node" in med else ""
            print(f"| {label} | {name} | {rps:.0f} | {per_cpu:.0f} | {p50:.2f} | {p99:.2f} | {errors} | {vs_floor} | {vs_node} |")
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
