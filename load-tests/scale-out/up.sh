#!/usr/bin/env bash
# Starts the scale-out setup: a throwaway PostgreSQL (../pg/cluster.sh),
# restaurant-sim, N demo-api instances on PostgreSQL (ports 3501..), and
# nginx (Debian's package) balancing them on 127.0.0.1:3500 with
# keep-alive upstream connections. Everything listens on loopback; its
# state (pids, logs, nginx's config and access log) is in DIR.
# Usage: up.sh DIR [INSTANCES=2] [LOOPS=1]    (down.sh DIR tears it down)
# Prints shell assignments: SCALE_URL, DATABASE_URL, RESTAURANT_URL, PSQL.
set -euo pipefail
dir=${1:?usage: up.sh DIR [INSTANCES] [LOOPS]}
n=${2:-2}; loops=${3:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dir"; dir=$(cd "$dir" && pwd); chmod 755 "$dir"
cd "$root"
[ -x target/release/demo-api ] && [ -x target/release/restaurant-sim ] ||
  cargo build --release -q -p phaseloop-demo
if ! command -v nginx >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx >/dev/null
fi
bash load-tests/pg/cluster.sh install
eval "$(bash load-tests/pg/cluster.sh start "$dir/pg")"
psql="$PHASELOOP_PG_BIN/psql -h $PHASELOOP_PG_SOCKET_DIR -p $PHASELOOP_PG_PORT -U postgres -X -q -A -t"
$psql -d postgres -c "CREATE DATABASE demo" >/dev/null
db="postgres://postgres@127.0.0.1:$PHASELOOP_PG_PORT/demo"
echo "$db" > "$dir/database_url"
echo "$psql -d demo" > "$dir/psql"
target/release/restaurant-sim --port 3600 >"$dir/restaurant.log" 2>&1 &
echo $! > "$dir/restaurant.pid"
servers=""
for i in $(seq 1 "$n"); do
  bash load-tests/scale-out/instance.sh "$dir" "$i" "$loops"
  servers="$servers    server 127.0.0.1:$((3500 + i)) max_fails=1 fail_timeout=2s;
"
done
mkdir -p "$dir/nginx"
cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  log_format up '\$upstream_addr \$status \$upstream_status';
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  upstream demo {
$servers    keepalive 64;
    # Shorter than the instances' own keep-alive (5 s) and their drain
    # grace (3 s, instance.sh): nginx, not the instance, closes an idle
    # upstream connection, so it never sends on one the instance is closing.
    keepalive_timeout 2s;
  }
  server {
    listen 127.0.0.1:3500;
    access_log $dir/nginx/access.log up buffer=64k flush=1s;
    location / {
      proxy_pass http://demo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 1s;
      # A refused connect or a reset before an answer is tried on the next
      # instance (a POST only if it was not sent).
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
    }
  }
}
CONF
nginx -c "$dir/nginx.conf"
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:3500/health && break; sleep 0.1; done
echo "SCALE_URL=http://127.0.0.1:3500"
echo "DATABASE_URL=$db"
echo "RESTAURANT_URL=http://127.0.0.1:3600"
echo "PSQL='$psql -d demo'"
