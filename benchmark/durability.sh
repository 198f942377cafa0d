#!/usr/bin/env bash
# "Nothing acknowledged is lost": hammer /write on one session (scenario C of the peers
# benchmark), read the counter through the running instance, then through a fresh instance
# (cold caches), and compare. Both must equal; for a single-session counter with per-key
# last-write-wins they also equal the number of successful writes minus concurrent overlaps.
#
#   env=$(bash .ci/services.sh start) && eval "$env"   # for postgres, redis, caching
#   STORE=postgres benchmark/durability.sh      # memory | sqlite | postgres | redis | caching
#
# Needs wrk and curl; server stores need their URL variables (see examples/bench_server.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-sqlite} DUR=${DUR:-5} CONNS=${CONNS:-32} PORT=${PORT:-3100}
case $STORE in
  memory) features= ;;
  caching) features=postgres ;;
  *) features=$STORE ;;
esac
# A server store needs its server: .ci/services.sh starts them and prints their URLs.
need_url() {
  [[ -n ${!1:-} ]] && return
  echo "STORE=$STORE needs $1: env=\$(bash .ci/services.sh start --bench) && eval \"\$env\"" >&2
  exit 1
}
case ${STORE:-memory} in redis) need_url REDIS_URL ;; postgres | caching) need_url DATABASE_URL ;; esac
features=${FEATURES:-$features}  # e.g. FEATURES="sqlite postgres redis" to reuse one build
cargo build -q --release --example bench_server ${features:+--features "$features"}
bin=${CARGO_TARGET_DIR:-target}/release/examples/bench_server
url=http://127.0.0.1:$PORT

start() {
  SESSIONWARE_STORE=$STORE PORT=$PORT "$bin" & pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "$url/plain" && return; sleep 0.05; done
  echo "bench_server did not start" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

start
cookie=$(curl -s -D - -o /dev/null "$url/write" | tr -d '\r' | sed -nE 's/^set-cookie: *([^;]+).*/\1/Ip')
wrk -t1 -c"$CONNS" -d"${DUR}s" -H "Cookie: $cookie" "$url/write" | grep -E 'requests in|Non-2xx|Socket errors' || true
running=$(curl -s -H "Cookie: $cookie" "$url/read")
stop
if [[ $STORE == memory ]]; then
  echo "store=memory running=$running (a fresh instance has an empty memory store: nothing to compare)"
  exit 0
fi
start
fresh=$(curl -s -H "Cookie: $cookie" "$url/read")
stop
echo "store=$STORE running=$running fresh=$fresh"
[[ $running == "$fresh" && $running -gt 0 ]] || { echo "MISMATCH: an acknowledged write was lost" >&2; exit 1; }
