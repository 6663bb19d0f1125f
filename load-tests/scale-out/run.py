#!/usr/bin/env python3
"""The scale-out scenarios: demo-api instances on one PostgreSQL behind nginx
(up.sh / down.sh start and stop the setup; everything on loopback).

  throughput  for 1 and 2 instances: user reads (phaseloop-load -c 64 over
              the 100 users) and orders (phaseloop-load -c 16, POST) at once
              through nginx for SECONDS; req/s, p99, errors, each instance's
              share (from nginx's log of upstream addresses)
  kill        2 instances, orders posted by 8 client threads through nginx;
              instance 1 SIGKILLed after 2 s and started again after 4 s;
              then: every acknowledged order is in the database, every order
              in the database reached the restaurant (unique keys; a repeat
              is counted, the receiver acts once), instance 1 took requests
              again
  rolling     2 instances under reads and orders from 8 client threads;
              each instance in turn SIGTERMed (it drains), started again;
              failed requests at the client counted

Usage: python3 load-tests/scale-out/run.py [throughput|kill|rolling|all] [SECONDS=10]
Prints a summary per scenario (the figures bench/README.md quotes).
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.join(ROOT, "load-tests", "scale-out")
DIR = "/tmp/phaseloop-scale-out"
ORDER = '{"restaurant_id":1,"customer":"load","items":[{"name":"x","qty":1}]}'


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw).stdout


def up(n, loops=1):
    subprocess.run(["bash", os.path.join(HERE, "down.sh"), DIR], capture_output=True)
    out = sh("bash", os.path.join(HERE, "up.sh"), DIR, str(n), str(loops))
    return dict(l.split("=", 1) for l in out.strip().splitlines() if "=" in l)


def down():
    subprocess.run(["bash", os.path.join(HERE, "down.sh"), DIR], capture_output=True)


def psql(sql):
    """Runs SQL (a script, read from stdin: it may be long) and returns its output."""
    cmd = open(os.path.join(DIR, "psql")).read().split()
    return subprocess.run(cmd + ["-v", "ON_ERROR_STOP=1"], input=sql, check=True, text=True,
                          capture_output=True).stdout.strip()


def shares():
    """Requests per upstream address in nginx's log (flushed each second)."""
    time.sleep(1.2)
    counts = {}
    try:
        for line in open(os.path.join(DIR, "nginx", "access.log")):
            addr = line.split()[0]
            counts[addr] = counts.get(addr, 0) + 1
    except FileNotFoundError:
        pass
    return counts


def restaurant_stats():
    c = http.client.HTTPConnection("127.0.0.1", 3600, timeout=5)
    c.request("GET", "/stats")
    return json.loads(c.getresponse().read())


def load(args, out):
    cmd = ["taskset", "-c", "1", os.path.join(ROOT, "target/release/phaseloop-load")] + args
    subprocess.run(cmd + ["--json", out], check=True, capture_output=True)
    return json.load(open(out))


def throughput(seconds):
    results = []
    paths = os.path.join("/tmp", "scale-out-paths")
    with open(paths, "w") as f:
        f.write("\n".join(f"/api/users/{i}" for i in range(1, 101)))
    for n in (1, 2):
        up(n)
        # The instances on CPU 0, nginx and PostgreSQL wherever the kernel
        # puts them, the load on CPU 1.
        for i in range(1, n + 1):
            subprocess.run(["taskset", "-a", "-p", "-c", "0", open(f"{DIR}/i{i}.pid").read().strip()],
                           capture_output=True)
        t = {}
        th = [
            threading.Thread(target=lambda: t.update(reads=load(
                ["-c", "64", "-d", str(seconds), "--paths", paths, "http://127.0.0.1:3500/"],
                "/tmp/scale-out-reads.json"))),
            threading.Thread(target=lambda: t.update(orders=load(
                ["-c", "16", "-d", str(seconds), "-m", "POST", "-H", "Content-Type: application/json",
                 "-b", ORDER, "--expect-status", "201", "http://127.0.0.1:3500/api/orders"],
                "/tmp/scale-out-orders.json"))),
        ]
        for x in th:
            x.start()
        for x in th:
            x.join()
        share = shares()
        total = sum(share.values()) or 1
        r, o = t["reads"], t["orders"]
        line = (f"{n} instance(s): reads {r['requests_per_s']:.0f}/s p99 {r['latency_ms']['p99']:.2f} ms "
                f"errors {r['errors']['total']}; orders {o['requests_per_s']:.0f}/s p99 "
                f"{o['latency_ms']['p99']:.2f} ms errors {o['errors']['total']}; shares "
                + ", ".join(f"{a} {100 * c / total:.1f}%" for a, c in sorted(share.items())))
        print(line, flush=True)
        results.append(line)
        down()
    return results


