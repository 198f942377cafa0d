#!/usr/bin/env bash
# Purge under load: N live sessions and M (default 1,000,000) that all expire at one moment,
# while the mix of benchmark/scale/run.sh runs (90% reads, 9% writes, 1% new sessions over
# the live ones). bench_server purges every PURGE_EVERY seconds (5) and prints what each
# purge removed and how long it took; wrk measures the mix before the moment (the baseline)
# and from it until the purge is done. Prints p99 of both and the purges.
#
#   env=$(bash .ci/services.sh start --bench) && eval "$env"   # server stores only
#   STORE=sqlite N=1000000 benchmark/scale/purge.sh
#
# STORE, N, PORT, WORKERS, CONNS, SERVER_CPU, CLIENT_CPU as for run.sh; M; BASE (seconds of the
# baseline, 20); AFTER (seconds measured from the moment, 30). Empties the store first.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
STORE=${STORE:-memory} N=${N:-1000000} M=${M:-1000000} CONNS=${CONNS:-32} PORT=${PORT:-3000}
WORKERS=${WORKERS:-1} SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}
BASE=${BASE:-20} AFTER=${AFTER:-30} PURGE_EVERY=${PURGE_EVERY:-5}
RESULTS=${RESULTS:-$ROOT/target/benchmark-results}
SQLITE_FILE=${SQLITE_FILE:-$ROOT/target/scale-sessions.db}
export SQLITE_URL="sqlite://$SQLITE_FILE?mode=rwc" STORE PURGE_EVERY
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

cargo build -q --release --features sqlite,postgres,redis --example bench_server
BIN=$(cargo metadata -q --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/bench_server

case $STORE in
  redis) redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null ;;
  redis-cluster) for url in ${REDIS_CLUSTER_URLS//,/ }; do redis-cli -u "$url" FLUSHALL >/dev/null; done ;;
  postgres) psql -qtA "$DATABASE_URL" -c "DROP TABLE IF EXISTS sessionware_sessions, sessionware_sessions_moved" 2>/dev/null ;;
  sqlite) rm -f "$SQLITE_FILE" "$SQLITE_FILE-wal" "$SQLITE_FILE-shm" ;;
esac

# The live sessions first; then the expiring ones, living long enough for their own fill (at
# the live fill's rate, twice over) plus the baseline.
if [[ $STORE != memory ]]; then
  env PREFILL="$N" PREFILL_ONLY=1 "$BIN" 2>>"$LOG"
fi
rate=$(grep -o 'prefill 0: [0-9]* sessions in [0-9.]* s ([0-9]*/s)' "$LOG" | grep -o '([0-9]*' | tr -d '(' || true)
rate=${rate:-300000}
lives=$(( 2 * M / rate + BASE + 15 ))
if [[ $STORE == memory ]]; then
  lives=$(( 2 * (N + M) / rate + BASE + 15 ))
  spec="$N,$M:$lives"
else
  # The expiring group is the second group (seed 1): an empty first group keeps its seed.
  t0=$(date +%s)
  env PREFILL="0,$M:$lives" PREFILL_ONLY=1 "$BIN" 2>>"$LOG"
  spec=
fi
t_server=$(date +%s)
env PREFILL="$spec" PORT="$PORT" WORKERS="$WORKERS" taskset -c "$SERVER_CPU" "$BIN" 2>>"$LOG" &
SERVER_PID=$!
until curl -s -o /dev/null "$URL/plain"; do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.2
done
# The moment the expiring group dies: the start of its fill plus its life (in a memory store,
# its fill starts when the live group's ends), and a second to be sure.
if [[ $STORE == memory ]]; then
  live_fill=$(grep -o 'prefill 0: [0-9]* sessions in [0-9.]* s' "$LOG" | tail -1 | awk '{print $6}')
  t0=$(( t_server + ${live_fill%.*} ))
fi
moment=$(( t0 + lives + 1 ))
expiring_fill=$(grep -o 'prefill 1: [0-9]* sessions in [0-9.]* s' "$LOG" | tail -1 | awk '{print $6}')
echo "== STORE=$STORE: $N live sessions, $M expiring $lives s after their fill began (it took ${expiring_fill:-?} s)"

wrk_mix() {  # seconds
  MODE=mix N=$N taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${1}s" -s benchmark/scale/mix.lua "$URL" |
    grep '^RESULT' | cut -f2-
}
now=$(date +%s)
wait_base=$(( moment - BASE - 2 - now ))
(( wait_base > 0 )) || { echo "the fill left no time for a baseline: raise BASE margin" >&2; exit 1; }
echo "   waiting ${wait_base} s for the baseline window"
sleep "$wait_base"
base=$(wrk_mix "$BASE")
sleep $(( moment - $(date +%s) > 0 ? moment - $(date +%s) : 0 ))
during=$(wrk_mix "$AFTER")
sleep 1
purges=$({ grep '^purge' "$LOG" || true; } | tr '\n' ';')
line=$(printf '%s\t%s\t%s\t%s\tbase\t%s\tpurge\t%s\t%s' "$(date -u +%FT%TZ)" "$STORE" "$N" "$M" "$base" "$during" "$purges")
echo "$line" >>"$RESULTS/purge.tsv"
awk -F'\t' '{printf "   baseline: %.0f req/s, p99 %.2f ms; from the moment on: %.0f req/s, p99 %.2f ms, errors %d\n", $6, $8 / 1000, $12, $14 / 1000, $9 + $15}' <<<"$line"
echo "   purges: ${purges:-none}"
