#!/usr/bin/env bash
# A throwaway PostgreSQL cluster from Debian's packages, for the tests, CI
# and the load tests: initdb in DIR, a random free port on 127.0.0.1 and a
# Unix socket in DIR, fsync off (nothing here needs to survive a crash of
# the machine), and two password roles for the authentication tests.
#
#   cluster.sh install        apt-get install postgresql if initdb is missing
#   cluster.sh start DIR      make and start a cluster; prints its settings
#                             as shell assignments (eval them):
#                             PHASELOOP_PG_URL (Unix socket), PHASELOOP_PG_TCP_URL,
#                             PHASELOOP_PG_PORT, PHASELOOP_PG_SOCKET_DIR, PHASELOOP_PG_BIN
#   cluster.sh halt DIR       stop it at once (as a crash would), keep its data
#   cluster.sh resume DIR     start it again after halt
#   cluster.sh stop DIR       stop it and remove DIR
#
# PostgreSQL refuses to run as root: as root, the server runs as the
# `postgres` user the package creates.
set -euo pipefail

bin_dir() {
  if [ -n "${PHASELOOP_PG_BIN:-}" ]; then echo "$PHASELOOP_PG_BIN"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "PostgreSQL is not installed: run '$0 install' (apt-get install postgresql)" >&2
    exit 3
  fi
  echo "$d"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}
case "$cmd" in
  install)
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    fi
    ;;
  start)
    dir=${2:?usage: cluster.sh start DIR}
    bin=$(bin_dir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$dir/data/pg_hba.conf" <<HBA
local all all trust
host all scram_user 127.0.0.1/32 scram-sha-256
host all md5_user 127.0.0.1/32 md5
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
HBA
    cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 64MB
CONF
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE ROLE scram_user LOGIN SUPERUSER PASSWORD 'scram pass wörd';
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN SUPERUSER PASSWORD 'md5-pass';
SQL
    enc_dir=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$dir")
    echo "PHASELOOP_PG_URL=postgres://postgres@$enc_dir:$port/postgres"
    echo "PHASELOOP_PG_TCP_URL=postgres://postgres@127.0.0.1:$port/postgres"
    echo "PHASELOOP_PG_PORT=$port"
    echo "PHASELOOP_PG_SOCKET_DIR=$dir"
    echo "PHASELOOP_PG_BIN=$bin"
    ;;
  halt)
    dir=${2:?usage: cluster.sh halt DIR}
    as_pg "$(bin_dir)/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null
    ;;
  resume)
    dir=${2:?usage: cluster.sh resume DIR}
    as_pg "$(bin_dir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    ;;
  stop)
    dir=${2:?usage: cluster.sh stop DIR}
    if [ -d "$dir/data" ]; then
      as_pg "$(bin_dir)/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
