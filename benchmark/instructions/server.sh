#!/usr/bin/env bash
# Instructions per request of sessionware's bench_server on any store (callgrind), where
# instructions.sh covers the layer on MemoryStore only. Runs each server binary given under
# callgrind, sends it ROUTE (default /write) with a session cookie (COOKIE=0: without, so every
# /write makes a new session) for DUR seconds (default 10) on 4 connections, and prints
# instructions per request: the whole process, and the inclusive cost of the layer's save and of
# each store operation it ran. Any server with bench_server's routes and environment works, such
# as benchmark/'s `floor` (its totals only).
#
#   cargo build --release --example bench_server --features "sqlite postgres redis"
#   env=$(bash .ci/services.sh start --bench) && eval "$env"
#   STORE=redis benchmark/instructions/server.sh /tmp/old_bench_server target/release/examples/bench_server
#
# Needs valgrind and wrk. Counts, not time: repeatable on a noisy machine, but under valgrind
# SHA-256 runs without the CPU's SHA instructions, so it weighs more here than in production.
set -euo pipefail
STORE=${STORE:-memory} ROUTE=${ROUTE:-/write} DUR=${DUR:-10} PORT=${PORT:-3000} COOKIE=${COOKIE:-1}
URL=http://127.0.0.1:$PORT
for tool in valgrind callgrind_annotate wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
(( $# )) || { echo "usage: STORE=<store> $0 BENCH_SERVER..." >&2; exit 1; }
TMP=$(mktemp -d)
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$TMP"' EXIT

for bin in "$@"; do
  out=$TMP/callgrind.out
  STORE=$STORE PORT=$PORT WORKERS=1 SQLITE_URL="sqlite://$TMP/s.db?mode=rwc" \
    valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no "$bin" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    curl -s -o /dev/null "$URL/plain" && break
    kill -0 "$PID" 2>/dev/null || { echo "$bin did not start (STORE=$STORE: is its server up?)" >&2; exit 1; }
    sleep 0.2
  done
  header=()
  if ((COOKIE)); then
    header=(-H "Cookie: $(curl -s -D - -o /dev/null "$URL/write" | tr -d '\r' |
      sed -nE 's/^set-cookie: *([^;]+).*/\1/Ip' | head -1)")
  fi
  requests=$(wrk -t1 -c4 -d"${DUR}s" "${header[@]}" "$URL$ROUTE" |
    sed -nE 's/^ *([0-9]+) requests in.*/\1/p')
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
  echo "== $bin: STORE=$STORE, $requests requests to $ROUTE$( ((COOKIE)) || echo ", no cookie")"
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
    grep -E "PROGRAM TOTALS|layer::future::save::\{\{closure\}\}|as sessionware::store::SessionStore>::[a-z_]+::\{\{closure\}\} " |
    sed -E 's/\?\?\?://; s/ \[.*//; s/<sessionware::store::[a-z_:]+::([A-Za-z]+) as sessionware::store::SessionStore>::/\1::/' |
    awk -v n="$requests" '{gsub(",", "", $1); printf "%10.0f  %s\n", $1 / n, $NF}'
done
