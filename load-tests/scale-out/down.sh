#!/usr/bin/env bash
# Tears down what up.sh DIR started, and removes DIR.
set -uo pipefail
dir=${1:?usage: down.sh DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$dir/nginx/nginx.pid" ] && nginx -c "$dir/nginx.conf" -s stop 2>/dev/null
for f in "$dir"/i*.pid "$dir/restaurant.pid"; do
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
done
sleep 0.5
for f in "$dir"/i*.pid "$dir/restaurant.pid"; do
  [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
done
bash "$root/load-tests/pg/cluster.sh" stop "$dir/pg"
rm -rf "$dir"
