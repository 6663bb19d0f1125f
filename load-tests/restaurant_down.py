#!/usr/bin/env python3
"""The restaurant down under order load: does the demo stay fast, stop
hammering the dead endpoint, and deliver everything once it is back?

restaurant-sim refuses connections for --down seconds from the start; the
demo (CPU 0) notifies it (--notify-url); phaseloop-load (CPU 1) posts
orders for --duration seconds, and a /health probe (phaseloop-load at a
constant 100 req/s, latency from intended send times) runs beside it.
Every second the demo's /metrics is sampled (breaker state, failed
attempts, outbox depth). After the load: how long until the restaurant has
every accepted order, and how many it got twice.

Usage: python3 load-tests/restaurant_down.py [--down 10] [--duration 15] [--connections 20]
Needs: cargo build --release -p phaseloop-demo -p phaseloop-bench
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REL = os.path.join(ROOT, "target", "release")
sys.path.insert(0, HERE)
from compare_plaintext import raise_nofile, wait_port  # noqa: E402

DEMO, SIM = 3410, 3411
ORDER = '{"restaurant_id":1,"customer":"Ann","items":[{"name":"pho","qty":2}]}'


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def sim_stats():
    try:
        return json.loads(get(f"http://127.0.0.1:{SIM}/stats"))
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--down", type=int, default=10)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=20)
    args = ap.parse_args()
    raise_nofile()
    data = tempfile.mkdtemp(prefix="phaseloop-down-")
    sim = subprocess.Popen([os.path.join(REL, "restaurant-sim"), "--port", str(SIM),
                            "--refuse-ms", str(args.down * 1000)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.time()
    demo = subprocess.Popen(["taskset", "-c", "0", os.path.join(REL, "demo-api"), "--port", str(DEMO),
                             "--data-dir", data, "--log-level", "error",
                             "--notify-url", f"http://127.0.0.1:{SIM}",
                             "--breaker-cool-down-ms", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(DEMO, demo)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    m = get(f"http://127.0.0.1:{DEMO}/metrics")
                    samples.append((round(time.time() - started, 1),
                                    metric(m, "phaseloop_notification_breaker_state"),
                                    metric(m, "phaseloop_notification_retries_total"),
                                    metric(m, "phaseloop_notification_outbox_depth"),
                                    metric(m, "phaseloop_notifications_delivered_total")))
                except OSError:
                    pass
                stop.wait(1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        load = os.path.join(REL, "phaseloop-load")
        orders_json = os.path.join(data, "orders.json")
        health_json = os.path.join(data, "health.json")
        orders = subprocess.Popen(
            ["taskset", "-c", "1", load, "-c", str(args.connections), "-d", str(args.duration),
             "-m", "POST", "-b", ORDER, "-H", "Content-Type: application/json",
             "--expect-status", "201", "--json", orders_json, f"http://127.0.0.1:{DEMO}/api/orders"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        health = subprocess.Popen(
            ["taskset", "-c", "1", load, "-c", "4", "-d", str(args.duration), "-r", "100",
             "--json", health_json, f"http://127.0.0.1:{DEMO}/health"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        orders.wait()
        health.wait()
        loaded = time.time()
        o = json.load(open(orders_json))
        h = json.load(open(health_json))
        accepted = o["requests"] - o["errors"]["total"]
        # Until the restaurant has every accepted order.
        deadline = loaded + 120
        st = sim_stats()
        while time.time() < deadline and (st is None or st["unique"] < accepted):
            time.sleep(0.2)
            st = sim_stats()
        drained = time.time()
        stop.set()
        sampler.join()
        back_at = args.down
        print(f"restaurant down for the first {args.down} s; orders for {args.duration} s, "
              f"{args.connections} connections")
        keys = ("requests", "requests_per_s", "latency_ms")
        print(f"orders: {json.dumps({k: o[k] for k in keys})}, errors {o['errors']['total']}")
        print(f"/health probe (100 req/s): {json.dumps({k: h[k] for k in keys})}, errors {h['errors']['total']}")
        print("samples (s since start, breaker, failed attempts, outbox depth, delivered):")
        for s in samples:
            print("  ", s)
        print(f"restaurant: {st}; every accepted order ({accepted}) there "
              f"{drained - started - back_at:.1f} s after it came back "
              f"({drained - loaded:.1f} s after the load ended)")
    finally:
        for p in (demo, sim):
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
