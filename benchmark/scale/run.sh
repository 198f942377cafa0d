#!/usr/bin/env bash
# The scale harness: a store filled with N sessions through the store API (bench_server's
# PREFILL), then requests spread at random over them under wrk: B (/read), C (/write), D (new
# sessions) and the mix (90% B, 9% C, 1% D). Prints and appends to $RESULTS/scale.tsv one line
# per mode: req/s, p50 and p99, errors, the time the fill took and the bytes per session as the
# store's server counts them (Redis `used_memory`, PostgreSQL `pg_total_relation_size`, the
# SQLite file, the memory store's process RSS).
#
#   env=$(bash .ci/services.sh start --bench) && eval "$env"   # server stores only
#   STORE=memory N=100000 benchmark/scale/run.sh
#   STORE=redis N=10000000 benchmark/scale/run.sh
#
# STORE = memory | sqlite | postgres | redis | redis-cluster. FRESH=1 (the default) empties the
# store first (FLUSHALL on the Redis servers, DROP TABLE, a new SQLite file): point it only at
# throwaway servers such as .ci/services.sh's. MODES (default "read write new mix"), ROUNDS
# (1: each mode once; more run the modes in turn, round after round, so that a noisy moment
# does not land on one mode only), WARMUP (10 s of the mix after the fill, not counted), DUR
# (10 s per mode), CONNS (32), WORKERS (1 server thread),
# SERVER_CPU (0) and CLIENT_CPU (1).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
STORE=${STORE:-memory} N=${N:-100000} DUR=${DUR:-10} CONNS=${CONNS:-32} PORT=${PORT:-3000}
WORKERS=${WORKERS:-1} SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1} FRESH=${FRESH:-1}
ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-10}
read -ra MODES <<<"${MODES:-read write new mix}"
RESULTS=${RESULTS:-$ROOT/target/benchmark-results}
SQLITE_FILE=${SQLITE_FILE:-$ROOT/target/scale-sessions.db}
export SQLITE_URL="sqlite://$SQLITE_FILE?mode=rwc" STORE N
URL=http://127.0.0.1:$PORT
mkdir -p "$RESULTS"
LOG=$(mktemp)
SERVER_PID=
stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap 'stop_server; rm -f "$LOG"' EXIT

for tool in cargo curl taskset wrk; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
case $STORE in
  redis) : "${REDIS_URL:?STORE=redis needs REDIS_URL (.ci/services.sh start --bench)}" ;;
  redis-cluster) : "${REDIS_CLUSTER_URLS:?STORE=redis-cluster needs REDIS_CLUSTER_URLS}" ;;
  postgres) : "${DATABASE_URL:?STORE=postgres needs DATABASE_URL}" ;;
  memory | sqlite) ;;
  *) echo "unknown STORE=$STORE" >&2; exit 1 ;;
esac

cargo build -q --release --features sqlite,postgres,redis --example bench_server
BIN=$(cargo metadata -q --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/bench_server

redis_urls() {
  if [[ $STORE == redis ]]; then echo "$REDIS_URL"; else tr ',' ' ' <<<"$REDIS_CLUSTER_URLS"; fi
}
# What the store's server counts for it, in bytes.
store_bytes() {
  case $STORE in
    redis | redis-cluster)
      local total=0 url used
      for url in $(redis_urls); do
        used=$(redis-cli -u "$url" INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
        total=$((total + used))
      done
      echo "$total" ;;
    postgres)
      psql -qtA "$DATABASE_URL" -c \
        "SELECT COALESCE(pg_total_relation_size(to_regclass('sessionware_sessions')), 0)" ;;
    sqlite)  # pages in use once the log is checkpointed into the file (no server holds it then)
      python3 - "$SQLITE_FILE" <<'PY'
import os, sqlite3, sys
if not os.path.exists(sys.argv[1]):
    print(0)
else:
    db = sqlite3.connect(sys.argv[1])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
    print(pages * db.execute("PRAGMA page_size").fetchone()[0])
