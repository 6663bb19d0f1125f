#!/usr/bin/env python3
"""HTTPS on the loop against plaintext, and against nginx terminating TLS.

For each round, with the server on CPU 0 and wrk on CPU 1 (taskset):
  plain      wrk -> demo-api (HTTP)                    keep-alive
  tls        wrk -> demo-api --tls-cert (HTTPS)        keep-alive
  nginx-tls  wrk -> nginx (HTTPS, on CPU 0) -> demo-api (HTTP, CPU 0),
             upstream keep-alive: the peer
  handshakes wrk -> demo-api HTTPS with Connection: close: a full TLS
             handshake per request
Requests per server CPU-second = requests / (utime+stime of the server
processes during the run, from /proc). Medians of ROUNDS; then the memory
of N idle TLS connections (Python ssl clients, server VmRSS before/after).

Usage: python3 load-tests/tls_bench.py [ROUNDS] [SECONDS] [IDLE_N]   (3 5 2000)
Needs wrk, nginx, openssl; a release build of the demo.
"""
import os, resource, shutil, socket, ssl, statistics, subprocess, sys, tempfile, time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
SECS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
IDLE_N = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "target/release/demo-api")
TICK = os.sysconf("SC_CLK_TCK")
PLAIN, TLS, NGINX = 3421, 3422, 3423

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
work = tempfile.mkdtemp(prefix="phaseloop-tls-")
cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
               check=True, capture_output=True)


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


def start_demo(port, tls):
    args = ["taskset", "-c", "0", DEMO, "--port", str(port), "--data-dir",
            os.path.join(work, f"data{port}"), "--log-level", "warn"]
    if tls:
        args += ["--tls-cert", cert, "--tls-key", key]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    return p


def start_nginx():
    conf = os.path.join(work, "nginx.conf")
    open(conf, "w").write(f"""
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  upstream demo {{ server 127.0.0.1:{PLAIN}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{NGINX} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.3;
    location / {{ proxy_pass http://demo; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}""")
    subprocess.run(["taskset", "-c", "0", "nginx", "-c", conf, "-p", work], check=True)
    time.sleep(0.3)
    master = int(open(f"{work}/nginx.pid").read())
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return master, [master] + [int(c) for c in children]


def wrk(url, pids, extra=()):
    before = cpu_ticks(pids)
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{SECS}s", *extra, url],
                         capture_output=True, text=True).stdout
    cpu = (cpu_ticks(pids) - before) / TICK
    reqs = int([l for l in out.splitlines() if "requests in" in l][0].split()[0])
    return reqs / SECS, reqs / max(cpu, 1e-9)


def main():
    plain = start_demo(PLAIN, False)
    tls = start_demo(TLS, True)
    master, nginx_pids = start_nginx()
    rows = {k: [] for k in ("plain", "tls", "nginx-tls", "handshakes")}
    try:
        for r in range(ROUNDS):
            rows["plain"].append(wrk(f"http://127.0.0.1:{PLAIN}/plaintext", [plain.pid]))
            rows["tls"].append(wrk(f"https://127.0.0.1:{TLS}/plaintext", [tls.pid]))
            rows["nginx-tls"].append(wrk(f"https://127.0.0.1:{NGINX}/plaintext", nginx_pids + [plain.pid]))
            rows["handshakes"].append(wrk(f"https://127.0.0.1:{TLS}/plaintext", [tls.pid],
                                          ("-H", "Connection: close")))
        med = {k: (statistics.median(x for x, _ in v), statistics.median(y for _, y in v)) for k, v in rows.items()}
        for k, (rps, per_cpu) in med.items():
            print(f"{k:11} {rps:9.0f} req/s  {per_cpu:9.0f} req per server CPU-s  (rounds: "
                  + ", ".join(f"{y:.0f}" for _, y in rows[k]) + ")")
        print(f"TLS on the loop vs plaintext, per CPU-s: {med['tls'][1] / med['plain'][1]:.2f}x")
        print(f"TLS on the loop vs nginx terminating TLS in front, per CPU-s: "
              f"{med['tls'][1] / med['nginx-tls'][1]:.2f}x; throughput {med['tls'][0] / med['nginx-tls'][0]:.2f}x")
        print(f"handshakes: {med['handshakes'][0]:.0f}/s, {med['handshakes'][1]:.0f} per server CPU-s")
        # Idle TLS connections' memory.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        time.sleep(6)  # the keep-alive timeout lets wrk's connections go

        def idle(port, pids, who):
            before = sum(rss_kib(p) for p in pids)
            conns = []
            for _ in range(IDLE_N):
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(4096)
                conns.append(s)
            time.sleep(0.5)
            after = sum(rss_kib(p) for p in pids)
            print(f"{IDLE_N} idle TLS connections to {who} (after one request each): RSS {before} -> {after} KiB: "
                  f"{(after - before) * 1024 / IDLE_N:.0f} bytes each")
            for s in conns:
                s.close()

        idle(TLS, [tls.pid], "demo-api")
        # nginx's worker (its upstream connections to the demo are pooled:
        # the demo's RSS is not counted).
        idle(NGINX, nginx_pids[1:], "nginx")
    finally:
        for p in (plain, tls):
            p.terminate()
            p.wait()
        subprocess.run(["kill", str(master)])
        shutil.rmtree(work, ignore_errors=True)


main()
