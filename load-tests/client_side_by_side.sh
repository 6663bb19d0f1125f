#!/usr/bin/env bash
# The HTTP client beside Node's: phaseloop's client-bench and Node's
# http.Agent({ keepAlive: true }) (bench/node/client_bench.js) load the
# same demo-api /plaintext at the same time, both pinned to CPU 1 (the
# server on CPU 0), for the same seconds; each reports its requests and its
# own CPU time. Prints each run and the median of phaseloop's requests per
# CPU-second over Node's.
# TLS=1: over HTTPS (the server with an openssl-made CA and certificate for
# localhost, both clients trusting that CA; Node through https.Agent).
# Usage: [TLS=1] load-tests/client_side_by_side.sh [RUNS] [CONCURRENCY] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; conc=${2:-64}; secs=${3:-5}
[ -x target/release/client-bench ] && [ -x target/release/demo-api ] ||
  cargo build --release -q -p phaseloop-bench -p phaseloop-demo
port=3199; data=$(mktemp -d /tmp/client-sbs.XXXXXX)
tls_args=(); ca_args=(); scheme=http; host=127.0.0.1
if [ "${TLS:-0}" = 1 ]; then
  # A CA and a certificate it signs for localhost (P-256).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=bench-ca -keyout "$data/ca.key" -out "$data/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$data/key.pem" -out "$data/req.pem" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' > "$data/ext.cnf"
  openssl x509 -req -in "$data/req.pem" -CA "$data/ca.pem" -CAkey "$data/ca.key" \
    -CAcreateserial -days 1 -extfile "$data/ext.cnf" -out "$data/cert.pem" 2>/dev/null
  tls_args=(--tls-cert "$data/cert.pem" --tls-key "$data/key.pem")
  ca_args=(--ca "$data/ca.pem")
  export CA="$data/ca.pem"
  scheme=https; host=localhost
fi
taskset -c 0 target/release/demo-api --port $port --data-dir "$data" --log-level error "${tls_args[@]}" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sk -o /dev/null "$scheme://127.0.0.1:$port/health" && break; sleep 0.1; done
url="$scheme://$host:$port/plaintext"
ratios=()
for i in $(seq "$runs"); do
  taskset -c 1 target/release/client-bench --url "$url" --concurrency "$conc" --seconds "$secs" "${ca_args[@]}" > "$data/pl.json" &
  a=$!
  taskset -c 1 node bench/node/client_bench.js "$url" "$conc" "$secs" > "$data/node.json" &
  b=$!
  wait $a $b
  pl=$(cat "$data/pl.json"); nd=$(cat "$data/node.json")
  r=$(python3 -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(f\"{a['req_per_cpu_s']/b['req_per_cpu_s']:.2f}\")" "$pl" "$nd")
  echo "run $i: $pl $nd phaseloop/node $r"
  ratios+=("$r")
done
python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f'median phaseloop/node requests per client CPU-second: {statistics.median(v):.2f} over {len(v)} runs (min {min(v):.2f}, max {max(v):.2f})')" "${ratios[@]}"
