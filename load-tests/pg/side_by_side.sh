#!/usr/bin/env bash
# The seed's GET /api/users/:id read from PostgreSQL, three servers over the
# same throwaway cluster (load-tests/pg/cluster.sh; 10,000 users), the same
# query by primary key and the same pool size (20):
#   phaseloop   bench/src/bin/pg-users.rs: phaseloop::pg on the loop
#   node        load-tests/node/pg-users.js: Express + pg's Pool, the seed's code
#   blocking    pg-users --blocking: a blocking driver on phaseloop's 4-thread pool
# Each round runs each server in turn (the order rotates) on CPU 0 with
# PostgreSQL and the load (phaseloop-load, -c 64 over the 10,000 ids) on
# CPU 1. Per run: requests, requests per server CPU-second (all its CPU
# time, every thread's, from /proc/<pid>/task/*/schedstat) and p99. Then the medians, and phaseloop's
# requests per CPU-second over each peer's. Finally pipelining on one
# connection: queries per second awaited one at a time and 64 in flight.
# PG_PAUSE_MS=2 makes each query take 2 ms more in PostgreSQL (a pg_sleep
# in the select list): a slower query, where four blocking threads cap the
# throughput at 4 / latency and the loop's 20 connections do not.
# Usage: [PG_PAUSE_MS=N] load-tests/pg/side_by_side.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}; secs=${2:-4}; conns=${3:-64}
cargo build --release -q -p phaseloop-bench --bin pg-users --bin phaseloop-load
[ -d load-tests/node/node_modules/pg ] || (cd load-tests/node && npm ci --silent)
bash load-tests/pg/cluster.sh install
work=$(mktemp -d /tmp/pg-sbs.XXXXXX)
chmod 755 "$work" # the server runs as postgres when we are root: it must reach $work/pg
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; bash load-tests/pg/cluster.sh stop "$work/pg"' EXIT
settings=$(bash load-tests/pg/cluster.sh start "$work/pg")
eval "$settings"
pgpid=$(head -1 "$work/pg/data/postmaster.pid")
taskset -a -p -c 1 "$pgpid" >/dev/null
"$PHASELOOP_PG_BIN/psql" -h "$PHASELOOP_PG_SOCKET_DIR" -p "$PHASELOOP_PG_PORT" -U postgres -X -q -d postgres <<'SQL'
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
INSERT INTO users SELECT i, 'User ' || i, 'user' || i || '@example.com' FROM generate_series(1, 10000) i;
ANALYZE users;
SQL
python3 -c "
import random
ids = list(range(1, 10001)); random.seed(7); random.shuffle(ids)
print('\n'.join(f'/api/users/{i}' for i in ids))" > "$work/paths"
url=$PHASELOOP_PG_TCP_URL
port=3301
sql="SELECT id, name, email FROM users WHERE id = \$1"
if [ -n "${PG_PAUSE_MS:-}" ]; then
  sql="SELECT id, name, email, pg_sleep($PG_PAUSE_MS / 1000.0)::text AS pause FROM users WHERE id = \$1"
fi
echo "query: $sql"
start_server() { # NAME -> runs it on CPU 0 in the background
  case $1 in
    phaseloop) exec taskset -c 0 target/release/pg-users --port $port --database "$url" --sql "$sql" ;;
    node) exec taskset -c 0 node load-tests/node/pg-users.js $port "$url" "$sql" ;;
    blocking) exec taskset -c 0 target/release/pg-users --port $port --database "$url" --sql "$sql" --blocking ;;
  esac
}
order=(phaseloop node blocking)
# All of a process's CPU time, every thread's (the blocking design works on
# its pool threads; /proc/<pid>/schedstat alone is the main thread's).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
for round in $(seq "$rounds"); do
  for k in 0 1 2; do
    name=${order[$(( (k + round) % 3 ))]}
    start_server "$name" >/dev/null 2>"$work/$name.err" &
    pid=$!; pids=("$pid")
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/api/users/1" && break; sleep 0.1; done
    # Warm the pool (20 connections) before measuring.
    taskset -c 1 target/release/phaseloop-load -c "$conns" -d 1 --paths "$work/paths" "http://127.0.0.1:$port/" >/dev/null
    cpu0=$(cpu_ns "$pid")
    taskset -c 1 target/release/phaseloop-load -c "$conns" -d "$secs" --paths "$work/paths" \
      --json "$work/load.json" "http://127.0.0.1:$port/" >/dev/null
    cpu1=$(cpu_ns "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$work/load.json" $((cpu1 - cpu0)) "$name" <<'PY' | tee -a "$work/runs"
import json, sys
r = json.load(open(sys.argv[1])); cpu_ns = int(sys.argv[2]); name = sys.argv[3]
n = r["requests"]; errors = r["errors"]["total"]
print(f"{name:9s} {n:7d} req {r['requests_per_s']:8.0f}/s  {n / (cpu_ns / 1e9):8.0f} req/CPU-s  "
      f"p99 {r['latency_ms']['p99']:6.2f} ms  errors {errors}")
PY
  done
done
python3 - "$work/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    runs.setdefault(f[0], []).append((float(f[3].rstrip("/s")), float(f[4]), float(f[7]), int(f[10])))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in runs.items()}
for k, (rps, per_cpu, p99) in med.items():
    print(f"median {k:9s} {rps:8.0f} req/s  {per_cpu:8.0f} req/CPU-s  p99 {p99:6.2f} ms  "
          f"errors {sum(x[3] for x in runs[k])}")
pl = med["phaseloop"][1]
for peer in ("node", "blocking"):
    ratios = [a[1] / b[1] for a, b in zip(runs["phaseloop"], runs[peer])]
    print(f"phaseloop/{peer} requests per server CPU-second: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}); throughput {med['phaseloop'][0] / med[peer][0]:.2f}x")
PY
echo "pipelining on one connection (20,000 queries):"
for _ in 1 2 3; do taskset -c 0 target/release/pg-users --database "$url" --pipeline 20000; done
