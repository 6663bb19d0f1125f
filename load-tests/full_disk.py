#!/usr/bin/env python3
"""Full disk, for real: the demo's data directory on a 2 MB tmpfs.

Orders are posted until one fails (the disk is full), a filler file is then
deleted and 300 more orders are posted (all must get 201); the server is
stopped with SIGTERM and started again, and every acknowledged order must be
found with its own content, with no id given twice. Needs root (it mounts a
tmpfs); without it, it says so and exits 0. The same scenario without root
runs in the test suite with a file-size limit instead of a small disk
(server/tests/full_disk.rs).

Usage: sudo python3 load-tests/full_disk.py [--demo target/release/demo-api]
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_process import start_demo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PORT = 3330


def start(demo, data):
    return start_demo(demo, PORT, data)[0]


def post(n):
    body = json.dumps({"restaurant_id": 1, "customer": f"disk-{n}", "items": [{"name": "pho", "qty": 1}]})
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c.request("POST", "/api/orders", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default=os.path.join(ROOT, "target", "release", "demo-api"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("full_disk.py: skipped: mounting a tmpfs needs root")
        return
    mnt = tempfile.mkdtemp(prefix="phaseloop-tmpfs-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]).returncode != 0:
        print("full_disk.py: skipped: this machine does not let us mount a tmpfs")
        return
    try:
        data = os.path.join(mnt, "data")
        p = start(args.demo, data)
        # Most of the disk taken by something else.
        with open(os.path.join(mnt, "filler"), "wb") as f:
            try:
                f.write(b"\0" * (2 * 1024 * 1024))
            except OSError:
                pass
        # Leave ~64 KiB: truncate the filler to the free space minus that.
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        os.truncate(os.path.join(mnt, "filler"), max(0, os.path.getsize(os.path.join(mnt, "filler")) - max(0, 65536 - free)))
        acked, n, failures = {}, 0, 0
        while failures == 0 and n < 100000:
            n += 1
            status, body = post(n)
            if status == 201:
                acked[json.loads(body)["id"]] = f"disk-{n}"
            else:
                failures += 1
                print(f"order {n}: {status} {body.decode(errors='replace').strip()}")
        os.remove(os.path.join(mnt, "filler"))
        for _ in range(300):
            n += 1
            status, body = post(n)
            if status != 201:
                sys.exit(f"after room was made, order {n} got {status}: {body!r}")
            oid = json.loads(body)["id"]
            if oid in acked:
                sys.exit(f"id {oid} given twice")
            acked[oid] = f"disk-{n}"
        p.send_signal(signal.SIGTERM)
        p.wait()
        p = start(args.demo, data)
        missing = []
        for oid, customer in acked.items():
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            c.request("GET", f"/api/orders/{oid}")
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or json.loads(body)["order"]["customer"] != customer:
                missing.append(oid)
        p.send_signal(signal.SIGTERM)
        p.wait()
        print(f"full disk: {len(acked)} acknowledged orders ({n - len(acked)} refused while full); "
              f"after restart {len(missing)} missing or changed -> {'ok' if not missing else 'FAIL'}")
        sys.exit(1 if missing else 0)
    finally:
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)


if __name__ == "__main__":
    main()