class Clients:
    """Client threads through nginx, each on a keep-alive connection."""

    def __init__(self, threads, reads=True):
        self.stop = False
        self.lock = threading.Lock()
        self.acked = []
        self.failures = []
        self.reads = 0
        self.threads = [threading.Thread(target=self.run, args=(i, reads)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, k, reads):
        conn = None
        n = 0
        while not self.stop:
            n += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", 3500, timeout=10)
                if reads and n % 2 == 0:
                    conn.request("GET", f"/api/users/{n % 100 + 1}")
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"GET {resp.status} {body[:80]!r}")
                    with self.lock:
                        self.reads += 1
                else:
                    conn.request("POST", "/api/orders", ORDER, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 201:
                        raise RuntimeError(f"POST {resp.status} {body[:80]!r}")
                    with self.lock:
                        self.acked.append(json.loads(body)["id"])
            except Exception as e:  # a failure at the client, counted
                with self.lock:
                    self.failures.append(f"{type(e).__name__}: {e}")
                conn = None
                time.sleep(0.01)

    def finish(self):
        self.stop = True
        for t in self.threads:
            t.join()


def wait_delivered(limit):
    start = time.time()
    while time.time() - start < limit:
        if psql("SELECT count(*) FROM outbox WHERE state <> 'delivered'") == "0":
            return time.time() - start
        time.sleep(0.5)
    return None


def kill(seconds):
    up(2)
    clients = Clients(8, reads=False)
    time.sleep(2)
    os.kill(int(open(f"{DIR}/i1.pid").read()), signal.SIGKILL)
    killed_at = time.time()
    time.sleep(2)
    sh("bash", os.path.join(HERE, "instance.sh"), DIR, "1")
    before = shares().get("127.0.0.1:3501", 0)
    time.sleep(max(2, seconds - 4))
    clients.finish()
    after = shares().get("127.0.0.1:3501", 0)
    acked = sorted(set(clients.acked))
    ids = "\n".join(map(str, acked))
    missing = psql(f"CREATE TEMP TABLE acked (id bigint);\nCOPY acked FROM STDIN;\n{ids}\n\\.\n"
                   "SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.id);")
    in_db = int(psql("SELECT count(*) FROM orders"))
    # A lease of a killed instance runs out after 30 s; then another sends it.
    took = wait_delivered(90)
    stats = restaurant_stats()
    lines = [
        f"kill: {len(acked)} orders acknowledged, {len(clients.failures)} failed at the client "
        f"(killed at {killed_at:.0f}); acknowledged but missing from the database: {missing}; "
        f"orders in the database: {in_db}",
        f"kill: all delivered {'after %.1f s more' % took if took is not None else 'NOT within 90 s'}; "
        f"restaurant: {stats.get('received')} received, {stats.get('unique')} unique, "
        f"{stats.get('duplicates')} repeats (acted on once)",
        f"kill: the restarted instance took {after - before} requests after it rejoined",
    ]
    for f in sorted(set(clients.failures))[:5]:
        lines.append(f"kill: failure seen: {f}")
    for l in lines:
        print(l, flush=True)
    down()
    return lines


def rolling(seconds):
    up(2)
    clients = Clients(8, reads=True)
    time.sleep(2)
    for i in (1, 2):
        pid = int(open(f"{DIR}/i{i}.pid").read())
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        sh("bash", os.path.join(HERE, "instance.sh"), DIR, str(i))
        time.sleep(max(1, seconds / 4))
    clients.finish()
    lines = [f"rolling: {clients.reads} reads and {len(clients.acked)} orders answered, "
             f"{len(clients.failures)} failed at the client"]
    for f in sorted(set(clients.failures))[:5]:
        lines.append(f"rolling: failure seen: {f}")
    for l in lines:
        print(l, flush=True)
    try:
        # Refused connects nginx tried elsewhere are expected; the rest
        # are what reached a client.
        errors = [l for l in open(os.path.join(DIR, "nginx", "error.log")).read().splitlines()
                  if "[error]" in l and "connect() failed" not in l]
        for l in errors[-6:]:
            print("rolling: nginx: " + l[:300], flush=True)
    except FileNotFoundError:
        pass
    down()
    return lines


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "phaseloop-demo", "-p", "phaseloop-bench"],
                   cwd=ROOT, check=True)
    try:
        if what in ("throughput", "all"):
            throughput(seconds)
        if what in ("kill", "all"):
            kill(seconds)
        if what in ("rolling", "all"):
            rolling(seconds)
    finally:
        down()


if __name__ == "__main__":
    main()
