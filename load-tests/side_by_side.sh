#!/usr/bin/env bash
# Two servers measured at the same time: both pinned to CPU 0, each under
# its own load (two phaseloop-load processes on CPU 1), for the same
# seconds. Whatever else the machine does in a run, both suffer it alike,
# so the ratio of their CPU time per request is steady where alternating
# runs (load-tests/ab.sh) drift by 10 %: a server against itself gives
# 1.000 +- 0.003.
#
# Prints, per run, each server's CPU nanoseconds per request (all of its
# CPU time, from /proc/<pid>/schedstat, exact) with the user part
# (tick-sampled), and A's cost over B's; then the median of that ratio.
# Above 1, B needs less CPU per request; B's share of A's requests per
# CPU-second is the ratio itself.
#
# Usage: load-tests/side_by_side.sh RUNS "COMMAND A" "COMMAND B" ["LOAD ARGS"]
#   load-tests/side_by_side.sh 5 \
#     "target/release/demo-api --port PORT --data-dir /tmp/sbs-a" \
#     "target/release/floor PORT"
# PORT is replaced by a port for each. Default load: 256 connections
# pipelining 16 deep for 4 s (-c 256 -p 16 -d 4); the path is /plaintext
# (SBS_PATH to change it).
# Caveat: the two servers take turns on CPU 0, each evicting the other's
# caches; a server with the larger working set pays more for it here than
# when it runs alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
runs=$1
cmd_a=$2
cmd_b=$3
load=${4:--c 256 -p 16 -d 4}
path=${SBS_PATH:-/plaintext}
port_a=3201
port_b=3202
ticks=$(getconf CLK_TCK)
[ -x target/release/phaseloop-load ] || cargo build --release -q -p phaseloop-bench
out=$(mktemp -d /tmp/phaseloop-sbs.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

start() { # COMMAND PORT -> pid of the server, once it accepts
  # shellcheck disable=SC2086 # the command is words on purpose
  taskset -c 0 ${1//PORT/$2} >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null && break
    sleep 0.1
  done
  echo "$pid"
}

for run in $(seq 1 "$runs"); do
  rm -rf /tmp/sbs-a /tmp/sbs-b
  pid_a=$(start "$cmd_a" $port_a)
  pid_b=$(start "$cmd_b" $port_b)
  pids=("$pid_a" "$pid_b")
  read -r cpu_a0 _ < "/proc/$pid_a/schedstat"
  read -r cpu_b0 _ < "/proc/$pid_b/schedstat"
  read -r ua0 sa0 < <(awk '{print $14, $15}' "/proc/$pid_a/stat")
  read -r ub0 sb0 < <(awk '{print $14, $15}' "/proc/$pid_b/stat")
  # shellcheck disable=SC2086 # the load is words on purpose
  taskset -c 1 target/release/phaseloop-load $load --json "$out/a.json" \
    "http://127.0.0.1:$port_a$path" >/dev/null &
  load_a=$!
  # shellcheck disable=SC2086
  taskset -c 1 target/release/phaseloop-load $load --json "$out/b.json" \
    "http://127.0.0.1:$port_b$path" >/dev/null &
  load_b=$!
  wait "$load_a" "$load_b"
  read -r cpu_a1 _ < "/proc/$pid_a/schedstat"
  read -r cpu_b1 _ < "/proc/$pid_b/schedstat"
  read -r ua1 sa1 < <(awk '{print $14, $15}' "/proc/$pid_a/stat")
  read -r ub1 sb1 < <(awk '{print $14, $15}' "/proc/$pid_b/stat")
  kill "$pid_a" "$pid_b"
  wait "$pid_a" "$pid_b" 2>/dev/null || true
  python3 - "$out" $((cpu_a1 - cpu_a0)) $((cpu_b1 - cpu_b0)) \
    $((ua1 - ua0)) $((sa1 - sa0)) $((ub1 - ub0)) $((sb1 - sb0)) <<'EOF' | tee -a "$out/runs"
import json, sys
out = sys.argv[1]
cpu_a, cpu_b, ua, sa, ub, sb = map(int, sys.argv[2:])
na = json.load(open(f"{out}/a.json"))["requests"]
nb = json.load(open(f"{out}/b.json"))["requests"]
ca, cb = cpu_a / na, cpu_b / nb
user_a = ca * ua / max(ua + sa, 1)
user_b = cb * ub / max(ub + sb, 1)
print(f"A {na:8d} req {ca:6.1f} ns/req (user {user_a:5.1f})   "
      f"B {nb:8d} req {cb:6.1f} ns/req (user {user_b:5.1f})   A/B {ca / cb:.3f}")
EOF
done
python3 - "$out/runs" <<'EOF'
import statistics, sys
ratios = [float(line.split()[-1]) for line in open(sys.argv[1])]
print(f"median A/B {statistics.median(ratios):.3f} over {len(ratios)} runs "
      f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
EOF
rm -rf "$out"
