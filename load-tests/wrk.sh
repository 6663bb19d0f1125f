#!/usr/bin/env bash
# The load scenarios with wrk, against a server you started yourself
# (e.g. `cargo run --release -p phaseloop-demo`).
# Usage: load-tests/wrk.sh [base-url] [seconds]     default http://127.0.0.1:3000 10
# Installs nothing: it says what is missing.
set -euo pipefail
base=${1:-http://127.0.0.1:3000}
secs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
case "$base" in http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;; *) echo "loopback targets only" >&2; exit 1;; esac
run() { echo "== $*"; wrk --latency -d"${secs}s" "$@"; }
run -t1 -c100 "$base/plaintext"
run -t1 -c100 "$base/json"
run -t1 -c256 -s "$here/wrk/pipeline.lua" "$base/plaintext" -- 16
run -t1 -c1000 -s "$here/wrk/post_order.lua" "$base/api/orders"
(ulimit -n 20000 2>/dev/null || true; run -t1 -c10000 --timeout 10s "$base/plaintext")
