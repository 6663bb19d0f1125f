#!/usr/bin/env python3
"""Resident memory per idle keep-alive connection.

Starts a server (phaseloop's demo-api, or the floor / node for comparison),
opens --connections keep-alive connections, sends one GET /plaintext on each
and reads the answer, then compares the server's RSS with its RSS before.
Usage: python3 load-tests/idle_memory.py [--connections 10000] [--server phaseloop|floor|node]
"""
import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_plaintext import raise_nofile, rss_kib, start  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--server", default="phaseloop")
    args = ap.parse_args()
    raise_nofile()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 100:
        sys.exit(f"need {args.connections + 100} descriptors, have {soft}")
    port = {"phaseloop": 3170, "floor": 3171, "node": 3172}[args.server]
    data = tempfile.mkdtemp(prefix="phaseloop-mem-")
    proc = start(args.server, port, data)
    try:
        # Warm up: one connection, so lazily created state exists already.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        s.close()
        time.sleep(0.3)
        before = rss_kib(proc.pid)
        sel = selectors.DefaultSelector()
        socks = []
        for i in range(args.connections):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            socks.append(c)
            sel.register(c, selectors.EVENT_WRITE, [False, b""])
            if i % 500 == 499:
                time.sleep(0.05)
        answered = 0
        deadline = time.time() + 60
        while answered < len(socks) and time.time() < deadline:
            for key, ev in sel.select(timeout=1):
                state = key.data
                if ev & selectors.EVENT_WRITE and not state[0]:
                    try:
                        key.fileobj.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                        state[0] = True
                        sel.modify(key.fileobj, selectors.EVENT_READ, state)
                    except BlockingIOError:
                        pass
                elif ev & selectors.EVENT_READ:
                    chunk = key.fileobj.recv(4096)
                    state[1] += chunk
                    if state[1].endswith(b"Hello, World!"):
                        answered += 1
                        sel.unregister(key.fileobj)
        # Idle connections give their request state back at the server's
        # next nap (at most a second after going idle): wait past it.
        time.sleep(1.5)
        after = rss_kib(proc.pid)
        per = (after - before) * 1024 / max(answered, 1)
        print(f"{args.server}: {answered} idle keep-alive connections; RSS {before} KiB -> {after} KiB; "
              f"{per:.0f} bytes per connection")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
