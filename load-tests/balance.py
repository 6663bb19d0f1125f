#!/usr/bin/env python3
"""Multi-loop balance and scaling: demo-api with 1 loop, 2 loops (threads)
and 2 worker processes, under phaseloop-load at 1,000 connections. The
server and the load generator share this machine's cores (no pinning): on a
2-core machine the generator takes its share, and the figures say so.

Reports requests/s per configuration (median of --runs) and, for --loops, the
share of requests each loop served (from /metrics). Usage:
    python3 load-tests/balance.py [--runs 3] [--duration 5]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REL = os.path.join(os.path.dirname(HERE), "target", "release")
sys.path.insert(0, HERE)
from compare_plaintext import port_in_use, raise_nofile, wait_port  # noqa: E402

PORT = 3500


def per_loop():
    text = urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics").read().decode()
    return [int(v) for v in re.findall(r'phaseloop_loop_requests_total\{loop="\d+"\} (\d+)', text)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    args = ap.parse_args()
    configs = [("1 loop", []), ("2 loops (threads)", ["--loops", "2"]), ("2 worker processes", ["--workers", "2"])]
    rows = []
    for label, extra in configs:
        rps, shares = [], []
        for _ in range(args.runs):
            if port_in_use(PORT):
                sys.exit(f"port {PORT} in use")
            data = tempfile.mkdtemp(prefix="phaseloop-balance-")
            server = subprocess.Popen([os.path.join(REL, "demo-api"), "--port", str(PORT), "--data-dir", data,
                                       "--log-level", "error", "--keep-alive", "60"] + extra,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
            wait_port(PORT, server)
            time.sleep(0.3)
            before = per_loop() if "--loops" in extra else []
            out = os.path.join(data, "r.json")
            subprocess.run([os.path.join(REL, "phaseloop-load"), "-c", "1000", "-d", str(args.duration), "--json", out,
                            f"http://127.0.0.1:{PORT}/plaintext"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           preexec_fn=raise_nofile)
            with open(out) as f:
                rps.append(json.load(f)["requests_per_s"])
            if before:
                time.sleep(0.7)  # loops publish their counters twice a second
                after = per_loop()
                served = [a - b for a, b in zip(after, before)]
                total = max(sum(served), 1)
                shares.append([s / total for s in served])
            server.terminate()
            server.wait()
        share = ""
        if shares:
            med = [statistics.median(s[i] for s in shares) for i in range(len(shares[0]))]
            share = " / ".join(f"{x * 100:.1f}%" for x in med)
        rows.append((label, statistics.median(rps), share))
    base = rows[0][1]
    print(f"GET /plaintext, 1,000 connections, phaseloop-load on the same 2 cores (unpinned); "
          f"medians of {args.runs} runs of {args.duration:g} s; {time.strftime('%Y-%m-%d')}\n")
    print("| configuration | req/s | vs 1 loop | share of requests per loop |")
    print("|---|---|---|---|")
    for label, r, share in rows:
        print(f"| {label} | {r:.0f} | {r / base:.2f} | {share} |")


if __name__ == "__main__":
    main()
