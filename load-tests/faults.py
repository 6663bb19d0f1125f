#!/usr/bin/env python3
"""Fault scenarios: the demo must keep answering /health while it is abused.

For each fault, the demo-api runs pinned to CPU 0; the fault traffic and a
/health probe (phaseloop-load at a constant 200 req/s, so latency counts from
intended send times) share CPU 1. Reported: /health p50/p99/max, probe
errors, the server's RSS before and at its peak. Pass: /health p99 < 50 ms.

Faults (each bounded by --duration):
  slowloris     2,000 connections trickling a request head, a byte a second
  never-read    1,000 connections pipelining GET /json, never reading an answer
  never-read-files  the same with GET /files/loop.txt (150 KB, streamed in chunks)
  resets        connections sending half a request, then a TCP reset, in a loop
  hash-flood    200 connections hammering POST /api/hash (pbkdf2 on the pool)

Usage: python3 load-tests/faults.py [--duration 8] [--only slowloris,...]
Needs: cargo build --release -p phaseloop -p phaseloop-bench
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REL = os.path.join(ROOT, "target", "release")
sys.path.insert(0, HERE)
from compare_plaintext import port_in_use, raise_nofile, rss_kib, wait_port  # noqa: E402

PORT = 3300


def pin_to_cpu1():
    try:
        os.sched_setaffinity(0, {1})
    except (AttributeError, OSError):
        pass


def slowloris(stop, n=2000):
    socks = []
    for _ in range(n):
        if stop.is_set():
            break
        try:
            s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
            s.setblocking(False)
            s.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            pass
    while not stop.is_set():
        for i, s in enumerate(socks):
            try:
                s.send(b"X")
            except OSError:
                # Timed out by the server (408): come back, as an attacker would.
                try:
                    s.close()
                    s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
                    s.setblocking(False)
                    s.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                    socks[i] = s
                except OSError:
                    pass
        stop.wait(1.0)
    for s in socks:
        s.close()


def never_read(stop, n=1000, path=b"/json"):
    req = (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n") * 8
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            pass
    while not stop.is_set():
        for s in socks:
            try:
                s.send(req)
            except OSError:
                pass
        stop.wait(0.2)
    for s in socks:
        s.close()


def resets(stop):
    linger = struct.pack("ii", 1, 0)
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
            s.send(b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"restaurant")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.close()  # RST
        except OSError:
            pass


def hash_flood(stop, duration):
    body = '{"password":"hunter2","salt":"salt"}'
    subprocess.run([os.path.join(REL, "phaseloop-load"), "-c", "200", "-d", str(duration), "-m", "POST", "-b", body,
                    "--expect-status", "200,503", f"http://127.0.0.1:{PORT}/api/hash"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin_to_cpu1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--only", default="slowloris,never-read,never-read-files,resets,hash-flood")
    args = ap.parse_args()
    raise_nofile()
    pin_to_cpu1()
    faults = {
        "slowloris": lambda stop: slowloris(stop),
        "never-read": lambda stop: never_read(stop),
        "never-read-files": lambda stop: never_read(stop, path=b"/files/loop.txt"),
        "resets": lambda stop: resets(stop),
        "hash-flood": lambda stop: hash_flood(stop, args.duration),
    }
    rows = []
    for name in args.only.split(","):
        if port_in_use(PORT):
            sys.exit(f"port {PORT} is in use")
        data = tempfile.mkdtemp(prefix="phaseloop-faults-")
        server = subprocess.Popen(["taskset", "-c", "0", os.path.join(REL, "demo-api"), "--port", str(PORT),
                                   "--data-dir", data, "--log-level", "error"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
        wait_port(PORT, server)
        time.sleep(0.3)
        rss_before = rss_kib(server.pid)
        peak = [rss_before]
        stop = threading.Event()
        fault = threading.Thread(target=faults[name], args=(stop,))
        fault.start()
        time.sleep(1.0)  # let the fault build up

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(server.pid))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        out = os.path.join(data, "health.json")
        subprocess.run([os.path.join(REL, "phaseloop-load"), "-c", "4", "-r", "200", "-d", str(args.duration - 1),
                        "--json", out, f"http://127.0.0.1:{PORT}/health"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin_to_cpu1)
        stop.set()
        fault.join()
        sampler.join()
        alive = server.poll() is None
        server.kill()
        server.wait()
        with open(out) as f:
            r = json.load(f)
        lat = r["latency_ms"]
        expected = 200 * (args.duration - 1)
        ok = alive and lat["p99"] < 50 and r["errors"]["total"] == 0 and r["requests"] >= 0.9 * expected
        rows.append(f"| {name} | {r['requests']} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.2f} | "
                    f"{r['errors']['total']} | {rss_before / 1024:.1f} → {peak[0] / 1024:.1f} | {'pass' if ok else 'FAIL'} |")
        print(rows[-1], file=sys.stderr)
    print(f"/health probed at 200 req/s (4 connections) during each fault; {time.strftime('%Y-%m-%d')}\n")
    print("| fault | /health answers | p50 ms | p99 ms | max ms | probe errors | server RSS MiB before → peak | p99 < 50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
