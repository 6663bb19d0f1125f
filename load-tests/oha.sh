#!/usr/bin/env bash
# The load scenarios with oha, against a server you started yourself.
# Usage: load-tests/oha.sh [base-url] [seconds]     default http://127.0.0.1:3000 10
# Installs nothing: it says what is missing.
set -euo pipefail
base=${1:-http://127.0.0.1:3000}
secs=${2:-10}
command -v oha >/dev/null || { echo "oha is missing: cargo install oha" >&2; exit 1; }
case "$base" in http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;; *) echo "loopback targets only" >&2; exit 1;; esac
run() { echo "== oha $*"; oha --no-tui -z "${secs}s" "$@"; }
run -c 100 "$base/plaintext"
run -c 100 "$base/json"
run -c 1000 -m POST -T application/json -d '{"restaurant_id":1,"customer":"Ann","items":[{"name":"pho","qty":2}]}' "$base/api/orders"
run -c 100 -q 50000 "$base/plaintext"   # constant rate, 50,000 req/s
run -c 100 "$base/api/users/42"
