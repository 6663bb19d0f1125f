#!/usr/bin/env bash
# User-space instructions per request of a server, counted by callgrind:
# exact and repeatable on a noisy machine, where CPU-time ratios drift by
# 10 %. Only the load's own window is counted (counters zeroed before it,
# dumped after it; one wake-up request each side), so start-up costs are
# left out.
#
# Usage: load-tests/instructions.sh "COMMAND with PORT" ["LOAD ARGS"]
#   load-tests/instructions.sh "target/release/demo-api --port PORT --data-dir /tmp/ir-data"
#   load-tests/instructions.sh "target/release/floor PORT" "-c 64 -n 100000"
#   load-tests/instructions.sh "..." '-c 64 -p 16 -n 100000 -H "Accept: text/html"'
# Default load: 100,000 requests, 64 connections pipelining 16 deep.
# IR_LINES=40 also prints the 40 costliest source lines of ours per request
# (each inlined instruction counted on the line of ours it came from; see
# load-tests/hot_lines.py). IR_PATH=/json loads that path instead of /plaintext.
# Needs valgrind (apt-get install -y valgrind) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
for tool in valgrind callgrind_control curl; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is missing" >&2; exit 1; }
done
[ -x target/release/phaseloop-load ] || cargo build --release -q -p phaseloop-bench
port=3198
load=${2:--c 64 -p 16 -n 100000}
out=$(mktemp -d /tmp/phaseloop-ir.XXXXXX)
rm -rf /tmp/ir-data
# shellcheck disable=SC2086 # the command is words on purpose
valgrind --tool=callgrind ${IR_LINES:+--dump-instr=yes} --callgrind-out-file="$out/cg.out" ${1//PORT/$port} >"$out/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.3
done
# A control command is taken when the server next runs: wake it with a
# request (a server asleep in epoll_wait would never take it).
control() {
  callgrind_control "$1" "$pid" >/dev/null 2>&1 &
  local ctl=$!
  sleep 0.5
  curl -s -o /dev/null "http://127.0.0.1:$port/" || true
  wait "$ctl"
}
control -z
# shellcheck disable=SC2086
# eval: the load may quote words (a header with spaces: -H "A: b c").
eval target/release/phaseloop-load "$load" --json "$out/load.json" "http://127.0.0.1:$port${IR_PATH:-/plaintext}" >/dev/null
control -d
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
python3 - "$out" <<'EOF'
import glob, json, sys
out = sys.argv[1]
requests = json.load(open(f"{out}/load.json"))["requests"]
dump = sorted(glob.glob(f"{out}/cg.out.*"))[-1]
total = next(int(l.split()[1]) for l in open(dump) if l.startswith(("summary:", "totals:")))
print(f"{total / requests:.0f} instructions per request ({requests} requests; callgrind data in {dump})")
EOF
if [ -n "${IR_LINES:-}" ]; then
  requests=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["requests"])' "$out/load.json")
  # shellcheck disable=SC2086
  set -- $1
  python3 load-tests/hot_lines.py "$(ls "$out"/cg.out.* | sort | tail -1)" "$1" "$requests" "$IR_LINES"
fi