PY
      ;;
    memory) echo 0 ;;
  esac
}
empty_store() {
  case $STORE in
    redis | redis-cluster) for url in $(redis_urls); do redis-cli -u "$url" FLUSHALL >/dev/null; done ;;
    postgres) psql -qtA "$DATABASE_URL" -c "DROP TABLE IF EXISTS sessionware_sessions, sessionware_sessions_moved" ;;
    sqlite) rm -f "$SQLITE_FILE" "$SQLITE_FILE-wal" "$SQLITE_FILE-shm" ;;
    memory) ;;
  esac
}

start_server() {  # extra environment assignments
  if curl -s -o /dev/null "$URL/plain"; then echo "port $PORT is already in use" >&2; exit 1; fi
  env "$@" PORT="$PORT" WORKERS="$WORKERS" taskset -c "$SERVER_CPU" "$BIN" 2>>"$LOG" &
  SERVER_PID=$!
  # A memory store fills before it listens: wait as long as the fill takes.
  until curl -s -o /dev/null "$URL/plain"; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; echo "bench_server exited" >&2; exit 1; }
    sleep 0.2
  done
}

id_of() { printf '5e55%08x40008%015x' 0 "$1"; }

echo "== STORE=$STORE N=$N: fill"
[[ $FRESH == 1 ]] && empty_store
before=$(store_bytes)
if [[ $STORE == memory ]]; then
  start_server PREFILL="$N"
else
  env PREFILL="$N" PREFILL_ONLY=1 "$BIN" 2>>"$LOG"
  start_server
fi
fill=$(grep -o 'prefill 0: [0-9]* sessions in [0-9.]* s' "$LOG" | tail -1 | awk '{print $6}')
if [[ $STORE == memory ]]; then
  per_session=$(grep -o 'grew [0-9]* bytes per session' "$LOG" | tail -1 | awk '{print $2}')
else
  per_session=$(( ($(store_bytes) - before) / N ))
fi
echo "   filled in ${fill:-?} s, ${per_session} bytes per session"

# The first and the last prefilled sessions are there, as every request will expect.
for i in 0 $((N - 1)); do
  body=$(curl -s -H "Cookie: id=$(id_of "$i")" "$URL/read")
  [[ $body -ge 1 ]] || { echo "prefilled session $i reads as '$body'" >&2; exit 1; }
done

# Redis's own time per command while a mode runs (INFO commandstats), to tell the server's
# cost from the rest.
redis_reset() {
  [[ $STORE == redis* ]] || return 0
  local url; for url in $(redis_urls); do redis-cli -u "$url" CONFIG RESETSTAT >/dev/null; done
}
redis_times() {
  [[ $STORE == redis* ]] || return 0
  local url; for url in $(redis_urls); do redis-cli -u "$url" INFO commandstats; done | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_(evalsha|hgetall)/ {calls[$1] += $3; usec[$1] += $5}
      END {for (c in calls) printf " %s %.1f us/call", substr(c, 9), usec[c] / calls[c]}'
}

# A fill leaves work behind (the servers' table resizes, the kernel's reclaim): the first
# seconds after it are not what the store costs. WARMUP seconds of the mix first, not counted.
if (( WARMUP > 0 )); then
  MODE=mix taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s benchmark/scale/mix.lua "$URL" >/dev/null
fi

for round in $(seq "$ROUNDS"); do for mode in "${MODES[@]}"; do
  redis_reset
  res=$(MODE=$mode taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" \
        -s benchmark/scale/mix.lua "$URL" | grep '^RESULT' | cut -f2-)
  line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$(date -u +%FT%TZ)" "$STORE" "$N" "$mode" "$res" "${fill:-}" "$per_session")
  echo "$line" >>"$RESULTS/scale.tsv"
  awk -F'\t' -v r="$round" -v t="$(redis_times)" '{printf "   %-5s round %s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d%s\n", $4, r, $5, $6 / 1000, $7 / 1000, $8, t}' <<<"$line"
done; done
