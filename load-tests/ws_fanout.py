#!/usr/bin/env python3
"""WebSockets at scale: N idle sockets' memory on the server, and one
message broadcast to all of them.

Starts bench's ws-fanout on CPU 0 (taskset), opens N WebSockets to it from
this process (CPU 1), reads the server's RSS before and after (VmRSS from
/proc), asks /broadcast R times (the server times its sends on the loop),
and checks every socket received each message exactly once.

Then the same against the Node peer (load-tests/node/ws-fanout.js: the
`ws` package, the one a Node service would use), and the ratios.

Usage: python3 load-tests/ws_fanout.py [N] [ROUNDS]   (default 10000 5)
Needs a release build (cargo build --release -p phaseloop-bench) and the
Node peers installed (cd load-tests/node && npm ci).
"""
import base64, json, os, resource, socket, statistics, subprocess, sys, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
PORT = 3411
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = {
    "phaseloop ws-fanout": [os.path.join(ROOT, "target/release/ws-fanout")],
    "node ws": ["node", os.path.join(ROOT, "load-tests/node/ws-fanout.js")],
}

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def http_get(path):
    s = socket.create_connection(("127.0.0.1", PORT))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()


def open_ws():
    s = socket.create_connection(("127.0.0.1", PORT))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed during the handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def run(name, command):
    """(bytes per idle socket, median ns per socket of a broadcast)."""
    server = subprocess.Popen(["taskset", "-c", "0", *command, str(PORT)],
                              stdout=subprocess.PIPE, text=True)
    server.stdout.readline()
    try:
        http_get("/broadcast")  # warm: the loop, the allocator
        time.sleep(0.3)
        before = rss_kib(server.pid)
        sockets = [open_ws() for _ in range(N)]
        time.sleep(0.5)
        after = rss_kib(server.pid)
        per_socket = (after - before) * 1024 / N
        print(f"{name}: {N} idle WebSockets: server RSS {before} KiB -> {after} KiB: {per_socket:.0f} bytes each")
        times = []
        for r in range(ROUNDS):
            got = json.loads(http_get("/broadcast"))
            assert got["sent"] == N and got["refused"] == 0, got
            times.append(got["ns"] / N)
            # Every socket gets the frame once.
            for s in sockets:
                s.settimeout(10)
                frame = b""
                while len(frame) < 2 or len(frame) < 2 + frame[1]:
                    frame += s.recv(256)
                assert frame[0] == 0x81 and frame[2:] == b'{"order":42,"step":"notified"}', frame
        median = statistics.median(times)
        print(f"{name}: broadcast to {N}: {median:.0f} ns per socket on the loop "
              f"(median of {ROUNDS}: {', '.join(f'{t:.0f}' for t in times)}); every socket got each message once")
        for s in sockets:
            s.close()
        return per_socket, median
    finally:
        server.terminate()
        server.wait()


def main():
    os.sched_setaffinity(0, {1})
    ours = run("phaseloop ws-fanout", PEERS["phaseloop ws-fanout"])
    node = run("node ws", PEERS["node ws"])
    print(f"memory per idle WebSocket: phaseloop {ours[0]:.0f} B, node ws {node[0]:.0f} B: "
          f"{node[0] / ours[0]:.1f}x less")
    print(f"broadcast per socket: phaseloop {ours[1]:.0f} ns, node ws {node[1]:.0f} ns: "
          f"{node[1] / ours[1]:.2f}x faster")


main()
