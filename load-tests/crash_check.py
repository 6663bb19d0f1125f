#!/usr/bin/env python3
"""Crash and check: SIGKILL the demo under order load, restart it, and check
every acknowledged order, in each mode (one loop, --loops 2, --workers 2).

Per cycle: 8 client threads post orders (each on its own keep-alive
connection) for a random 0.5-2 s; the server (and in process mode its
workers) is killed with SIGKILL; it is started again on the same data
directory, and every order that got a 201 must be found (200) with its own
content, no id may have been given twice, and every acknowledged order must
end up notified. The last cycle restarts in another mode, so a data
directory moves between modes as well.

Usage: python3 load-tests/crash_check.py [--cycles 5] [--demo target/release/demo-api]
Needs: cargo build --release -p phaseloop
"""
import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_process import start_demo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PORT = 3320
MODES = {"single": [], "loops2": ["--loops", "2"], "workers2": ["--workers", "2"]}


def start(demo, data, mode):
    return start_demo(demo, PORT, data, MODES[mode])[0]


def kill(p):
    # The whole session: a supervisor and its workers alike.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def poster(n, stop, acked, lock):
    k = 0
    conn = None
    while not stop.is_set():
        k += 1
        customer = f"crash-{n}-{k}-{random.randrange(1 << 30)}"
        body = json.dumps({"restaurant_id": n + 1, "customer": customer, "items": [{"name": "pho", "qty": 1}]})
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
            conn.request("POST", "/api/orders", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status == 201:
                with lock:
                    oid = json.loads(data)["id"]
                    if oid in acked and acked[oid] != customer:
                        acked.setdefault("__dupes__", []).append(oid)
                    acked[oid] = customer
        except (OSError, http.client.HTTPException):
            conn = None
            time.sleep(0.01)


def get(oid):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c.request("GET", f"/api/orders/{oid}")
    r = c.getresponse()
    return r.status, r.read()


def check(acked):
    missing, wrong, pending = [], [], []
    for oid, customer in acked.items():
        if oid == "__dupes__":
            continue
        status, body = get(oid)
        if status != 200:
            missing.append(oid)
            continue
        v = json.loads(body)
        if v["order"]["customer"] != customer:
            wrong.append(oid)
        if v["notification"] != "delivered":
            pending.append(oid)
    return missing, wrong, pending


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--demo", default=os.path.join(ROOT, "target", "release", "demo-api"))
    args = ap.parse_args()
    failed = False
    modes = list(MODES)
    for i, mode in enumerate(modes):
        data = tempfile.mkdtemp(prefix=f"phaseloop-crash-{mode}-")
        acked, lock = {}, threading.Lock()
        for cycle in range(args.cycles):
            p = start(args.demo, data, mode)
            stop = threading.Event()
            threads = [threading.Thread(target=poster, args=(n, stop, acked, lock)) for n in range(8)]
            for t in threads:
                t.start()
            time.sleep(random.uniform(0.5, 2.0))
            kill(p)
            stop.set()
            for t in threads:
                t.join()
        # Restart in this mode, then in the next one: the directory moves.
        for check_mode in (mode, modes[(i + 1) % len(modes)]):
            p = start(args.demo, data, check_mode)
            deadline = time.time() + 30
            while True:
                missing, wrong, pending = check(acked)
                if missing or wrong or not pending or time.time() > deadline:
                    break
                time.sleep(0.5)
            kill(p)
            dupes = acked.get("__dupes__", [])
            n = len(acked) - (1 if dupes else 0)
            ok = not (missing or wrong or pending or dupes)
            failed |= not ok
            print(f"{mode}: {args.cycles} SIGKILL cycles, {n} acknowledged orders; restarted as {check_mode}: "
                  f"{len(missing)} missing, {len(wrong)} changed, {len(dupes)} ids given twice, "
                  f"{len(pending)} not notified -> {'ok' if ok else 'FAIL'}", flush=True)
        subprocess.run(["rm", "-rf", data])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
