#!/usr/bin/env python3
"""GET /api/orders/:id in process mode after a large order load: half the
look-ups land on the worker that did not save the order.

Fills a data directory with --orders orders through `demo-api --workers 2`
(POSTed by phaseloop-load), restarts it, times the start-up (every journal
is read once), then GETs random known ids for --duration seconds and
reports requests/s and p50/p99. --demo picks the build (to compare one
before and one after a change: run it once with each, --keep-data reuses
the filled directory).

Usage: python3 load-tests/order_lookups.py [--orders 1000000] [--duration 10]
       [--demo target/release/demo-api] [--data DIR] [--keep-data]
Needs: cargo build --release -p phaseloop -p phaseloop-bench
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REL = os.path.join(ROOT, "target", "release")
PORT = 3350
sys.path.insert(0, HERE)
from demo_process import start_demo  # noqa: E402
ORDER = '{"restaurant_id":3,"customer":"load","items":[{"name":"pho","qty":1}]}'


def start(demo, data):
    return start_demo(demo, PORT, data, ["--workers", "2"], prefix=["taskset", "-c", "0"], timeout=600)


def stop(p):
    os.killpg(p.pid, 15)
    p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--demo", default=os.path.join(REL, "demo-api"))
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "phaseloop-lookups"))
    ap.add_argument("--keep-data", action="store_true")
    args = ap.parse_args()
    load = os.path.join(REL, "phaseloop-load")
    if not (args.keep_data and os.path.isdir(args.data)):
        shutil.rmtree(args.data, ignore_errors=True)
        p, _ = start(args.demo, args.data)
        subprocess.run(["taskset", "-c", "1", load, "-c", "256", "-n", str(args.orders), "-d", "600", "-m", "POST",
                        "-H", "Content-Type: application/json", "-b", ORDER, "--expect-status", "201",
                        f"http://127.0.0.1:{PORT}/api/orders"], check=True, stdout=subprocess.DEVNULL)
        stop(p)
    p, startup = start(args.demo, args.data)
    try:
        paths = os.path.join(args.data, "lookup-paths.txt")
        with open(paths, "w") as f:
            for _ in range(10000):
                f.write(f"/api/orders/{random.randint(1, args.orders)}\n")
        out = os.path.join(args.data, "lookups.json")
        subprocess.run(["taskset", "-c", "1", load, "-c", "8", "-d", str(args.duration), "--timeout", "60",
                        "--paths", paths, "--json", out, "--expect-status", "200,404", f"http://127.0.0.1:{PORT}/"],
                       check=True, stdout=subprocess.DEVNULL)
        r = json.load(open(out))
        lat = r["latency_ms"]
        # 404s: ids past the end of the smaller worker's range (ids are slot mod 2).
        print(f"{args.demo}: start-up {startup:.1f} s; {r['requests']} look-ups ({r['requests_per_s']:.0f}/s), "
              f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms, "
              f"errors {r['errors']['total']} {r['errors']['statuses']}")
    finally:
        stop(p)


if __name__ == "__main__":
    main()
