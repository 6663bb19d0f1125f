#!/usr/bin/env python3
"""Resident memory per idle keep-alive connection.

Starts a server (phaseloop's demo-api, or the floor / node for comparison),
opens --connections keep-alive connections, sends one GET /plaintext on each
and reads the answer, then compares the server's RSS with its RSS before.

Past one process's descriptor limit (`ulimit -Hn`, 20,000 here), use
`--workers N`: demo-api's process mode, N worker processes sharing the
port, each with its own limit; the RSS is then the sum over the supervisor
and its workers. The connections come from several client processes, each
from its own loopback source address (127.X.Y.2, .3, ...), so neither
their descriptor limit nor the ephemeral ports of one address run out.

Usage: python3 load-tests/idle_memory.py [--connections 10000] [--server phaseloop|floor|node]
       python3 load-tests/idle_memory.py --connections 100000 --workers 7
"""
import argparse
import multiprocessing
import os
import random
import resource
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_plaintext import raise_nofile, rss_kib, start  # noqa: E402

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
# Connections one client process opens at most (below its descriptor
# limit, and below the ~28,000 ephemeral ports of one source address).
PER_CLIENT = 15000


def tree_rss_kib(pid):
    """RSS of a process and its children (the workers of process mode)."""
    total = rss_kib(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    return total + sum(tree_rss_kib(c) for c in children)


def client(port, count, source, ready, done):
    """Opens `count` connections from `source`, one request each; reports
    how many were answered, then holds them open until `done` is set.
    Blocking connects, one after another: on loopback each takes a few
    microseconds, and no burst of SYNs overflows the server's backlog."""
    raise_nofile()
    socks = []
    try:
        for _ in range(count):
            c = socket.socket()
            # A port of this source address's own range (bound first):
            # the clients together go past one address's ~28,000 ports.
            c.bind((source, 0))
            c.connect(("127.0.0.1", port))
            c.sendall(REQUEST)
            socks.append(c)
    except OSError as e:
        print(f"client {source}: {e} after {len(socks)} connections", file=sys.stderr)
    answered = 0
    for c in socks:
        c.settimeout(10)
        got = b""
        try:
            while not got.endswith(b"Hello, World!"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                got += chunk
        except OSError:
            continue
        answered += got.endswith(b"Hello, World!")
    ready.put(answered)
    done.wait()
    for c in socks:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--server", default="phaseloop")
    ap.add_argument("--workers", type=int, default=0,
                    help="demo-api worker processes (process mode); 0: one process")
    args = ap.parse_args()
    raise_nofile()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    server_procs = max(args.workers, 1)
    if soft < args.connections // server_procs + 500:
        sys.exit(f"need {args.connections // server_procs + 500} descriptors per server "
                 f"process, have {soft}: add --workers")
    port = {"phaseloop": 3170, "floor": 3171, "node": 3172}[args.server]
    data = tempfile.mkdtemp(prefix="phaseloop-mem-")
    extra = ["--workers", str(args.workers)] if args.workers else []
    proc = start(args.server, port, data, extra)
    done = multiprocessing.Event()
    clients = []
    try:
        # Warm up: a few connections, so lazily created state exists already
        # (in every worker, as far as the kernel spreads them).
        for _ in range(4 * server_procs):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(REQUEST)
            s.recv(4096)
            s.close()
        time.sleep(1.5 if args.workers else 0.3)
        before = tree_rss_kib(proc.pid)
        ready = multiprocessing.Queue()
        # Source addresses of this run: a subnet of 127/8 earlier runs are
        # unlikely to have used (their ports may still be in TIME_WAIT).
        subnet = random.randint(1, 254)
        left = args.connections
        n = 0
        while left > 0:
            count = min(PER_CLIENT, left)
            p = multiprocessing.Process(
                target=client, args=(port, count, f"127.0.{subnet}.{2 + n}", ready, done))
            p.start()
            clients.append(p)
            left -= count
            n += 1
        answered = sum(ready.get(timeout=300) for _ in clients)
        # Idle connections give their request state back as soon as they
        # are answered; a moment for the last answers' bookkeeping.
        time.sleep(1.5)
        after = tree_rss_kib(proc.pid)
        per = (after - before) * 1024 / max(answered, 1)
        procs = f" ({args.workers} worker processes)" if args.workers else ""
        print(f"{args.server}{procs}: {answered} idle keep-alive connections; "
              f"RSS {before} KiB -> {after} KiB; {per:.0f} bytes per connection")
    finally:
        # The server closes first: the TIME_WAIT states are its side's,
        # not the clients' source ports (the next run needs those).
        proc.kill()
        proc.wait()
        done.set()
        for p in clients:
            p.join(timeout=30)


if __name__ == "__main__":
    main()
