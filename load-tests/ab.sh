#!/usr/bin/env bash
# A/B of server binaries under one load, alternating, so a noisy machine
# drifts on all of them alike. Each command is started pinned to CPU 0 with
# PORT replaced by the port; phaseloop-load runs on CPU 1. Prints, per run,
# the server's user and system CPU time per request and its requests per
# CPU-second (from /proc/<pid>/stat: CPU time is tick-sampled, so runs of a
# few seconds are needed).
#
# Usage: load-tests/ab.sh RUNS "LOAD ARGS" "COMMAND A" ["COMMAND B" ...]
# Example (old build against new, pipelined):
#   load-tests/ab.sh 4 "-c 256 -p 16 -d 3" \
#     "/tmp/demo-api-old --port PORT --data-dir /tmp/ab-data" \
#     "target/release/demo-api --port PORT --data-dir /tmp/ab-data" \
#     "target/release/floor PORT"
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
runs=$1
load=$2
shift 2
port=3199
path=${AB_PATH:-/plaintext}
ticks=$(getconf CLK_TCK)
[ -x target/release/phaseloop-load ] || cargo build --release -q -p phaseloop-bench
for run in $(seq 1 "$runs"); do
  for cmd in "$@"; do
    rm -rf /tmp/ab-data
    # shellcheck disable=SC2086 # the command is words on purpose
    taskset -c 0 ${cmd//PORT/$port} >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
      sleep 0.1
    done
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    # shellcheck disable=SC2086
    taskset -c 1 target/release/phaseloop-load $load --json /tmp/ab-load.json \
      "http://127.0.0.1:$port$path" >/dev/null
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 - "$cmd" "$u0" "$s0" "$u1" "$s1" "$ticks" <<'EOF'
import json, sys
cmd, u0, s0, u1, s1, ticks = sys.argv[1], *map(int, sys.argv[2:])
n = json.load(open("/tmp/ab-load.json"))["requests"]
user = (u1 - u0) / ticks * 1e9 / n
system = (s1 - s0) / ticks * 1e9 / n
print(f"{cmd[:48]:48}  user {user:5.0f} ns  sys {system:6.0f} ns  per CPU-s {1e9 / (user + system):9.0f}")
EOF
  done
done
