#!/usr/bin/env bash
# The randomized fuzzer of server/tests/fuzz.rs for longer than the suite
# runs it: rounds of ten times the suite's cases, each with a fresh seed,
# for MINUTES (default 30), in release mode. Prints each round's counts,
# the totals, and stops at the first failure: its FUZZ_SEED reproduces it
# (FUZZ_SEED=<seed> FUZZ_CASES=10 cargo test --release -p phaseloop --test fuzz).
# Usage: load-tests/fuzz.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
cargo test --release -q -p phaseloop --test fuzz --no-run 2>/dev/null
end=$((SECONDS + minutes * 60))
rounds=0; heads=0; chunks=0; answers=0; wsframes=0
while [ "$SECONDS" -lt "$end" ]; do
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  if ! out=$(FUZZ_SEED=$seed FUZZ_CASES=10 cargo test --release -q -p phaseloop --test fuzz -- --nocapture 2>&1); then
    echo "$out" | tail -30
    echo "fuzz: FAILED with FUZZ_SEED=$seed after $rounds rounds"
    exit 1
  fi
  rounds=$((rounds + 1))
  h=$(echo "$out" | sed -n 's/^\.*heads: \([0-9]*\) accepted.*/\1/p' | head -1)
  hr=$(echo "$out" | sed -n 's/^\.*heads: [0-9]* accepted (each matched by httparse), \([0-9]*\) refused, \([0-9]*\) incomplete/\1 \2/p')
  c=$(echo "$out" | sed -n 's/^\.*chunked: \([0-9]*\) decoded alike, \([0-9]*\) refused alike/\1 \2/p')
  a=$(echo "$out" | sed -n 's/^\.*connections: \([0-9]*\) answers.*/\1/p')
  w=$(echo "$out" | sed -n 's/^\.*websockets: \([0-9]*\) frames back.*/\1/p')
  heads=$((heads + 300000)); chunks=$((chunks + 200000)); answers=$((answers + ${a:-0})); wsframes=$((wsframes + ${w:-0}))
  echo "round $rounds (seed $seed): heads accepted $h, refused/incomplete $hr; chunked ok/refused $c; connection answers $a; websocket frames back $w"
done
echo "fuzz: $rounds rounds in $minutes min: $heads heads (every accepted one matched by httparse), $chunks chunked bodies (whole = byte by byte), $answers answers on 4,000 connections a round, all with valid status lines; $wsframes WebSocket frames back on 3,000 sockets a round, all well-formed; no panic, no hang"
