#!/usr/bin/env bash
# Starts (or restarts) demo instance I of the scale-out setup in DIR on
# port 3500+I, on PostgreSQL, notifying restaurant-sim; waits until it
# answers. Usage: instance.sh DIR I [LOOPS=1]
set -euo pipefail
dir=$1; i=$2; loops=${3:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
port=$((3500 + i))
"$root/target/release/demo-api" --port "$port" --data-dir "$dir/i$i" \
  --database "$(cat "$dir/database_url")" --notify-url http://127.0.0.1:3600 \
  --loops "$loops" --drain-grace-ms 3000 --log-level error >>"$dir/i$i.log" 2>&1 &
echo $! > "$dir/i$i.pid"
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && exit 0; sleep 0.1; done
echo "instance $i did not start (see $dir/i$i.log)" >&2
exit 1
