#!/usr/bin/env bash
# Runs phaseloop's load scenarios against Express, Node's http module and the
# floor: builds what it needs, says what is missing, then calls run.py.
# Usage: load-tests/run.sh [--runs 3] [--duration 5] [--quick] [--servers ...]
set -euo pipefail
cd "$(dirname "$0")/.."
missing=0
for tool in cargo node npm python3 taskset; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; missing=1; }
done
[ "$missing" = 0 ] || exit 1
if [ ! -d load-tests/node/node_modules ]; then
  echo "run.sh: installing the Express peer from the lock file (npm ci in load-tests/node)" >&2
  (cd load-tests/node && npm ci --no-audit --no-fund >/dev/null)
fi
cargo build --release -q -p phaseloop -p phaseloop-bench
exec python3 load-tests/run.py "$@"
