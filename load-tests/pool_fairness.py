#!/usr/bin/env python3
"""Pool fairness both ways: file reads during a pbkdf2 flood.

The demo-api runs pinned to CPU 0 with its default 4-thread pool. On CPU 1:
200 connections hammer POST /api/hash (pbkdf2-sha512, 100,000 rounds, on the
crypto lane) while two probes at a constant 20 req/s each (latency from the
intended send time) read through the pool's fs lane: GET /api/users/<unknown
id> (a store read every time: unknown ids are not cached) and GET
/files/loop.txt. Reported: each probe's p50/p99/max, and /api/hash
throughput in the flood alone and with the probes.

Usage: python3 load-tests/pool_fairness.py [--demo target/release/demo-api]
       [--duration 10] [--runs 3]
Needs: cargo build --release -p phaseloop -p phaseloop-bench
Run two builds one after another (--demo) to compare them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REL = os.path.join(ROOT, "target", "release")
sys.path.insert(0, HERE)
from compare_plaintext import wait_port  # noqa: E402

PORT = 3310
HASH_BODY = '{"password":"correct horse","salt":"battery staple"}'


def load(args, out):
    cmd = ["taskset", "-c", "1", os.path.join(REL, "phaseloop-load"), "--json", out] + args
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read(path):
    with open(path) as f:
        return json.load(f)


def serve(demo):
    """A fresh server per phase: hashes queued for the clients of one phase
    (gone when it ends) must not delay the next."""
    data = tempfile.mkdtemp(prefix="phaseloop-fair-")
    server = subprocess.Popen(["taskset", "-c", "0", demo, "--port", str(PORT), "--data-dir", data,
                               "--log-level", "error"], stdout=subprocess.DEVNULL)
    wait_port(PORT, server)
    return server, data


def stop(server, data):
    server.kill()  # not a drain: the phase's clients are gone
    server.wait()
    subprocess.run(["rm", "-rf", data])


def one_run(demo, duration, tmp):
    base = f"http://127.0.0.1:{PORT}"
    flood = ["-c", "200", "-d", str(duration), "-m", "POST", "-b", HASH_BODY, "--timeout", "60",
             "-H", "Content-Type: application/json", "--expect-status", "200,503", base + "/api/hash"]
    # The flood alone.
    server, data = serve(demo)
    try:
        load(flood, os.path.join(tmp, "alone.json")).wait()
    finally:
        stop(server, data)
    # The flood with the probes.
    server, data = serve(demo)
    try:
        f = load(flood, os.path.join(tmp, "flood.json"))
        time.sleep(1)  # let the flood fill the queue first
        probe = ["-c", "4", "-r", "20", "-d", str(duration - 2), "--timeout", "60"]
        users = load(probe + ["--expect-status", "404", base + "/api/users/987654321"],
                     os.path.join(tmp, "users.json"))
        files = load(probe + [base + "/files/loop.txt"], os.path.join(tmp, "files.json"))
        for p in (users, files, f):
            p.wait()
    finally:
        stop(server, data)
    return {k: read(os.path.join(tmp, k + ".json")) for k in ("alone", "flood", "users", "files")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default=os.path.join(REL, "demo-api"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="phaseloop-fair-out-")
    rows = []
    for i in range(args.runs):
        r = one_run(args.demo, args.duration, tmp)
        rows.append(r)
        print(f"run {i + 1}: hash alone {r['alone']['requests_per_s']:.1f}/s, with probes "
              f"{r['flood']['requests_per_s']:.1f}/s; users p50/p99/max "
              f"{r['users']['latency_ms']['p50']:.1f}/{r['users']['latency_ms']['p99']:.1f}/"
              f"{r['users']['latency_ms']['max']:.1f} ms; files p50/p99/max "
              f"{r['files']['latency_ms']['p50']:.1f}/{r['files']['latency_ms']['p99']:.1f}/"
              f"{r['files']['latency_ms']['max']:.1f} ms; probe answers "
              f"{r['users']['requests']}+{r['files']['requests']} of {2 * 20 * (args.duration - 2)} sent; probe errors "
              f"{r['users']['errors']['total'] + r['files']['errors']['total']}", flush=True)
    med = lambda f: statistics.median(f(r) for r in rows)  # noqa: E731
    print(f"median of {args.runs}: hash alone {med(lambda r: r['alone']['requests_per_s']):.1f}/s, "
          f"with probes {med(lambda r: r['flood']['requests_per_s']):.1f}/s; "
          f"users p99 {med(lambda r: r['users']['latency_ms']['p99']):.1f} ms; "
          f"files p99 {med(lambda r: r['files']['latency_ms']['p99']):.1f} ms")


if __name__ == "__main__":
    main()
